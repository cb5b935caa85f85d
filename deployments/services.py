"""Everything the Gateway's routes use, gathered so tests can build the app with fakes."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from actors.host import Connections
from haven.auth import TokenClaims, TokenService
from haven.errors import InvalidToken, LoggedOut
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayServices:
    settings: Settings
    store: Store
    tokens: TokenService
    connections: Connections
    # Raises or returns False when the classifier or the language model does not answer.
    readiness: Callable[[], Awaitable[bool]]
    # This replica's open sockets (starlette WebSockets), closed with 1012 when it shuts down.
    open_sockets: set[Any] = field(default_factory=set)
    # Tells the language model a session was deleted, so it drops the model state it kept for
    # that conversation's next turn.
    forget_session: Callable[[str], Awaitable[None]] | None = None

    async def forget_deleted(self, user_id: str, session_id: str) -> None:
        """A session deleted in storage leaves memory too: its events from the user's replay
        log (so a `resume` never replays it) and the model state kept for its next turn."""
        try:
            await self.connections.forget_session(user_id, session_id)
        except Exception:
            # Deleted in storage; the replay log in memory forgets it within `replay_window_s`.
            logger.warning("could not drop a deleted session from the replay log", exc_info=True)
        if self.forget_session is not None:
            await self.forget_session(session_id)

    async def authenticate(self, token: str | None) -> TokenClaims:
        """The claims of a valid, unexpired and not revoked token, or the typed error."""
        claims = self.tokens.verify(token)
        if claims.jti and await self.store.revocations.is_revoked(claims.jti):
            raise LoggedOut()
        if await self.store.get_user(claims.user_id) is None:
            # An erased account's tokens stay validly signed until they expire; they open
            # nothing.
            raise InvalidToken()
        return claims
