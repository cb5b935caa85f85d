"""The operator commands for people's data: `haven users delete|export`, `haven keys rotate`,
`haven retention run`. Each works on the database directly, with the master key of the
settings (`HAVEN_MASTER_KEY`)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from sqlalchemy.exc import SQLAlchemyError

from haven.escalations import Refused
from haven.settings import Settings
from haven.storage import retention
from haven.storage.database import safe_url, sqlite_path
from haven.storage.master_key import master_keys
from haven.storage.rotation import rotate
from haven.storage.store import Store

USER_COMMANDS = ("delete", "export")
COMMANDS = ("keys", "retention")
_DATABASE_HELP = "default: HAVEN_DATABASE_URL, else the data dir"


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    user_commands: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    delete = user_commands.add_parser(
        "delete", help="erase an account and everything it holds (as DELETE /me)"
    )
    delete.add_argument("username")
    delete.add_argument("--yes", action="store_true", help="confirm: this cannot be undone")
    delete.add_argument("--database-url", help=_DATABASE_HELP)
    export = user_commands.add_parser(
        "export", help="everything held about an account, as JSON (as GET /me/export)"
    )
    export.add_argument("username")
    export.add_argument("--output", type=Path, help="write it here (mode 0600), not to stdout")
    export.add_argument("--database-url", help=_DATABASE_HELP)

    keys = commands.add_parser("keys", help="the master key that wraps every user's data key")
    key_commands = keys.add_subparsers(dest="keys_command", required=True)
    rotate = key_commands.add_parser(
        "rotate",
        help="re-wrap every data key under HAVEN_MASTER_KEY (the old key in "
        "HAVEN_MASTER_KEY_PREVIOUS); safe to interrupt and run again",
    )
    rotate.add_argument("--database-url", help=_DATABASE_HELP)

    kept = commands.add_parser("retention", help="delete conversations past retention_days")
    kept_commands = kept.add_subparsers(dest="retention_command", required=True)
    run_once = kept_commands.add_parser(
        "run", help="delete every conversation with no message for the retention period, now"
    )
    run_once.add_argument(
        "--days", type=int, help="default: HAVEN_RETENTION_DAYS (unset: everything is kept)"
    )
    run_once.add_argument("--database-url", help=_DATABASE_HELP)


def handles(args: argparse.Namespace) -> bool:
    return args.command in COMMANDS or (
        args.command == "users" and args.users_command in USER_COMMANDS
    )


def run(args: argparse.Namespace, settings: Settings, url: str) -> int:
    if args.command == "users" and args.users_command == "delete":
        if not args.yes:
            raise Refused(f"erasing {args.username!r} cannot be undone: add --yes", 2)
        sessions = asyncio.run(erase_user(settings, url, args.username))
        print(f"erased {args.username} and its {sessions} sessions")
        return 0
    if args.command == "users" and args.users_command == "export":
        asyncio.run(export_user(settings, url, args.username, args.output))
        return 0
    if args.command == "keys":
        return asyncio.run(rotate_keys(settings, url))
    if args.command == "retention":
        days = args.days if args.days is not None else settings.retention_days
        if days is None:
            print("retention_days is not set: every conversation is kept")
            return 0
        if days < 1:
            raise Refused("--days must be at least 1", 2)
        count = asyncio.run(expire(settings, url, days))
        print(f"deleted {count} conversations with no message in the last {days} days")
        return 0
    raise Refused(f"unknown command {args.command!r}", 2)  # pragma: no cover - argparse


def open_store(settings: Settings, url: str) -> Store:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        raise Refused(f"no database at {path}; run python -m haven.storage.migrate first", 1)
    try:
        keys = master_keys(settings)
    except (RuntimeError, ValueError) as error:
        raise Refused(str(error), 2) from None
    return Store.from_url(url, keys)


async def erase_user(settings: Settings, url: str, username: str) -> int:
    """Erases the account; returns how many sessions went with it. Its open sockets, if any,
    store nothing more, and close with 4010 at their connection host's next account check
    (`account_check_s`)."""
    async with open_store(settings, url) as store:
        try:
            user = await store.get_user_by_username(username)
            erased = await store.erasure.erase(user.id) if user is not None else None
        except (SQLAlchemyError, OSError) as error:
            raise Refused(f"cannot write to {safe_url(url)} ({type(error).__name__})", 1) from None
    if erased is None:
        raise Refused(f"no user {username!r}", 1)
    print(f"erased account {erased.user_id}", file=sys.stderr)
    return len(erased.session_ids)


async def export_user(settings: Settings, url: str, username: str, output: Path | None) -> None:
    """Writes the account's export (docs/export.schema.json) to `output`, or to stdout."""
    async with open_store(settings, url) as store:
        try:
            user = await store.get_user_by_username(username)
            if user is None:
                raise Refused(f"no user {username!r}", 1)
            if output is None:
                await _write(store, user.id, sys.stdout)
                return
            # Health data: readable by the operator only, from its first byte.
            fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                await _write(store, user.id, out)
        except (SQLAlchemyError, OSError) as error:
            raise Refused(
                f"cannot export from {safe_url(url)} ({type(error).__name__})", 1
            ) from None


async def _write(store: Store, user_id: str, out: TextIO) -> None:
    async for piece in store.export.export(user_id):
        out.write(piece)


async def rotate_keys(settings: Settings, url: str) -> int:
    """0 when every data key is under the current master key; 1 when some are not (their
    master key was not given: set it as HAVEN_MASTER_KEY_PREVIOUS and run again)."""
    async with open_store(settings, url) as store:
        try:
            report = await rotate(store.engine, store.keys.master)
        except (SQLAlchemyError, OSError) as error:
            raise Refused(f"cannot rotate in {safe_url(url)} ({type(error).__name__})", 1) from None
    print(
        f"re-wrapped {report.rewrapped} data keys under master key {report.current_key_id}; "
        f"{report.remaining} remain under other keys"
    )
    if report.unreadable:
        print(
            f"{len(report.unreadable)} data keys are wrapped by a master key not given: set it "
            "as HAVEN_MASTER_KEY_PREVIOUS and run again",
            file=sys.stderr,
        )
    return 1 if report.remaining else 0


async def expire(settings: Settings, url: str, days: int) -> int:
    async with open_store(settings, url) as store:
        try:
            deleted = await retention.delete_expired(
                store.engine, retention.cutoff(datetime.now(UTC), days)
            )
        except (SQLAlchemyError, OSError) as error:
            raise Refused(f"cannot write to {safe_url(url)} ({type(error).__name__})", 1) from None
    return len(deleted)
