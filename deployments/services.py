"""Everything the Gateway's routes use, gathered so tests can build the app with fakes."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from actors.host import Connections
from haven.auth import TokenService
from haven.settings import Settings
from haven.storage.store import Store


@dataclass(frozen=True)
class GatewayServices:
    settings: Settings
    store: Store
    tokens: TokenService
    connections: Connections
    # Raises or returns False when the classifier or the language model does not answer.
    readiness: Callable[[], Awaitable[bool]]
