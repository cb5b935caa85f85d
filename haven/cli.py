"""`haven`: the terminal client and operator commands.

    haven chat [--url URL] [--username U] [--register] [--session ID | --new]
    haven users create USERNAME [--locale L] [--role ROLE] [--database-url URL]
    haven users delete USERNAME --yes         (erase the account and all it holds)
    haven users export USERNAME [--output F]  (everything held about it, as JSON)
    haven keys rotate                         (re-wrap data keys under HAVEN_MASTER_KEY)
    haven retention run [--days N]            (delete conversations past retention_days)
    haven token USERNAME [--ttl-s N]          (testing only; refused in production)
    haven escalations report ...              (as `python -m haven.escalations report`)

Passwords are read with getpass, or from HAVEN_PASSWORD for scripts. Exit status 2: bad
arguments or settings; 1: the server or the database refused or could not be reached.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
from collections.abc import Sequence

from pydantic import ValidationError
from sqlalchemy.exc import SQLAlchemyError

from haven import cli_privacy, escalations
from haven.accounts import Registration
from haven.auth import TokenService, hash_password, signing_secret
from haven.errors import UsernameTaken
from haven.escalations import Refused
from haven.roles import DEFAULT_ROLE, ROLES, Role
from haven.settings import Settings
from haven.storage.database import safe_url, sqlite_path
from haven.storage.store import Store

PASSWORD_ENV = "HAVEN_PASSWORD"


def read_password(prompt: str = "Password: ") -> str:
    """HAVEN_PASSWORD when set (scripts), else asked for without echo."""
    return os.environ.get(PASSWORD_ENV) or getpass.getpass(prompt)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="haven", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    chat = commands.add_parser("chat", help="chat with a running Haven from the terminal")
    chat.add_argument("--url", default="http://127.0.0.1:3000", help="the server's base URL")
    chat.add_argument("--username", help="default: asked for")
    chat.add_argument("--register", action="store_true", help="create the account first")
    chat.add_argument("--locale", help="with --register: region for crisis resources")
    which = chat.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="continue this session")
    which.add_argument("--new", action="store_true", help="start a new session")

    users = commands.add_parser("users", help="manage accounts in the database")
    user_commands = users.add_subparsers(dest="users_command", required=True)
    create = user_commands.add_parser("create", help="create an account directly")
    create.add_argument("username")
    create.add_argument("--locale", help="region for crisis resources, e.g. US or GB")
    create.add_argument(
        "--role", choices=ROLES, default=DEFAULT_ROLE, help="what it may do (default: user)"
    )
    create.add_argument("--database-url", help="default: HAVEN_DATABASE_URL, else the data dir")

    token = commands.add_parser("token", help="print an access token for a user (testing only)")
    token.add_argument("username")
    token.add_argument("--ttl-s", type=int, help="lifetime in seconds (default: the setting)")
    token.add_argument("--database-url", help="default: HAVEN_DATABASE_URL, else the data dir")

    cli_privacy.add_commands(commands, user_commands)

    # Parsed by haven.escalations itself (see main); listed here for --help.
    commands.add_parser(
        "escalations", help="escalation counts: haven escalations report --help", add_help=False
    )
    return parser


def _settings() -> Settings:
    try:
        return Settings()
    except ValidationError as error:
        # Messages only: the full error would echo the input values, secrets among them.
        problems = "; ".join(str(e["msg"]) for e in error.errors())
        raise Refused(f"invalid HAVEN_* settings: {problems}", 2) from None


def _open_store(url: str) -> Store:
    path = sqlite_path(url)
    if path is not None and not path.is_file():
        # Opening it would create an empty, unmigrated database.
        raise Refused(f"no database at {path}; run python -m haven.storage.migrate first", 1)
    return Store.from_url(url)


def _check_registration(username: str, password: str, locale: str | None) -> str | None:
    """The same rules as `POST /auth/register`, so the account can log in over REST."""
    try:
        return Registration(username=username, password=password, locale=locale).locale
    except ValidationError as error:
        problems = "; ".join(str(e["msg"]) for e in error.errors(include_input=False))
        raise Refused(f"cannot create {username!r}: {problems}", 2) from None


async def create_user(
    url: str, username: str, password: str, locale: str | None, role: Role = DEFAULT_ROLE
) -> str:
    """Creates the account with the REST register's hashing; returns its id."""
    locale = _check_registration(username, password, locale)
    password_hash = await asyncio.to_thread(hash_password, password)
    async with _open_store(url) as store:
        try:
            user = await store.create_user(username, password_hash, locale=locale, role=role)
        except UsernameTaken:
            raise Refused(f"the username {username!r} is taken", 1) from None
        except (SQLAlchemyError, OSError) as error:
            raise Refused(f"cannot write to {safe_url(url)} ({type(error).__name__})", 1) from None
    return user.id


async def issue_token(settings: Settings, url: str, username: str, ttl_s: int | None) -> str:
    """A token signed like `POST /auth/login`'s, for an existing user."""
    if settings.environment == "production":
        raise Refused("haven token is for testing: refused in production", 2)
    ttl = settings.access_token_ttl_s if ttl_s is None else ttl_s
    if ttl <= 0:
        raise Refused("--ttl-s must be positive", 2)
    async with _open_store(url) as store:
        try:
            user = await store.get_user_by_username(username)
        except (SQLAlchemyError, OSError) as error:
            raise Refused(f"cannot read {safe_url(url)} ({type(error).__name__})", 1) from None
    if user is None:
        raise Refused(f"no user {username!r}", 1)
    try:
        tokens = TokenService(signing_secret(settings), ttl)
    except RuntimeError as error:
        raise Refused(str(error), 2) from None
    token, _ = tokens.issue(user.id, user.role)
    return token


def _run(args: argparse.Namespace) -> int:
    if args.command == "chat":
        from haven.cli_chat import chat  # websockets and httpx: only for the client

        return chat(args, read_password)
    settings = _settings()
    url = args.database_url or settings.resolved_database_url
    if cli_privacy.handles(args):
        return cli_privacy.run(args, settings, url)
    if args.command == "users":
        password = read_password(f"Password for {args.username}: ")
        user_id = asyncio.run(create_user(url, args.username, password, args.locale, args.role))
        print(f"created {args.username} ({user_id}, {args.role})")
        return 0
    print(asyncio.run(issue_token(settings, url, args.username, args.ttl_s)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["escalations"]:
        return escalations.main(argv[1:])
    parser = _parser()
    args = parser.parse_args(argv)  # exits 2 on bad arguments
    try:
        return _run(args)
    except Refused as refused:
        print(f"haven {args.command}: error: {refused}", file=sys.stderr)
        return refused.status
    except (KeyboardInterrupt, EOFError):
        print(file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
