"""docs/protocol.md, generated from the wire models, the typed errors and the settings.

Field tables come from the pydantic models in `haven.protocol` (JSON type, constraints and
`Field(description=...)`), the error and close-code tables from `haven.errors`, the limits from
`haven.settings` and `deployments.proxy_hooks`; the prose is `protocol_reference.template.md`.
A field, error or close code without a description here makes `render` fail, so the reference
cannot silently fall behind the code.

    python -m haven.protocol_reference           # print
    python -m haven.protocol_reference --write   # write docs/protocol.md
    python -m haven.protocol_reference --check   # exit 1 if docs/protocol.md differs
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel

from deployments import proxy_hooks
from haven import codec, errors, generated_docs, protocol
from haven.errors import RETRYABLE_CLOSE_CODES, CloseCode, HavenError, InvalidMessage
from haven.settings import Settings

TEMPLATE = Path(__file__).with_name("protocol_reference.template.md")
DOC_PATH = generated_docs.DOCS / "protocol.md"

CLIENT_FRAMES: tuple[type[BaseModel], ...] = get_args(protocol.ClientFrame)
SERVER_EVENTS: tuple[type[BaseModel], ...] = get_args(get_args(protocol.ServerEvent)[0])
OBJECTS: tuple[type[BaseModel], ...] = (
    protocol.CompletedMessage,
    protocol.EmergencyResources,
    protocol.CounsellorRef,
    protocol.CounsellorText,
    protocol.HistoryMessage,
)

# `InvalidMessage` codes raised outside `codec.FRAME_ERROR_CODES`.
OTHER_INVALID_MESSAGE_CODES = ("nothing_to_cancel",)
# Errors that only REST answers with.
REST_ONLY = (
    "UsernameTaken",
    "InvalidCredentials",
    "WrongPassword",
    "TooManyExports",
    "TooManyLoginAttempts",
    "TooManyRegistrations",
    "RequestTooLarge",
    "InvalidRequest",
)
# When each error is sent: by class name, and by code for the codes of `InvalidMessage`.
ERROR_WHEN: dict[str, str] = {
    "HavenError": "A defect on the server side ended the turn; or the user's connection host "
    "could not be reached at connect (then close 1012).",
    "InvalidToken": "The token is missing, invalid or of another user, or no `auth` came first "
    "in time. On an open socket (`auth`), the socket keeps its old token.",
    "TokenExpired": "The token has expired: at connect, on `auth`, or `token_grace_s` after "
    "`token_expiring` on an open socket.",
    "LoggedOut": "The socket's token was revoked by `POST /auth/logout`.",
    "AccountDeleted": "The account was erased: every socket of it closes, at once after "
    "`DELETE /me`, within `account_check_s` after `haven users delete`.",
    "SessionNotFound": "No such session, or another user's (never told apart); also when the "
    "session was deleted while the reply was written.",
    "SafetyUnavailable": "The message could not be screened; it was stored but never reached "
    "the language model, and `safety_escalation` (`unknown`) came first.",
    "GenerationFailed": "The reply could not start or failed mid-stream; nothing of it is stored.",
    "Busy": "Too many messages already wait for a reply, or the language model's queue is full.",
    "RateLimited": "Messages sent too fast; the message was not stored. A socket that keeps "
    "on (`rate_limit_close_after` refusals) is closed.",
    "TooManyConnections": "The user already has `max_connections_per_user` sockets open.",
    "ConnectingTooOften": "More than `new_connections_per_minute` new sockets in a minute.",
    "SlowConsumer": "More than `outbound_queue_bytes` waited to be written to the socket.",
    "FrameTooLarge": "A frame larger than `max_frame_bytes`; do not send it again.",
    "Forbidden": "`join`, `counsellor_message` or `leave` from a token (or an account) whose role "
    "is not `counsellor`; nothing changes.",
    "NotFound": "`join` of a conversation that is not in the queue (deleted, never escalated, or "
    "not a session at all: never told apart); `counsellor_message` or `leave` in a conversation "
    "the counsellor is not in.",
    "AlreadyJoined": "`join` of a conversation another counsellor is in.",
    "UnsafeMessage": "A counsellor's `counsellor_message` that the output screen stops (means or "
    "method detail); it was not stored or sent.",
    "StoredDataUnreadable": "A stored message of the conversation failed its integrity check "
    "(altered or moved in the database); the turn stopped rather than use it.",
    "invalid_json": "A text frame that is not JSON.",
    "invalid_msgpack": "A binary frame that is not valid MessagePack (MessagePack sockets).",
    "invalid_message": "Not an object, or a missing, extra or wrongly typed field, or a NUL "
    "(U+0000) in `message_text` or `client_message_id`.",
    "unknown_type": "`type` missing or not a client message type.",
    "empty_message": "`message_text` empty or only whitespace.",
    "message_too_long": "`message_text` longer than `max_message_chars`.",
    "unsupported_frame": "A binary frame on a JSON socket, or a text frame on a MessagePack one.",
    "nothing_to_cancel": "`cancel` with no reply being written, or naming another reply.",
}
CLOSE_MEANING: dict[str, str] = {
    "NORMAL": "Normal closure, e.g. after the client closed the socket.",
    "GOING_AWAY": "The server or proxy is going away (sent by the proxy, not by Haven).",
    "POLICY_VIOLATION": "WebSockets are off or the origin is not allowed. Sent before the "
    "handshake completes, so clients see the handshake fail with HTTP 403.",
    "MESSAGE_TOO_BIG": "A frame was too large (the proxy closes without an `error`). "
    "Reconnecting is fine; sending that frame again is not.",
    "INTERNAL_ERROR": "An unexpected error on the server: reconnect with backoff.",
    "SERVICE_RESTART": "The server is restarting, or the user's connection host went away "
    "(then `internal_error` may come first): reconnect and resume.",
    "INVALID_TOKEN": "Missing or invalid token: log in again; do not retry the same token.",
    "TOKEN_EXPIRED": "The token expired: get a fresh one, then reconnect.",
    "TOO_MANY_CONNECTIONS": "Too many sockets open: close one before connecting again.",
    "LOGGED_OUT": "The token was revoked: log in again.",
    "ACCOUNT_DELETED": "The account was erased with everything it held: do not reconnect.",
    "RATE_LIMITED": "Connecting or sending too fast: wait `retry_after`, then reconnect.",
    "SLOW_CONSUMER": "The client stopped reading (the proxy closes without an `error`): "
    "reconnect and resume.",
}
LIMIT_MEANING: dict[str, str] = {
    "max_frame_bytes": "Largest frame, bytes on the wire (UTF-8 for text); larger: close 1009.",
    "max_message_chars": "Longest `message_text`, in characters; longer: `message_too_long`.",
    "max_queued_turns": "Messages waiting behind the reply in flight; more: `busy`.",
    "max_connections_per_user": "Open sockets; one more: `too_many_connections`, close 4003.",
    "new_connections_per_minute": "New sockets in any 60 s; more: `connecting_too_often`, "
    "close 4008.",
    "message_burst": "`session_message`s accepted at once, then `message_rate_per_s`.",
    "message_rate_per_s": "`session_message`s a second after the burst; more: `rate_limited`.",
    "rate_limit_close_after": "Refusals within `message_burst / message_rate_per_s` seconds "
    "that close the socket (4008).",
    "outbound_queue_bytes": "Bytes waiting to be written to one socket; more: "
    "`slow_consumer`, close 4009.",
    "auth_timeout_s": "Time for the `auth` first frame when no token came with the handshake.",
    "token_expiring_lead_s": "How long before the token expires `token_expiring` is sent.",
    "token_grace_s": "How long after `expires_at` the socket is closed (4002).",
    "account_check_s": "How often the sockets' accounts are checked; one erased by an operator: "
    "`account_deleted`, close 4010.",
    "replay_window_s": "Age of the oldest event `resume` can replay.",
    "replay_max_events": "Most events `resume` can replay.",
    "safety_timeout_s": "Wait for the classifier before failing closed (`safety_unavailable`).",
}
PROXY_MEANING: dict[str, str] = {
    "HAVEN_MAX_FRAME_BYTES": "Largest frame the proxy accepts; larger: close 1009.",
    "HAVEN_WS_PER_MESSAGE_DEFLATE": "`false` turns compression (permessage-deflate) off.",
    "HAVEN_WS_PING_INTERVAL_S": "Seconds between WebSocket pings; `0` turns them off.",
    "HAVEN_WS_PING_TIMEOUT_S": "Seconds to answer a ping before the client is dropped.",
    "HAVEN_OUTBOUND_QUEUE_BYTES": "Bytes the proxy holds for a client that does not read; "
    "more: close 4009.",
}


def wire_type(model: type[BaseModel]) -> str:
    """The `type` a wire model carries, e.g. `session_message`."""
    value: str = get_args(model.model_fields["type"].annotation)[0]
    return value


def model_doc(model: type[BaseModel]) -> str:
    """The model's docstring on one line; every wire model must have one."""
    if not model.__doc__:
        raise ValueError(f"{model.__name__} has no docstring")
    return " ".join(model.__doc__.split())


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def _json_type(prop: dict[str, Any]) -> str:
    if "$ref" in prop:
        name = prop["$ref"].rsplit("/", 1)[-1]
        return f"object ([`{name}`](#{name.lower()}))"
    return str(prop.get("type", "any"))


