"""`python -m haven.escalations report`: counts per period from a real, migrated database (SQLite
and PostgreSQL: tests/conftest.py), and nothing in the output that points at a person, a session
or a message."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import inspect, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

from haven.escalations import build_report, main
from haven.storage import Store
from haven.storage.database import sqlite_path
from haven.storage.migrate import upgrade
from haven.storage.tables import Base, Escalation
from tests.postgres import Postgres

CRISIS = "resources_and_crisis_reply"
CHECK_IN = "resources_and_safety_check_in"
NO_REPLY = "resources_and_no_reply"
REPLACED = "unsafe_reply_replaced"
SECRET_TEXT = "I have the pills counted out on my desk"


@dataclass(frozen=True)
class Ids:
    username: str
    user_id: str
    session_id: str
    message_id: str


def _url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


async def _seed(url: str, records: list[tuple[datetime, str, str]]) -> Ids:
    """One real user, session and message, and an escalation of it at each given time."""
    async with Store.from_url(url) as store:
        user = await store.create_user("river.m", "hash")
        session = await store.create_session(user.id)
        message = await store.add_message(user.id, session.id, "user", SECRET_TEXT)
        for at, level, action in records:
            record = await store.audit.record_escalation(
                user_id=user.id,
                session_id=session.id,
                message_id=message.id,
                risk_level=level,
                scores={"high": 0.61, "critical": 0.27},
                model_id="minilm-l6-head",
                model_version="2+c2116068",
                raised_by="means_ready",
                action=action,
            )
            async with store.engine.begin() as conn:
                await conn.execute(
                    update(Escalation).where(Escalation.id == record.id).values(created_at=at)
                )
    return Ids("river.m", user.id, session.id, message.id)


def _database(url: str, records: list[tuple[datetime, str, str]]) -> tuple[str, Ids]:
    upgrade(url)
    return url, asyncio.run(_seed(url, records))


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusals
        code = int(exit_.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _json_report(url: str, capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, object]:
    code, out, err = _run(["report", "--database-url", url, "--format", "json", *args], capsys)
    assert (code, err) == (0, "")
    report: dict[str, object] = json.loads(out)
    return report


def _at(day: int, hour: int = 12, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


# Three weeks of November 2026 (ISO weeks start on Monday: 2, 9, 16, 23 November).
NOVEMBER = [
    (_at(2, 0), "critical", CRISIS),  # the first instant of W45
    (_at(8, 23), "high", CHECK_IN),  # the last hour of W45
    (_at(9, 0), "high", CHECK_IN),  # the first instant of W46
    (_at(10), "high", REPLACED),
    (_at(19), "unknown", NO_REPLY),
    (_at(20), "critical", CRISIS),
    (_at(22), "high", CHECK_IN),
]


def test_records_are_counted_in_the_iso_week_they_were_made(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(database_url, NOVEMBER)
    report = _json_report(url, capsys, "--since", "2026-11-02", "--until", "2026-11-30")
    periods = {p["period"]: p for p in report["periods"]}  # type: ignore[attr-defined]
    assert list(periods) == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert [p["total"] for p in periods.values()] == [2, 2, 3, 0]
    assert periods["2026-W45"]["by_risk_level"] == {
        "none": 0,
        "low": 0,
        "medium": 0,
        "high": 1,
        "critical": 1,
        "unknown": 0,
    }
    assert periods["2026-W46"]["by_action"] == {CRISIS: 0, CHECK_IN: 1, NO_REPLY: 0, REPLACED: 1}
    assert periods["2026-W47"]["by_action"] == {CRISIS: 1, CHECK_IN: 1, NO_REPLY: 1, REPLACED: 0}
    assert not any(p["partial"] for p in periods.values())


def test_records_are_counted_in_the_day_and_month_of_their_utc_time(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # 23:30 in New York on 31 October is 03:30 UTC on 1 November.
    late_evening_new_york = datetime(2026, 10, 31, 23, 30, tzinfo=timezone(timedelta(hours=-4)))
    url, _ = _database(
        database_url,
        [(late_evening_new_york, "high", CHECK_IN), (_at(15, month=10), "high", CHECK_IN)],
    )
    monthly = _json_report(
        url, capsys, "--since", "2026-10-01", "--until", "2026-12-01", "--period", "month"
    )
    assert [(p["period"], p["total"]) for p in monthly["periods"]] == [  # type: ignore[attr-defined]
        ("2026-10", 1),
        ("2026-11", 1),
    ]
    daily = _json_report(
        url, capsys, "--since", "2026-10-31", "--until", "2026-11-02", "--period", "day"
    )
    assert [(p["period"], p["total"]) for p in daily["periods"]] == [  # type: ignore[attr-defined]
        ("2026-10-31", 0),
        ("2026-11-01", 1),
    ]


def test_since_is_inclusive_until_is_exclusive_and_cut_periods_are_marked_partial(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(database_url, NOVEMBER)
    # From the W46 replaced reply, a Tuesday noon (counted), to the W47 critical one (not counted).
    report = _json_report(
        url, capsys, "--since", "2026-11-10T12:00:00Z", "--until", "2026-11-20T12:00:00+00:00"
    )
    periods = report["periods"]
    assert [
        (p["period"], p["start"], p["end"], p["total"], p["partial"])
        for p in periods  # type: ignore[attr-defined]
    ] == [
        ("2026-W46", "2026-11-09T00:00:00Z", "2026-11-16T00:00:00Z", 1, True),
        ("2026-W47", "2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z", 1, True),
    ]
    assert periods[0]["by_action"][REPLACED] == 1  # type: ignore[index]


def test_default_window_is_the_last_30_days_of_the_database_in_settings(
    database_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    url, _ = _database(
        database_url,
        [
            (now - timedelta(hours=1), "critical", CRISIS),
            (now - timedelta(days=40), "high", CHECK_IN),
        ],
    )
    monkeypatch.setenv("HAVEN_DATABASE_URL", url)
    code, out, err = _run(["report", "--format", "json", "--period", "month"], capsys)
    assert (code, err) == (0, "")
    assert sum(p["total"] for p in json.loads(out)["periods"]) == 1


@pytest.mark.parametrize("fmt", ["table", "json", "csv"])
def test_report_holds_no_ids_usernames_text_or_scores(
    database_url: str, capsys: pytest.CaptureFixture[str], fmt: str
) -> None:
    url, ids = _database(database_url, NOVEMBER)
    code, out, _ = _run(
        [
            "report",
            "--database-url",
            url,
            "--since",
            "2026-11-01",
            "--until",
            "2026-12-01",
            "--format",
            fmt,
        ],
        capsys,
    )
    assert code == 0 and "2026-W47" in out
    for private in (ids.username, ids.user_id, ids.session_id, ids.message_id, SECRET_TEXT):
        assert private not in out
    for value in (ids.user_id, ids.session_id, ids.message_id):
        # Not even a fragment of an id (the shortest UUID group has four hex digits).
        assert all(part not in out for part in value.split("-") if not part.isdigit())
    assert "0.61" not in out and "means_ready" not in out


def test_csv_has_one_row_per_period_with_the_same_counts_as_json(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _database(database_url, NOVEMBER)
    window = ["--since", "2026-11-02", "--until", "2026-11-30"]
    code, out, _ = _run(["report", "--database-url", url, "--format", "csv", *window], capsys)
    rows = list(csv.DictReader(io.StringIO(out)))
    assert code == 0
    assert [(r["period"], r["total"], r["level:high"], r[f"action:{CHECK_IN}"]) for r in rows] == [
        ("2026-W45", "2", "1", "1"),
        ("2026-W46", "2", "2", "1"),
        ("2026-W47", "3", "1", "1"),
        ("2026-W48", "0", "0", "0"),
    ]


def test_a_level_or_action_the_code_does_not_know_gets_its_own_count() -> None:
    rows = [{"period": "2026-W45", "risk_level": "severe", "action": "paged_on_call", "count": 2}]
    report = build_report(rows, _at(2, 0), _at(9, 0), "week")
    (period,) = report["periods"]
    assert period["total"] == 2
    assert period["by_risk_level"]["severe"] == 2
    assert period["by_action"]["paged_on_call"] == 2


async def _tables(url: str) -> set[str]:
    async with Store.from_url(url) as store, store.engine.connect() as conn:
        return set(await conn.run_sync(lambda sync: inspect(sync).get_table_names()))


def _snapshot(url: str) -> dict[str, object]:
    """Every byte of a SQLite database's folder; every row of a PostgreSQL database."""
    path = sqlite_path(url)
    if path is not None:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.parent.iterdir())
        }

    def rows(conn: Connection) -> dict[str, object]:
        return {
            table.name: sorted(map(tuple, conn.execute(select(table)).all()))
            for table in Base.metadata.sorted_tables
        }

    async def read() -> dict[str, object]:
        async with Store.from_url(url) as store, store.engine.connect() as conn:
            return await conn.run_sync(rows)

    return asyncio.run(read())


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["report", "--since", "2026-11-20", "--until", "2026-11-01"], "must be before --until"),
        (["report", "--since", "2026-11-01", "--until", "2026-11-01"], "must be before --until"),
        (["report", "--period", "year"], "invalid choice: 'year'"),
        (["report", "--format", "xml"], "invalid choice: 'xml'"),
        (["report", "--since", "last tuesday"], "not an ISO 8601 date or time"),
        (["report", "--until", "0001-01-01"], "outside the years"),
        ([], "required: command"),
    ],
)
def test_bad_arguments_exit_2_with_a_reason_and_leave_the_database_untouched(
    database_url: str, capsys: pytest.CaptureFixture[str], args: list[str], complaint: str
) -> None:
    url, _ = _database(database_url, NOVEMBER)
    before = _snapshot(url)
    code, out, err = _run([*args, "--database-url", url] if args else args, capsys)
    assert code == 2
    assert out == ""
    assert complaint in err
    assert _snapshot(url) == before


