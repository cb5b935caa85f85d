"""`haven chat` lists sessions by time and first words, and shows a picked one's last messages
(against the real REST routes, in process)."""

from __future__ import annotations

import asyncio
import io

import httpx

from haven.cli_chat import ChatClient
from tests.app.conftest import Harness
from tests.app.wire import connect, send, until
from tests.conftest import SQLITE_ONLY
from tests.fakes import FakeGenerator
from tests.rest_client import PASSWORD

pytestmark = SQLITE_ONLY


def _client(harness: Harness, out: io.StringIO) -> ChatClient:
    def forward(request: httpx.Request) -> httpx.Response:
        answer = harness.client.request(
            request.method, request.url.path, headers=request.headers, content=request.content
        )
        return httpx.Response(answer.status_code, headers=answer.headers, content=answer.content)

    client = ChatClient("http://haven", "ana", PASSWORD, out)
    client._rest = httpx.AsyncClient(  # the app in process instead of a server
        transport=httpx.MockTransport(forward), base_url="http://haven"
    )
    return client


async def _pick(harness: Harness, choice: str) -> tuple[str, str]:
    out = io.StringIO()
    client = _client(harness, out)
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    lines.put_nowait(choice)
    try:
        await client.login()
        picked = await client.pick_session(None, False, lines)
    finally:
        await client.aclose()
    return picked, out.getvalue()


def test_sessions_are_listed_with_their_first_words_and_the_pick_shows_its_history(
    harness: Harness,
) -> None:
    token = harness.register("ana")
    talked = harness.new_session(token)
    with connect(harness, token) as ws:
        for text in ("I could not sleep   again last night", "It keeps happening"):
            send(ws, talked, text)
            until(ws, "assistant_message_complete")
    empty = harness.new_session(token)
    picked, printed = asyncio.run(_pick(harness, "2"))
    listing, history = printed.split("Session number", 1)
    assert "  1. " in listing and "(no messages yet)" in listing  # newest first: the empty one
    assert "  2. " in listing and "I could not sleep again last night" in listing
    assert talked not in listing and empty not in listing  # no bare ids
    assert picked == talked
    reply = FakeGenerator.full_text()
    assert history.strip().endswith(f"you> It keeps happening\nhaven> {reply}")
    assert history.index("you> I could not sleep") < history.index("you> It keeps happening")