def _constraints(prop: dict[str, Any]) -> str:
    parts = []
    if "const" in prop:
        parts.append(json.dumps(prop["const"]))
    if "enum" in prop:
        parts.append("one of " + ", ".join(json.dumps(value) for value in prop["enum"]))
    for low, high, prefix in (("minLength", "maxLength", "length "), ("minimum", "maximum", "")):
        if low in prop and high in prop:
            parts.append(f"{prefix}{prop[low]} to {prop[high]}")
        elif low in prop or high in prop:
            parts.append(f"{prefix}≥ {prop[low]}" if low in prop else f"{prefix}≤ {prop[high]}")
    return ", ".join(parts) or "—"


def _fields(model: type[BaseModel], *, inbound: bool, only_own: bool = False) -> str:
    schema = model.model_json_schema(mode="validation" if inbound else "serialization")
    inherited = protocol.ServerEventBase.model_fields if only_own else {}
    rows = []
    for name, info in model.model_fields.items():
        if name in inherited:
            continue
        prop = schema["properties"][name]
        variants = [p for p in prop.get("anyOf", [prop]) if p.get("type") != "null"]
        nullable = len(variants) < len(prop.get("anyOf", [prop]))
        if name != "type" and not info.description:
            raise ValueError(f"{model.__name__}.{name} has no Field(description=...)")
        if inbound:
            required = "yes" if info.is_required() else "no"
        else:
            required = "when set" if nullable else "always"
        description = "The message type." if name == "type" else str(info.description)
        rows.append(
            (f"`{name}`", _json_type(variants[0]), required, _constraints(variants[0]), description)
        )
    header = ("field", "JSON type", "required" if inbound else "present", "constraints", "meaning")
    return _table(header, rows)


