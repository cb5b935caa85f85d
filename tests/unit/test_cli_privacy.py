"""The operator commands for people's data against a real, migrated database (SQLite and
PostgreSQL): `haven users delete` and `haven users export`."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import jsonschema
import pytest

from haven.cli import main
from haven.storage import Store
from haven.storage.migrate import upgrade

PASSWORD = "quiet harbour lanterns"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HAVEN_ENVIRONMENT", "HAVEN_JWT_SECRET", "HAVEN_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HAVEN_PASSWORD", PASSWORD)
    return tmp_path


async def _with_conversation(url: str, username: str) -> str:
    async with Store.from_url(url) as store:
        user = await store.get_user_by_username(username)
        assert user is not None
        session = await store.create_session(user.id)
        await store.add_message(user.id, session.id, "user", "something private")
        return user.id


async def _exists(url: str, username: str) -> bool:
    async with Store.from_url(url) as store:
        return await store.get_user_by_username(username) is not None


def test_users_delete_erases_the_account_with_its_conversations(
    env: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(database_url)
    for name in ("ana", "bob"):
        assert main(["users", "create", name, "--database-url", database_url]) == 0
        asyncio.run(_with_conversation(database_url, name))
    assert main(["users", "delete", "ana", "--database-url", database_url]) == 2  # no --yes
    assert asyncio.run(_exists(database_url, "ana"))
    assert main(["users", "delete", "ana", "--yes", "--database-url", database_url]) == 0
    assert "erased ana and its 1 sessions" in capsys.readouterr().out
    assert not asyncio.run(_exists(database_url, "ana"))
    assert asyncio.run(_exists(database_url, "bob"))
    assert main(["users", "delete", "ana", "--yes", "--database-url", database_url]) == 1


def test_users_export_writes_the_documented_json_with_mode_0600(
    env: Path, database_url: str
) -> None:
    upgrade(database_url)
    assert main(["users", "create", "ana", "--database-url", database_url]) == 0
    asyncio.run(_with_conversation(database_url, "ana"))
    output = env / "ana.json"
    argv = ["users", "export", "ana", "--output", str(output), "--database-url", database_url]
    assert main(argv) == 0
    assert output.stat().st_mode & 0o777 == 0o600
    document = json.loads(output.read_text())
    schema = json.loads((Path(__file__).parents[2] / "docs" / "export.schema.json").read_text())
    jsonschema.validate(document, schema)
    [session] = document["sessions"]
    assert [m["text"] for m in session["messages"]] == ["something private"]
    assert main(["users", "export", "nobody", "--database-url", database_url]) == 1
