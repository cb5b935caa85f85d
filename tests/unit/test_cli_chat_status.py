"""`haven chat` keeps the person informed, against a scripted server as in tests/unit/test_cli.py:
a wait is shown, a failed turn is sent again by itself, a reconnection is announced once."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from websockets.asyncio.server import ServerConnection, serve

from haven.cli_chat import ChatClient
from haven.errors import GenerationFailed
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    CompletedMessage,
    Connection,
    ErrorEvent,
    Resumed,
    UserMessageEvent,
)

Script = Callable[[ServerConnection], Awaitable[None]]


def _echo(frame: dict[str, Any], seq: int, duplicate: bool = False) -> str:
    return UserMessageEvent(
        text=frame["message_text"],
        session_id="s",
        message_id="m1",
        client_message_id=frame["client_message_id"],
        duplicate=duplicate or None,
        seq=seq,
    ).to_json()


def _reply(first_seq: int, text: str, chunks: tuple[str, ...] | None = None) -> list[str]:
    events = [
        AssistantMessageStart(session_id="s", message_id="r1"),
        *(
            AssistantMessageChunk(chunk=c, session_id="s", message_id="r1")
            for c in (chunks or (text,))
        ),
        AssistantMessageComplete(
            message=CompletedMessage(text=text, intent="validate", risk_level="none"),
            session_id="s",
            message_id="r1",
        ),
    ]
    return [e.model_copy(update={"seq": first_seq + i}).to_json() for i, e in enumerate(events)]


async def _chat(script: Script, until: str) -> str:
    """Runs the client against `script` with one typed line until `until` is printed; returns
    everything printed."""
    async with serve(script, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = io.StringIO()
        client = ChatClient(f"http://127.0.0.1:{port}", "ana", "unused", out, retry_delay_s=0.01)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        lines.put_nowait("hello there")
        task = asyncio.create_task(client.run("s", lines))
        try:
            for _ in range(200):
                if until in out.getvalue():
                    break
                await asyncio.sleep(0.05)
            lines.put_nowait(None)
            assert await asyncio.wait_for(task, 10) == 0
        finally:
            await client.aclose()
    return out.getvalue()


async def test_a_reply_that_takes_more_than_a_second_shows_that_it_is_awaited() -> None:
    async def slow(ws: ServerConnection) -> None:
        await ws.send(Connection().to_json())
        frame = json.loads(await ws.recv())
        await ws.send(_echo(frame, 1))
        await asyncio.sleep(1.6)  # the classifier or the model is slow
        for event in _reply(2, "Take your time."):
            await ws.send(event)
        await ws.wait_closed()

    printed = await _chat(slow, "Take your time.")
    assert printed.index("[…]") < printed.index("haven> Take your time.")


async def test_a_failed_reply_is_announced_and_sent_again_with_the_same_id() -> None:
    received: list[dict[str, Any]] = []

    async def fails_once(ws: ServerConnection) -> None:
        await ws.send(Connection().to_json())
        frame = json.loads(await ws.recv())
        received.append(frame)
        await ws.send(_echo(frame, 1))
        for event in _reply(2, "I hear", chunks=("I hear",))[:2]:  # start, one chunk
            await ws.send(event)
        await ws.send(
            ErrorEvent.from_error(GenerationFailed()).model_copy(update={"seq": 4}).to_json()
        )
        frame = json.loads(await ws.recv())
        received.append(frame)
        await ws.send(_echo(frame, 5, duplicate=True))
        for event in _reply(6, "I hear you."):
            await ws.send(event)
        await ws.wait_closed()

    printed = await _chat(fails_once, "I hear you.")
    assert "[the reply was interrupted — sending again]" in printed
    assert len(received) == 2
    assert received[0]["client_message_id"] == received[1]["client_message_id"]
    assert printed.index("sending again") < printed.rindex("I hear you.")


async def test_a_lost_connection_says_reconnecting_once_then_reconnected() -> None:
    connections = 0

    async def restarts(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.send(Connection().to_json())
        if connections == 1:
            frame = json.loads(await ws.recv())
            await ws.send(_echo(frame, 1))
            await ws.close(1012)  # the service restarts
            return
        await ws.send(Resumed(last_seq=1, replayed=0, recovered=True).to_json())
        frame = json.loads(await ws.recv())  # the unanswered message, sent again
        await ws.send(_echo(frame, 2, duplicate=True))
        for event in _reply(3, "Still here."):
            await ws.send(event)
        await ws.wait_closed()

    printed = await _chat(restarts, "Still here.")
    assert printed.count("[reconnecting…]") == 1
    assert printed.index("[reconnecting…]") < printed.index("[reconnected]")
    assert printed.index("[reconnected]") < printed.index("Still here.")
