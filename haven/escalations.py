"""Escalation counts per period, for crisis-referral reporting, from the escalation audit trail.

    python -m haven.escalations report [--since ISO] [--until ISO] [--period day|week|month]
        [--format table|json|csv] [--database-url URL]
    python -m haven.escalations reads ...   (counsellors' reads: haven/counsellor_reads.py)

Only the time, risk level and action of each record are read: the output holds counts and
nothing that identifies a person, a session or a message. The unit is one audit record (one
escalation, or one generated reply replaced as unsafe). Exit status 2: bad arguments or
settings; 1: the database could not be read. Either way nothing is written.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from haven.risk import RISK_LEVELS
from haven.safety_policy import UNASSESSED, Action
from haven.settings import Settings
from haven.storage.audit import AuditLog, Period, period_windows
from haven.storage.database import create_engine, safe_url, sqlite_path

DEFAULT_WINDOW = timedelta(days=30)
# Outside these years a period boundary could overflow `datetime`; no record is that old anyway.
YEARS = (1900, 9000)
LEVELS = (*RISK_LEVELS, UNASSESSED)
ACTIONS = tuple(action.value for action in Action)


class Refused(Exception):
    """Reported to the operator as one line, with an exit status."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def _timestamp(value: str) -> datetime:
    """ISO 8601 date or date-time; without a zone it is taken as UTC."""
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an ISO 8601 date or time: {value!r}") from None
    if not YEARS[0] <= moment.year <= YEARS[1]:
        raise argparse.ArgumentTypeError(f"{value!r} is outside the years {YEARS[0]}-{YEARS[1]}")
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m haven.escalations", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="escalation counts per period, no personal data")
    report.add_argument("--since", type=_timestamp, help="start, inclusive (default: until - 30d)")
    report.add_argument("--until", type=_timestamp, help="end, exclusive (default: now)")
    report.add_argument("--period", choices=("day", "week", "month"), default="week", help="UTC")
    report.add_argument("--format", choices=("table", "json", "csv"), default="table")
    report.add_argument("--database-url", help="default: HAVEN_DATABASE_URL, else the data dir")
    # Parsed by haven.counsellor_reads itself (see main); listed here for --help.
    commands.add_parser(
        "reads", help="which counsellor read which conversation, when (--help)", add_help=False
    )
    return parser


def _database_url(given: str | None) -> str:
    if given:
        return given
    try:
        return Settings().resolved_database_url
    except ValidationError as error:
        # Messages only: the full error would echo the input values, secrets among them.
        problems = "; ".join(str(e["msg"]) for e in error.errors())
        raise Refused(f"invalid HAVEN_* settings: {problems}", 2) from None


async def _counts(url: str, since: datetime, until: datetime, period: Period) -> list[Any]:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        # Opening it would create an empty database (and its folder).
        raise Refused(f"no database at {path}", 1)
    engine = create_engine(url)
    try:
        return await AuditLog(engine).report(since=since, until=until, period=period)
    except (SQLAlchemyError, OSError) as error:
        raise Refused(
            f"cannot read escalations from {safe_url(url)} ({type(error).__name__}); "
            "is it migrated (python -m haven.storage.migrate)?",
            1,
        ) from None
    finally:
        await engine.dispose()


def build_report(
    rows: Sequence[dict[str, Any]], since: datetime, until: datetime, period: Period
) -> dict[str, Any]:
    """Every period of the window, empty ones included, with its counts by level and action."""
    seen = {str(r["risk_level"]) for r in rows}, {str(r["action"]) for r in rows}
    levels = [*LEVELS, *sorted(seen[0] - set(LEVELS))]
    actions = [*ACTIONS, *sorted(seen[1] - set(ACTIONS))]
    by_period: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_period.setdefault(str(r["period"]), []).append(r)
    periods = []
    for label, start, end in period_windows(since, until, period):
        by_level = dict.fromkeys(levels, 0)
        by_action = dict.fromkeys(actions, 0)
        for r in by_period.get(label, []):
            by_level[str(r["risk_level"])] += int(r["count"])
            by_action[str(r["action"])] += int(r["count"])
        periods.append(
            {
                "period": label,
                "start": _iso(start),
                "end": _iso(end),
                # Cut by the window: its counts cover only part of the period.
                "partial": start < since or end > until,
                "total": sum(by_level.values()),
                "by_risk_level": by_level,
                "by_action": by_action,
            }
        )
    return {"since": _iso(since), "until": _iso(until), "period": period, "periods": periods}


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _flat(entry: dict[str, Any]) -> dict[str, Any]:
    head = {k: entry[k] for k in ("period", "start", "end", "total")}
    head["partial"] = "true" if entry["partial"] else "false"
    levels = {f"level:{k}": v for k, v in entry["by_risk_level"].items()}
    return head | levels | {f"action:{k}": v for k, v in entry["by_action"].items()}


def _table(report: dict[str, Any]) -> list[str]:
    periods = report["periods"]
    lines = [f"Escalation records {report['since']} to {report['until']} by {report['period']}"]
    if not periods:
        return lines
    levels, actions = list(periods[0]["by_risk_level"]), list(periods[0]["by_action"])
    header = ["period", "total", *levels, *(a.removeprefix("resources_and_") for a in actions)]
    cells = [header] + [
        [
            p["period"] + ("*" if p["partial"] else ""),
            str(p["total"]),
            *(str(p["by_risk_level"][k]) for k in levels),
            *(str(p["by_action"][k]) for k in actions),
        ]
        for p in periods
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    groups = (2, 2 + len(levels))  # a bar before the levels and before the actions
    for row in cells:
        padded = [
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ]
        lines.append(
            " | ".join(
                "  ".join(padded[a:b]) for a, b in zip((0, *groups), (*groups, None), strict=True)
            )
        )
    lines.append(
        "levels: risk level as assessed (unknown: could not assess); actions: what Haven did "
        "(resources_and_ dropped from the name)"
    )
    if any(p["partial"] for p in periods):
        lines.append("* the window covers only part of this period")
    return lines


def render(report: dict[str, Any], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(report, indent=2) + "\n"
    if fmt == "csv":
        rows = [_flat(p) for p in report["periods"]]
        out = io.StringIO()
        writer = csv.DictWriter(
            out, fieldnames=list(rows[0]) if rows else ["period"], lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    return "\n".join(_table(report)) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["reads"]:
        from haven import counsellor_reads  # it builds on this module

        return counsellor_reads.main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on unknown options, periods, formats, timestamps
    until: datetime = args.until or datetime.now(UTC)
    since: datetime = args.since or until - DEFAULT_WINDOW
    if since >= until:
        parser.error(f"--since ({_iso(since)}) must be before --until ({_iso(until)})")
    period = cast(Period, args.period)
    try:
        url = _database_url(args.database_url)
        rows = asyncio.run(_counts(url, since, until, period))
    except Refused as refused:
        print(f"{parser.prog}: error: {refused}", file=sys.stderr)
        return refused.status
    sys.stdout.write(render(build_report(rows, since, until, period), args.format))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