def _sections(models: Sequence[type[BaseModel]], *, inbound: bool) -> str:
    parts = []
    for model in models:
        table = _fields(model, inbound=inbound, only_own=not inbound)
        parts.append(f"### `{wire_type(model)}`\n\n{model_doc(model)}\n\n{table}")
    return "\n\n".join(parts)


def _objects() -> str:
    parts = []
    for model in OBJECTS:
        doc = " ".join((model.__doc__ or "").split())
        parts.append(f"#### `{model.__name__}`\n\n{doc}\n\n{_fields(model, inbound=False)}")
    return "\n\n".join(parts)


def _error_classes() -> Iterator[type[HavenError]]:
    stack: list[type[HavenError]] = [HavenError]
    while stack:
        cls = stack.pop(0)
        yield cls
        stack[:0] = cls.__subclasses__()


def error_rows() -> list[tuple[str, bool, int | None, str]]:
    """(code, retryable, close code or None, when) for every error a socket can get."""
    rows = []
    invalid_codes = sorted({*codec.FRAME_ERROR_CODES, *OTHER_INVALID_MESSAGE_CODES})
    for cls in _error_classes():
        keys = invalid_codes if cls is InvalidMessage else [cls.__name__]
        if cls.__name__ in REST_ONLY or cls.__module__ != errors.__name__:
            continue
        for key in keys:
            code = key if cls is InvalidMessage else cls.code
            if key not in ERROR_WHEN:
                raise ValueError(f"error {key!r} has no description in ERROR_WHEN")
            rows.append((code, cls.retryable, cls.close_code, ERROR_WHEN[key]))
    return sorted(rows, key=lambda row: (row[0], row[2] or 0))


