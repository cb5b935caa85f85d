"""Fewer, fuller text pieces: what a fast model writes within a few milliseconds goes out as one.

A backend faster than one token per `interval_s` (a large GPU, a remote server) would
otherwise send each token as its own WebSocket frame and its own hop through the
ConnectionActor. Here what arrives within `interval_s` of the last piece sent is joined and
sent when that interval ends. The first piece is never held, and a piece waits at most
`interval_s`; a model slower than one token per interval (this 2-core CPU, at 4-33 tokens/s per
reply in docs/benchmarks.md) sees its pieces pass through as they come.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, AsyncIterator

DEFAULT_INTERVAL_S = 0.03


class _Done:
    pass


_DONE = _Done()


async def coalesce(
    pieces: AsyncIterator[str], interval_s: float = DEFAULT_INTERVAL_S
) -> AsyncGenerator[str, None]:
    """`pieces`, joined into fewer pieces; closing this closes `pieces`; errors propagate."""
    if interval_s <= 0:
        async for piece in pieces:
            yield piece
        return
    queue: asyncio.Queue[str | BaseException | _Done] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for piece in pieces:
                queue.put_nowait(piece)
        except Exception as error:
            queue.put_nowait(error)
        finally:
            queue.put_nowait(_DONE)

    pumping = asyncio.create_task(pump())
    held = ""
    sent_at: float | None = None
    try:
        while True:
            timeout = None
            if held and sent_at is not None:
                timeout = max(0.0, sent_at + interval_s - time.monotonic())
            try:
                item = await asyncio.wait_for(queue.get(), timeout)
            except TimeoutError:
                yield held
                held, sent_at = "", time.monotonic()
                continue
            if isinstance(item, _Done):
                break
            if isinstance(item, BaseException):
                if held:
                    yield held
                raise item
            held += item
            now = time.monotonic()
            if sent_at is None or now - sent_at >= interval_s:
                yield held
                held, sent_at = "", now
        if held:
            yield held
    finally:
        pumping.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await pumping
        aclose = getattr(pieces, "aclose", None)
        if aclose is not None:
            await aclose()
