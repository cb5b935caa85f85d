"""Account roles: parsing, the check, the role in access tokens, the stored role and the
`haven users create --role` command (storage tests on SQLite and PostgreSQL)."""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path

import jwt
import pytest

from haven.auth import TokenService, signing_secret
from haven.cli import main
from haven.errors import Forbidden, InvalidToken
from haven.roles import parse_role, require
from haven.settings import Settings
from haven.storage import Store
from haven.storage.migrate import upgrade

SECRET = secrets.token_urlsafe(48)


def test_parse_role_accepts_the_three_roles_only() -> None:
    assert [parse_role(r) for r in ("user", "counsellor", "admin")] == [
        "user",
        "counsellor",
        "admin",
    ]
    assert parse_role("Admin") is None
    assert parse_role("root") is None
    assert parse_role(None) is None


def test_require_refuses_a_role_not_allowed_with_forbidden() -> None:
    require("counsellor", "counsellor")
    with pytest.raises(Forbidden) as refused:
        require("user", "counsellor")
    assert (refused.value.code, refused.value.http_status) == ("forbidden", 403)
    with pytest.raises(Forbidden):
        require("admin", "counsellor")


def test_issued_token_carries_its_role() -> None:
    tokens = TokenService(SECRET, ttl_s=600)
    token, _ = tokens.issue("u1", "counsellor")
    assert tokens.verify(token).role == "counsellor"
    assert tokens.verify(tokens.issue("u1")[0]).role == "user"


def test_token_without_a_role_is_a_users_token() -> None:
    now = int(time.time())
    token = jwt.encode({"sub": "u1", "iat": now, "exp": now + 60}, SECRET, algorithm="HS256")
    assert TokenService(SECRET, ttl_s=600).verify(token).role == "user"


@pytest.mark.parametrize("role", ["root", "", 1, ["admin"]])
def test_token_with_an_unknown_role_is_invalid(role: object) -> None:
    now = int(time.time())
    claims = {"sub": "u1", "iat": now, "exp": now + 60, "role": role}
    with pytest.raises(InvalidToken):
        TokenService(SECRET, ttl_s=600).verify(jwt.encode(claims, SECRET, algorithm="HS256"))


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    upgrade(database_url)
    async with Store.from_url(database_url) as store:
        yield store


async def test_new_account_is_a_user_and_set_role_changes_it(store: Store) -> None:
    user = await store.create_user("ana", "hash")
    assert user.role == "user" and user.display_name is None
    changed = await store.set_role(user.id, "counsellor")
    assert changed is not None and changed.role == "counsellor"
    assert (await store.get_user_by_username("ana")).role == "counsellor"  # type: ignore[union-attr]


async def test_set_role_of_an_unknown_account_returns_none(store: Store) -> None:
    assert await store.set_role("00000000-0000-0000-0000-000000000000", "admin") is None


def test_users_create_with_role_makes_a_counsellor_whose_token_says_so(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, database_url: str
) -> None:
    for name in ("HAVEN_ENVIRONMENT", "HAVEN_JWT_SECRET", "HAVEN_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HAVEN_PASSWORD", "quiet harbour lanterns")
    upgrade(database_url)
    args = ["users", "create", "cara", "--role", "counsellor", "--database-url", database_url]
    assert main(args) == 0

    async def stored_role() -> str | None:
        async with Store.from_url(database_url) as store:
            user = await store.get_user_by_username("cara")
        return user.role if user else None

    assert asyncio.run(stored_role()) == "counsellor"
    token = _token_for(database_url, "cara")
    settings = Settings()
    service = TokenService(signing_secret(settings), settings.access_token_ttl_s)
    assert service.verify(token).role == "counsellor"


def _token_for(database_url: str, username: str) -> str:
    from haven.cli import issue_token

    return asyncio.run(issue_token(Settings(), database_url, username, None))


def test_users_create_refuses_an_unknown_role(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["users", "create", "cara", "--role", "root", "--database-url", "sqlite://"])
    assert exited.value.code == 2
