"""Which counsellor read which conversation, and when: the accountability side of the queue.

    haven escalations reads [--since ISO] [--until ISO] [--format table|json|csv]
        [--database-url URL]

One line per read recorded in `counsellor_reads`: the time, the counsellor's username, the
session id and what was read (`queue`: the conversation was listed to them, by `GET
/counsellor/queue` or a live `escalation_queued`; `join`: they joined it and were sent the
whole conversation, then its events as they happened). Unlike
`haven escalations report` this names staff and sessions, never the person nor any message.
Exit status 2: bad arguments or settings; 1: the database could not be read.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from haven.escalations import DEFAULT_WINDOW, Refused, _database_url, _iso, _timestamp
from haven.storage.database import create_engine, safe_url, sqlite_path
from haven.storage.queue import CounsellorQueue
from haven.storage.tables import User

FIELDS = ("at", "counsellor", "session_id", "action")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haven escalations reads", description=__doc__)
    parser.add_argument("--since", type=_timestamp, help="start, inclusive (default: until - 30d)")
    parser.add_argument("--until", type=_timestamp, help="end, exclusive (default: now)")
    parser.add_argument("--format", choices=("table", "json", "csv"), default="table")
    parser.add_argument("--database-url", help="default: HAVEN_DATABASE_URL, else the data dir")
    return parser


async def read_log(url: str, since: datetime, until: datetime) -> list[dict[str, str]]:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise Refused(f"no database at {path}", 1)
    engine = create_engine(url)
    try:
        reads = await CounsellorQueue(engine).reads(since=since, until=until)
        ids = sorted({read.counsellor_id for read in reads})
        async with engine.connect() as conn:
            names = dict(
                (await conn.execute(select(User.id, User.username).where(User.id.in_(ids))))
                .tuples()
                .all()
            )
    except (SQLAlchemyError, OSError) as error:
        raise Refused(
            f"cannot read counsellor reads from {safe_url(url)} ({type(error).__name__}); "
            "is it migrated (python -m haven.storage.migrate)?",
            1,
        ) from None
    finally:
        await engine.dispose()
    return [
        {
            "at": _iso(read.created_at),
            # An erased account keeps its id in the audit.
            "counsellor": names.get(read.counsellor_id, read.counsellor_id),
            "session_id": read.session_id,
            "action": read.action,
        }
        for read in reads
    ]


def render(rows: list[dict[str, str]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(rows, indent=2) + "\n"
    out = io.StringIO()
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return out.getvalue()
    cells = [list(FIELDS)] + [[row[f] for f in FIELDS] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(FIELDS))]
    for row in cells:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")
    return out.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    until: datetime = args.until or datetime.now(UTC)
    since: datetime = args.since or until - DEFAULT_WINDOW
    if since >= until:
        parser.error(f"--since ({_iso(since)}) must be before --until ({_iso(until)})")
    try:
        rows = asyncio.run(read_log(_database_url(args.database_url), since, until))
    except Refused as refused:
        print(f"{parser.prog}: error: {refused}", file=sys.stderr)
        return refused.status
    sys.stdout.write(render(rows, args.format))
    return 0