def test_missing_database_exits_1_and_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nowhere" / "haven.db"
    code, out, err = _run(["report", "--database-url", _url(missing)], capsys)
    assert (code, out) == (1, "")
    assert "no database at" in err
    assert not missing.parent.exists()


def test_missing_postgresql_database_exits_1_and_is_not_created(
    postgres_server: Postgres, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = postgres_server.url("haven_test_never_created")
    code, out, err = _run(["report", "--database-url", missing], capsys)
    assert (code, out) == (1, "")
    assert "cannot read escalations" in err and "haven_test_never_created" in err
    with pytest.raises(DBAPIError, match="does not exist"):
        asyncio.run(_tables(missing))


def test_unmigrated_database_exits_1_and_says_to_migrate(
    database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    url = database_url
    upgrade(url, "0001")  # before the escalations table existed

    tables = asyncio.run(_tables(url))
    assert "users" in tables and "escalations" not in tables
    code, out, err = _run(["report", "--database-url", url], capsys)
    assert (code, out) == (1, "")
    assert "haven.storage.migrate" in err


def test_invalid_settings_exit_2_without_echoing_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAVEN_ENVIRONMENT", "production")
    monkeypatch.setenv("HAVEN_JWT_SECRET", "too-short-secret")
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path))
    code, out, err = _run(["report"], capsys)
    assert (code, out) == (2, "")
    assert "HAVEN_JWT_SECRET" in err and "too-short-secret" not in err
    assert list(tmp_path.iterdir()) == []


async def test_escalations_of_an_erased_account_are_listed_without_links(
    database_url: str,
) -> None:
    upgrade(database_url)
    async with Store.from_url(database_url) as store:
        user = await store.create_user("ana", "hash")
        session = await store.create_session(user.id)
        await store.audit.record_escalation(
            user_id=user.id,
            session_id=session.id,
            message_id=str(uuid.uuid4()),
            risk_level="high",
            scores={"high": 0.9},
            model_id="m",
            model_version="1",
            raised_by=None,
            action="crisis_resources",
        )
        assert await store.erasure.erase(user.id) is not None
        [record] = await store.audit.escalations()
    assert (record.user_id, record.session_id, record.message_id) == (None, None, None)
    assert record.risk_level == "high"
