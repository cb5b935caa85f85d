"""All of Haven's configuration: one class, read from `HAVEN_*` variables and the app's args."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

MIN_SECRET_LENGTH = 32
MASTER_KEY_BYTES = 32


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="HAVEN_", extra="forbid", frozen=True)

    environment: Literal["development", "test", "production"] = "development"
    data_dir: Path = Path(".data")
    # Empty means SQLite in `data_dir`; PostgreSQL by `postgresql+asyncpg://...`.
    database_url: str = ""

    jwt_secret: SecretStr | None = None
    # The master key that wraps each user's data key (`haven.storage.master_key`): base64 of 32
    # bytes. Outside development it must be set; in development one is generated into
    # `data_dir`. While `haven keys rotate` runs, the old key goes in `master_key_previous`.
    master_key: SecretStr | None = None
    master_key_previous: SecretStr | None = None
    # Conversations whose last message is older than this many days are deleted; None keeps
    # them until the person deletes them or their account.
    retention_days: int | None = Field(default=None, ge=1, le=36_500)
    # `GET /me/export` per account per hour; past it 429 `too_many_exports`.
    exports_per_user_per_hour: int = Field(default=5, ge=1)
    access_token_ttl_s: int = Field(default=3600, ge=60, le=7 * 24 * 3600)

    # The seed documents the unprefixed name; both are accepted.
    enable_websocket: bool = Field(
        default=True,
        validation_alias=AliasChoices(
            "enable_websocket", "HAVEN_ENABLE_WEBSOCKET", "ENABLE_WEBSOCKET"
        ),
    )
    max_message_chars: int = Field(default=4000, ge=1)
    # Messages of one user waiting behind the turn in flight; past it the sender gets `busy`.
    max_queued_turns: int = Field(default=8, ge=1, le=1000)
    # Stable hash of the user id picks one of this many ConnectionHost actors.
    connection_hosts: int = Field(default=2, ge=1, le=1024)
    # Custom Ray resources each ConnectionHost asks for, e.g. {"frontend": 1}: hosts then run
    # only on nodes started with them, spread over those nodes (`actors.pool`).
    connection_host_resources: dict[str, Annotated[float, Field(gt=0)]] = {}
    # How often a host looks for Gateway replicas that died holding its sockets (`actors.owners`).
    gateway_check_s: float = Field(default=5.0, gt=0)
    # How often a host with open sockets looks for accounts erased behind its back (`haven users
    # delete` works on the database alone): their sockets then close with 4010 (`actors.host`).
    account_check_s: float = Field(default=10.0, gt=0)
    # Earlier turns of the session given to the classifier and the language model.
    context_messages: int = Field(default=12, ge=0, le=200)

    # Limits on sockets and messages, enforced per user across the whole cluster.
    max_frame_bytes: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    max_connections_per_user: int = Field(default=5, ge=1, le=1000)
    new_connections_per_minute: int = Field(default=30, ge=1)
    # Token bucket for session_message: `message_burst` at once, then `message_rate_per_s`.
    message_burst: int = Field(default=10, ge=1)
    message_rate_per_s: float = Field(default=0.5, gt=0)
    # This many refused messages within one refill period of the whole bucket close the socket.
    rate_limit_close_after: int = Field(default=20, ge=1)
    # Bytes waiting to be written to one socket; past it the socket closes (slow consumer).
    outbound_queue_bytes: int = Field(default=1024 * 1024, ge=4096)
    # Browser origins allowed to open a socket besides the server's own; requests without an
    # Origin header (non-browser clients) are allowed.
    allowed_origins: tuple[str, ...] = ()
    auth_timeout_s: float = Field(default=10.0, gt=0)
    token_expiring_lead_s: float = Field(default=60.0, ge=0)
    token_grace_s: float = Field(default=10.0, ge=0)
    # What `resume` can replay.
    replay_window_s: float = Field(default=120.0, gt=0)
    replay_max_events: int = Field(default=300, ge=1)
    # A turn waits this long for the classifier before failing closed.
    safety_timeout_s: float = Field(default=10.0, gt=0)
    # Each connection host keeps at most this many classifier calls out; turns that arrive
    # meanwhile go together in the next call, up to `safety_turns_per_call`
    # (`deployments.clients.ServeRiskAssessor`). Serve's path cost the replica about 8 ms of CPU
    # per call, several times the model's share of a message (docs/benchmarks.md), so fewer,
    # fuller calls classify more messages per CPU-second.
    # With several classifier replicas, keep connection_hosts x this >= the replicas.
    safety_calls_in_flight: int = Field(default=2, ge=1, le=64)
    safety_turns_per_call: int = Field(default=64, ge=1, le=1024)
    # A counsellor whose last socket closed stays in the conversation this long (reconnecting
    # within it changes nothing for the person); then the assistant answers again.
    counsellor_grace_s: float = Field(default=60.0, ge=0)

    # REST request bodies larger than this are refused with 413 before they are parsed.
    max_request_body_bytes: int = Field(default=64 * 1024, ge=1024, le=16 * 1024 * 1024)
    # Login throttling (`haven.throttle`): after this many failures in a row for one username,
    # or from one client address (higher: addresses are shared behind NAT), logins wait
    # `login_lockout_base_s`, doubling with each further failure up to `login_lockout_max_s`.
    # Failures older than `login_failure_window_s` are forgotten.
    login_failures_per_account: int = Field(default=5, ge=1)
    login_failures_per_address: int = Field(default=20, ge=1)
    login_lockout_base_s: float = Field(default=30.0, gt=0)
    login_lockout_max_s: float = Field(default=900.0, gt=0)
    login_failure_window_s: float = Field(default=900.0, gt=0)
    # Accounts created from one client address per hour.
    registrations_per_address_per_hour: int = Field(default=20, ge=1)

    # Crisis resources for a user without a known locale; the per-locale table is in
    # `haven.crisis_resources`.
    default_locale: str = "US"
    crisis_hotline: str = "988"
    crisis_text: str = "741741"
    crisis_message: str = (
        "If you are in immediate danger, call 911 or your local emergency number now. "
        "You can call or text 988 (Suicide & Crisis Lifeline) any time, "
        "or text HOME to 741741 to reach the Crisis Text Line."
    )

    # The language model may write the reply at high risk (else a reviewed reply is sent). Set
    # by the app from `generator.trusted_at_high`, which only the `openai` backend accepts.
    generated_replies_at_high: bool = False
    # Likewise at medium risk, from `generator.trusted_at_medium` (or `trusted_at_high`).
    generated_replies_at_medium: bool = False

    model_cache_dir: Path = Path(".cache/models")

    @model_validator(mode="after")
    def _refuse_unsafe_defaults(self) -> Settings:
        # Checked here rather than per field: a field's error would quote the key it refused.
        for name in ("master_key", "master_key_previous"):
            value: SecretStr | None = getattr(self, name)
            if value is not None and value.get_secret_value():
                _check_master_key(value.get_secret_value(), f"HAVEN_{name.upper()}")
        if self.environment != "development":
            if self.master_key is None or not self.master_key.get_secret_value():
                raise ValueError(
                    "HAVEN_MASTER_KEY (base64 of 32 random bytes) must be set outside "
                    f"development (environment={self.environment})"
                )
            secret = self.jwt_secret.get_secret_value() if self.jwt_secret else ""
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"HAVEN_JWT_SECRET must be set to at least {MIN_SECRET_LENGTH} characters "
                    f"outside development (environment={self.environment})"
                )
        return self

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'haven.db').resolve()}"


def _check_master_key(value: str, name: str) -> None:
    try:
        raw = base64.b64decode(value, validate=True)
    except ValueError:
        raise ValueError(f"{name} must be base64") from None
    if len(raw) != MASTER_KEY_BYTES:
        raise ValueError(f"{name} must be {MASTER_KEY_BYTES} bytes, base64-encoded")
