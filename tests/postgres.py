"""A throwaway PostgreSQL server for the tests that touch storage.

`initdb` into a temporary folder, `postgres` listening only on a Unix socket in that folder (no
TCP port to collide with, nothing reachable from the network), one empty database per test, and
all of it removed when the test session ends. The binaries are looked up in
`$HAVEN_TEST_PG_BINDIR`, on `PATH`, through `pg_config --bindir`, and in Debian's
`/usr/lib/postgresql/<version>/bin`. PostgreSQL refuses to run as root: under root the server
runs as the `postgres` user that the Debian package creates.

`HAVEN_TEST_POSTGRES_URL` (e.g. `postgresql+asyncpg://postgres@127.0.0.1/postgres`) uses a
server of your own instead; the tests create and drop databases named `haven_test_*` on it.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import pwd
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from sqlalchemy.engine import URL, make_url

SERVER_USER = "postgres"  # what the Debian package creates; used when the tests run as root
SUPERUSER = "haven"
START_TIMEOUT_S = 60.0
_names = itertools.count(1)


class PostgresUnavailable(Exception):
    """No PostgreSQL to test against (the reason says what to install or set)."""


def find_bindir() -> Path | None:
    """The folder holding `initdb` and `postgres`, or None."""
    candidates: list[Path] = []
    if explicit := os.environ.get("HAVEN_TEST_PG_BINDIR"):
        candidates.append(Path(explicit))
    if initdb := shutil.which("initdb"):
        # Resolved: a symlink on PATH (Debian's /usr/local/bin) points into the real bindir.
        candidates.append(Path(initdb).resolve().parent)
    if pg_config := shutil.which("pg_config"):
        result = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if result.returncode == 0 and result.stdout.strip():
            candidates.append(Path(result.stdout.strip()))
    debian = Path("/usr/lib/postgresql").glob("*/bin")
    candidates.extend(sorted(debian, key=_version_key, reverse=True))
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def _version_key(bindir: Path) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _in_thread(work: Coroutine[Any, Any, None]) -> None:
    """Runs `work` to its end on an event loop of its own thread: asyncio.run on this thread
    would unset the loop that pytest-asyncio set for the test."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(asyncio.run, work).result()


async def _connect(url: URL) -> Any:
    import asyncpg

    return await asyncpg.connect(
        user=url.username,
        password=url.password,
        host=url.query.get("host") or url.host,
        port=url.port,
        database=url.database or "postgres",
    )


async def _create(url: URL, name: str) -> None:
    conn = await _connect(url)
    try:
        version = int(await conn.fetchval("SELECT current_setting('server_version_num')"))
        # PostgreSQL 15 copies the template through the WAL by default; for a small database a
        # plain file copy is several times faster (~0.1 s instead of ~0.5 s a test here).
        strategy = " STRATEGY FILE_COPY" if version >= 150000 else ""
        await conn.execute(f'CREATE DATABASE "{name}"{strategy}')
    finally:
        await conn.close()


async def _drop(url: URL, name: str) -> None:
    conn = await _connect(url)
    try:
        # FORCE: a test that failed half-way may have left connections open.
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


class Postgres:
    """A server on which the tests may create and drop databases."""

    def __init__(self, admin_url: URL) -> None:
        self.admin_url = admin_url

    def url(self, database: str) -> str:
        url = self.admin_url.set(drivername="postgresql+asyncpg", database=database)
        return url.render_as_string(hide_password=False)

    def create_database(self) -> str:
        name = f"haven_test_{os.getpid()}_{next(_names)}"
        _in_thread(_create(self.admin_url, name))
        return name

    def drop_database(self, name: str) -> None:
        _in_thread(_drop(self.admin_url, name))

    def stop(self) -> None:
        pass


class ThrowawayPostgres(Postgres):
    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.user = _server_user()
        self.root = Path(tempfile.mkdtemp(prefix="haven-pg-"))
        self.process: subprocess.Popen[bytes] | None = None
        # Who the server's processes run as (None: as this process); no supplementary groups.
        self._uid: int | None = None
        self._gid: int | None = None
        self._groups: list[int] | None = None
        if self.user is not None:
            self._uid, self._gid, self._groups = self.user.pw_uid, self.user.pw_gid, []
            os.chown(self.root, self.user.pw_uid, self.user.pw_gid)
        # The socket lives in `root`; asyncpg reads a path in `host` as a socket folder.
        super().__init__(
            URL.create(
                "postgresql+asyncpg", username=SUPERUSER, database="postgres"
            ).update_query_dict({"host": str(self.root)})
        )

    def start(self) -> None:
        data = self.root / "data"
        initdb = subprocess.run(
            [
                str(self.bindir / "initdb"),
                f"--pgdata={data}",
                f"--username={SUPERUSER}",
                "--auth=trust",  # reachable only through the socket in a folder of ours
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=self.root,
            capture_output=True,
            text=True,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed ({initdb.returncode}):\n{initdb.stderr[-4000:]}")
        log = (self.root / "server.log").open("wb")
        self.process = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D",
                str(data),
                "-k",
                str(self.root),
                "-c",
                "listen_addresses=",
                # Durability is not under test here and costs seconds per run.
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ],
            cwd=self.root,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group: Ctrl-C reaches pytest, whose teardown stops
            # the server (and removes its folder) in order.
            start_new_session=True,
            user=self._uid,
            group=self._gid,
            extra_groups=self._groups,
        )
        log.close()
        self._wait_ready()

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited ({self.process.returncode}):\n{self._log()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-q", "-h", str(self.root), "-U", SUPERUSER],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"postgres not ready after {START_TIMEOUT_S:.0f} s:\n{self._log()}")

    def _log(self) -> str:
        try:
            return (self.root / "server.log").read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # "fast" shutdown: ends every session
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


def _server_user() -> pwd.struct_passwd | None:
    """Who the server runs as: None for the current user; `postgres` under root."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise PostgresUnavailable(
            f"running as root and there is no {SERVER_USER!r} user to run PostgreSQL as "
            "(the Debian package `postgresql` creates it)"
        ) from None


def start() -> Postgres:
    """The server to test against; PostgresUnavailable when there is none."""
    if external := os.environ.get("HAVEN_TEST_POSTGRES_URL"):
        return Postgres(make_url(external))
    bindir = find_bindir()
    if bindir is None:
        raise PostgresUnavailable(
            "PostgreSQL binaries (initdb, postgres) not found: install PostgreSQL (Debian: "
            "apt-get install postgresql), or set HAVEN_TEST_PG_BINDIR or HAVEN_TEST_POSTGRES_URL"
        )
    server = ThrowawayPostgres(bindir)
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    return server


def dump(url: str) -> bytes:
    """`pg_dump` of the database at `url` (plain SQL, data included), as the bytes it wrote."""
    parsed = make_url(url)
    bindir = find_bindir()
    pg_dump = str(bindir / "pg_dump") if bindir else shutil.which("pg_dump")
    if pg_dump is None:
        raise PostgresUnavailable("pg_dump not found")
    host = parsed.query.get("host") or parsed.host or ""
    command = [pg_dump, "--no-owner", "-h", str(host), "-U", parsed.username or SUPERUSER]
    if parsed.port:
        command += ["-p", str(parsed.port)]
    env = os.environ | ({"PGPASSWORD": parsed.password} if parsed.password else {})
    result = subprocess.run(
        [*command, str(parsed.database)], capture_output=True, env=env, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"pg_dump failed: {result.stderr.decode(errors='replace')[-2000:]}")
    return result.stdout
