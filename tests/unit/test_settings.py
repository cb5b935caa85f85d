"""Settings refuse unsafe defaults outside development and accept the seed's variable."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from haven.settings import Settings


@pytest.mark.parametrize("environment", ["production", "test"])
def test_missing_or_short_secret_is_refused_outside_development(environment: str) -> None:
    with pytest.raises(ValidationError, match="HAVEN_JWT_SECRET"):
        Settings(environment=environment)
    with pytest.raises(ValidationError, match="HAVEN_JWT_SECRET"):
        Settings(environment=environment, jwt_secret="short")


def test_strong_secret_is_accepted_in_production() -> None:
    settings = Settings(environment="production", jwt_secret="k" * 40)
    assert settings.jwt_secret is not None and "k" * 40 not in repr(settings)


def test_development_runs_without_a_secret() -> None:
    assert Settings(environment="development").jwt_secret is None


def test_seed_enable_websocket_variable_turns_the_socket_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENABLE_WEBSOCKET", "false")
    assert Settings().enable_websocket is False
    monkeypatch.delenv("ENABLE_WEBSOCKET")
    assert Settings().enable_websocket is True


def test_unknown_setting_is_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(enable_websebsocket=False)  # type: ignore[call-arg]


def test_sqlite_under_data_dir_is_the_default_database(tmp_path: object) -> None:
    settings = Settings(data_dir=tmp_path)  # type: ignore[arg-type]
    assert settings.resolved_database_url == f"sqlite+aiosqlite:///{tmp_path}/haven.db"
