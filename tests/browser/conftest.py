"""The web client in headless Chromium, against the Gateway app on a real uvicorn server.

The app is built as in tests/app (real storage and auth on SQLite, the users' ConnectionActors
in-process, fake models), and its replies arrive piece by piece with a pause between pieces so a
test can watch one grow. Chromium is Debian's (`/usr/bin/chromium`, or `HAVEN_CHROMIUM`), driven
by Playwright; nothing here downloads a browser. Without it the tests are skipped, or fail where
HAVEN_REQUIRE_BROWSER is set (CI).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
import uvicorn

from actors.host import LocalConnections
from deployments.gateway import create_app, drain
from deployments.services import GatewayServices
from haven.auth import TokenService
from haven.backends import ReplyRequest
from haven.settings import Settings
from haven.storage import migrate
from haven.storage.store import Store
from tests.browser.chromium import browser_required, chromium_path, launched_chromium
from tests.fakes import FakeAssessor, FakeGenerator, FakeReplyStream
from tests.paths import ROOT
from tests.rest_client import RestSteps

T = TypeVar("T")
SECRET = "b" * 48
ARTIFACTS = ROOT / "artifacts"


def pytest_report_header() -> str:
    found = chromium_path()
    if found is not None:
        return f"browser: {found}"
    return f"browser: no chromium; the browser tests are {'failed' if browser_required() else 'skipped'}"


class PacedStream:
    """A fake reply whose pieces arrive `pace_s` apart, as a language model's tokens do."""

    def __init__(self, inner: FakeReplyStream, pace_s: float) -> None:
        self._inner = inner
        self._pace_s = pace_s

    @property
    def intent(self) -> str:
        return self._inner.intent

    async def _paced(self) -> AsyncIterator[str]:
        async for piece in self._inner:
            await asyncio.sleep(self._pace_s)
            yield piece

    def __aiter__(self) -> AsyncIterator[str]:
        return self._paced()

    async def aclose(self) -> None:
        await self._inner.aclose()


class PacedGenerator(FakeGenerator):
    def __init__(self, pace_s: float) -> None:
        super().__init__()
        self.pace_s = pace_s

    async def open(self, request: ReplyRequest) -> PacedStream:  # type: ignore[override]
        return PacedStream(await super().open(request), self.pace_s)


class LiveServer(RestSteps):
    """The Gateway app on 127.0.0.1, served by uvicorn on its own event loop in a thread."""

    def __init__(self, settings: Settings, pace_s: float = 0.2) -> None:
        migrate.upgrade(settings.resolved_database_url)
        from models.safety.output_screen import unsafe_reply

        store = Store.from_url(settings.resolved_database_url)
        self.assessor, self.generator = FakeAssessor(), PacedGenerator(pace_s)
        connections = LocalConnections(settings, store, self.assessor, self.generator, unsafe_reply)

        async def ready() -> bool:
            return True

        self.services = GatewayServices(
            settings=settings,
            store=store,
            tokens=TokenService(SECRET, settings.access_token_ttl_s),
            connections=connections,
            readiness=ready,
        )
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.bind(("127.0.0.1", 0))
        self.port: int = self._socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            create_app(self.services),
            log_config=None,
            log_level="warning",
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        super().__init__(httpx.Client(base_url=self.url, timeout=10))

    def _run(self) -> None:
        async def serve() -> None:
            self._loop = asyncio.get_running_loop()
            await self._server.serve(sockets=[self._socket])

        asyncio.run(serve())

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)

    def stop(self) -> None:
        self.rest.close()
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._socket.close()

    def call(self, work: Awaitable[T]) -> T:
        """Runs `work` on the server's event loop (where its sockets and database live)."""
        assert self._loop is not None

        async def run() -> T:
            return await work

        future: Future[T] = asyncio.run_coroutine_threadsafe(run(), self._loop)
        return future.result(timeout=10)

    def drain(self) -> None:
        """What a replica does before it stops: every socket closed with 1012."""
        self.call(drain(self.services))

    @property
    def open_socket_count(self) -> int:
        return len(self.services.open_sockets)

    def user_id(self, token: str) -> str:
        return self.services.tokens.verify(token).user_id


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium per module, each test in a fresh context."""
    with launched_chromium() as browser:
        yield browser


@pytest.fixture
def settings_overrides() -> dict[str, Any]:
    """Settings fields a test changes, by parametrizing this fixture."""
    return {}


@pytest.fixture
def live_server(tmp_path: Path, settings_overrides: dict[str, Any]) -> Iterator[LiveServer]:
    values: dict[str, Any] = {
        "environment": "test",
        "jwt_secret": SECRET,
        "data_dir": tmp_path,
        "database_url": f"sqlite+aiosqlite:///{tmp_path / 'db' / 'haven.db'}",
    }
    settings = Settings(**(values | settings_overrides))
    server = LiveServer(settings)
    server.start()
    try:
        yield server
    finally:
        server.stop()


PageFactory = Callable[..., Any]


@pytest.fixture
def open_page(chromium: Any, live_server: LiveServer) -> Iterator[PageFactory]:
    """Opens the client at `/` in a fresh browser context (its own sessionStorage); the test
    fails if a page raised an uncaught error."""
    from tests.browser.pages import WATCH_SCRIPT

    contexts: list[Any] = []
    errors: list[str] = []

    def open_(viewport: dict[str, int] | None = None) -> Any:
        context = chromium.new_context(
            base_url=live_server.url, viewport=viewport or {"width": 1280, "height": 800}
        )
        contexts.append(context)
        context.add_init_script(WATCH_SCRIPT)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(10_000)
        page.goto("/")
        return page

    yield open_
    for context in contexts:
        context.close()
    assert errors == [], errors


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