def _error_codes() -> str:
    rows = [
        (f"`{code}`", "yes" if retryable else "no", str(close or "—"), when)
        for code, retryable, close, when in error_rows()
    ]
    return _table(("code", "retryable", "close code, when it ends the socket", "sent when"), rows)


def close_rows() -> list[tuple[int, str, str, str, str]]:
    """(code, name, "retryable"/"terminal", error codes sent before it, meaning)."""
    names = {value: name for name, value in vars(CloseCode).items() if name.isupper()}
    if missing := set(names) ^ set(RETRYABLE_CLOSE_CODES):
        raise ValueError(f"close codes not in both CloseCode and RETRYABLE_CLOSE_CODES: {missing}")
    rows = []
    for code, retryable in sorted(RETRYABLE_CLOSE_CODES.items()):
        before = sorted({f"`{c}`" for c, _, close, _ in error_rows() if close == code})
        meaning = CLOSE_MEANING[names[code]]
        word = "retryable" if retryable else "terminal"
        rows.append((code, names[code], word, ", ".join(before) or "—", meaning))
    return rows


def _close_codes() -> str:
    rows = [(str(code), f"`{name}`", word, e, m) for code, name, word, e, m in close_rows()]
    return _table(("code", "name", "retryable or terminal", "after `error`", "meaning"), rows)


def _default(name: str) -> str:
    value = Settings.model_fields[name].default
    text = f"{value:g}" if isinstance(value, float) else str(value)
    if name.endswith("_bytes") and value % 1024 == 0:
        size, unit = (value >> 20, "MiB") if value % (1 << 20) == 0 else (value >> 10, "KiB")
        return f"{text} ({size} {unit})"
    if name.endswith("_per_s"):
        return f"{text}/s"
    return f"{text} s" if name.endswith("_s") else text


def _limits() -> str:
    rows = [(f"`{n}`", f"`HAVEN_{n.upper()}`", _default(n), m) for n, m in LIMIT_MEANING.items()]
    return _table(("setting", "variable", "default", "meaning"), rows)


def _proxy_settings() -> str:
    rows = [(f"`{n}`", f"`{d}`", PROXY_MEANING[n]) for n, d in proxy_hooks.DEFAULTS.items()]
    return _table(("variable", "default", "meaning"), rows)


SECTIONS: dict[str, Callable[[], str]] = {
    "client_frames": lambda: _sections(CLIENT_FRAMES, inbound=True),
    "common_fields": lambda: _fields(protocol.ServerEventBase, inbound=False),
    "server_events": lambda: _sections(SERVER_EVENTS, inbound=False),
    "objects": _objects,
    "error_codes": _error_codes,
    "close_codes": _close_codes,
    "limits": _limits,
    "proxy_settings": _proxy_settings,
}


def _placeholder(match: re.Match[str]) -> str:
    kind, _, name = match.group(1).partition(":")
    if not name:
        return SECTIONS[kind]()
    if kind == "setting":
        return _default(name)
    if kind == "close":
        return str(getattr(CloseCode, name))
    if kind == "const":
        return str(getattr(protocol, name, None) or getattr(codec, name))
    if kind == "proxy":
        return str(getattr(proxy_hooks, name.upper()))
    raise KeyError(match.group(0))


def render() -> str:
    """The Markdown of docs/protocol.md."""
    text = re.sub(r"\{\{([a-z_]+(?::[A-Za-z_]+)?)\}\}", _placeholder, TEMPLATE.read_text())
    if "{{" in text:
        raise ValueError(f"unknown placeholder near {text[text.index('{{') :][:40]!r}")
    return text


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(
        argv, module="haven.protocol_reference", default_path=DOC_PATH, render=render
    )


if __name__ == "__main__":
    raise SystemExit(main())
