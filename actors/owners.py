"""Which Gateway replica reads each link (`actors.link`), and the links of replicas that died.

When the caller of a host's `link` stream dies (its whole node lost, or the replica killed),
Ray neither cancels the host's generator nor fails its next `yield`: the link's sockets would
stay registered for good, hold places under `max_connections_per_user`, and keep their users
from ever being evicted. The host therefore pings each owning replica now and then, and ends
the links of one that is known to be dead, detaching their sockets as a normal close would.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import ActorDiedError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayRef:
    """A Gateway replica: its actor id (a replacement replica gets a new one) and its handle."""

    actor_id: str
    handle: Any = field(compare=False, repr=False)

    @staticmethod
    def current() -> GatewayRef | None:
        """The actor this code runs in, or None outside one (a driver, a test)."""
        context = ray.get_runtime_context()
        actor_id = context.get_actor_id()
        return GatewayRef(actor_id, context.current_actor) if actor_id else None


# True only when the replica is known to be gone; raises when that cannot be told right now.
IsGone = Callable[[GatewayRef], Awaitable[bool]]
Release = Callable[[str], Awaitable[int]]


async def actor_gone(owner: GatewayRef, timeout_s: float = 10.0) -> bool:
    """Pings the replica. Only ActorDiedError means dead (killed, or its node declared lost by
    the GCS); an actor that cannot be reached for now raises ActorUnavailableError or times
    out, which is not an answer."""
    try:
        await asyncio.wait_for(owner.handle.__ray_ready__.remote(), timeout_s)
    except ActorDiedError:
        return True
    return False


class GatewayOwners:
    """The owner of each link held by a host; `release(link_id)` ends a link and returns how
    many sockets that detached."""

    def __init__(self, is_gone: IsGone, release: Release) -> None:
        self._is_gone = is_gone
        self._release = release
        self._links: dict[str, GatewayRef] = {}

    def __len__(self) -> int:
        return len(self._links)

    def add(self, owner: GatewayRef, link_id: str) -> None:
        self._links[link_id] = owner

    def discard(self, link_id: str) -> None:
        self._links.pop(link_id, None)

    async def sweep(self) -> int:
        """Ends every link whose owner is known to be gone; returns the sockets detached."""
        owners = list(set(self._links.values()))
        # All at once: one replica that does not answer must not hold up the others.
        answers = await asyncio.gather(*map(self._is_gone, owners), return_exceptions=True)
        detached = 0
        for owner, gone in zip(owners, answers, strict=True):
            if isinstance(gone, BaseException):
                # Unknown is not dead: a slow or unreachable replica keeps its sockets.
                logger.warning("could not check Gateway replica %s: %r", owner.actor_id, gone)
                continue
            if not gone:
                continue
            orphans = [link_id for link_id, held_by in self._links.items() if held_by == owner]
            released = 0
            for link_id in orphans:
                self.discard(link_id)
                released += await self._release(link_id)
            logger.warning(
                "Gateway replica %s is gone: detached %d sockets", owner.actor_id, released
            )
            detached += released
        return detached

    async def watch(self, period_s: float) -> None:
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.sweep()
            except Exception:
                logger.exception("sweeping the links of lost Gateway replicas failed")
