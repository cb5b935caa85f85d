"""One event stream per Gateway replica and host, carrying every socket's outbound items.

A Ray streaming call held open for a socket's whole life costs memory on both sides (measured
by `bench/ray_streams.py`: about 45 KiB in the caller and 58 KiB in the callee per open call),
and a Gateway replica held one per socket. Instead, each replica opens one `link` stream to each
host it uses; the host puts every socket's items on it, tagged with the socket's id, and the
replica hands each socket its part.

Host side, `LinkSink` gathers what the sockets emit for one replica until the stream takes it:
a link batch is a list of `(socket_id, items, ended)`, each socket once, its items in order.
Gateway side, `LinkDemux` hands each socket its part as it comes. Neither knows Ray.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable

from actors.channel import Outbound

logger = logging.getLogger(__name__)

# (socket_id, its items in order, whether its stream ends after them)
Envelope = tuple[str, list[Outbound], bool]


class LinkLost(Exception):
    """The link to a host ended: every socket on it must reconnect (and resume)."""


class LinkSink:
    """Host side of one link: the pending items of the sockets attached through it."""

    def __init__(self) -> None:
        self._pending: dict[str, list[Outbound]] = {}
        self._ended: set[str] = set()
        self._ready = asyncio.Event()
        self._closed = False
        # The sockets attached through this link and not yet ended: socket id -> user id.
        self.sockets: dict[str, str] = {}

    @property
    def closed(self) -> bool:
        return self._closed

    def feed(self, socket_id: str) -> Callable[[Outbound | None], None]:
        """The sink of one socket's channel (`SocketChannel.forward_to`)."""
        return functools.partial(self.push, socket_id)

    def push(self, socket_id: str, item: Outbound | None) -> None:
        """An item of the socket, or None: its stream ends."""
        if self._closed or socket_id in self._ended:
            return
        items = self._pending.setdefault(socket_id, [])
        if item is None:
            self._ended.add(socket_id)
            self.sockets.pop(socket_id, None)
        else:
            items.append(item)
        self._ready.set()

    async def next(self) -> list[Envelope] | None:
        """Everything pending, or None once the link is closed and drained."""
        while not self._pending:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        pending, ended = self._pending, self._ended
        self._pending, self._ended = {}, set()
        return [(socket_id, items, socket_id in ended) for socket_id, items in pending.items()]

    def close(self) -> None:
        """No more items: the stream ends once it has taken what is pending."""
        self._closed = True
        self._ready.set()


# What a socket's owner is handed: its next items, None once its stream has ended, or the error
# that ended the link under it.
Delivery = list[Outbound] | None | BaseException
Deliver = Callable[[Delivery], None]


class LinkDemux:
    """Gateway side of one link: each socket's part of the link's batches, handed to it."""

    def __init__(self) -> None:
        self._sockets: dict[str, Deliver] = {}
        self._lost: BaseException | None = None

    def __len__(self) -> int:
        return len(self._sockets)

    def register(self, socket_id: str, deliver: Deliver) -> None:
        """Before the socket is opened at the host, so none of its items can be missed."""
        if self._lost is not None:
            deliver(self._lost)
            return
        self._sockets[socket_id] = deliver

    def unregister(self, socket_id: str) -> None:
        self._sockets.pop(socket_id, None)

    def dispatch(self, envelopes: list[Envelope]) -> None:
        for socket_id, items, ended in envelopes:
            deliver = self._sockets.get(socket_id)
            if deliver is None:
                continue  # the socket has gone here already
            try:
                if items:
                    deliver(items)
                if ended:
                    del self._sockets[socket_id]
                    deliver(None)
            except Exception:
                # One socket's failure must not end the link every other socket shares.
                logger.exception("a socket could not take its items")
                self._sockets.pop(socket_id, None)

    def lose(self, error: BaseException) -> None:
        """The link ended: every socket on it gets `error` after what it already has."""
        self._lost = error
        sockets, self._sockets = self._sockets, {}
        for deliver in sockets.values():
            deliver(error)
