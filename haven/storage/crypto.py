"""Sealing one stored text: AES-256-GCM under a user's data key, bound to the row it belongs to.

A sealed value is `version (1 byte) || nonce (12 bytes) || ciphertext || tag (16 bytes)`. The
nonce is random (96 bits), so one key may seal about 2**32 values before the chance of a repeat
matters; no single user writes anywhere near that many. The row's identity (table, primary key,
owner) is the associated data: a value copied into another row, or any flipped byte, fails the
tag check and raises `StoredDataUnreadable` instead of returning garbage.
"""

from __future__ import annotations

import logging
import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from haven.errors import StoredDataUnreadable

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
NONCE_BYTES = 12
KEY_BYTES = 32
_HEADER = bytes([FORMAT_VERSION])


def row_identity(table: str, *parts: str | int | None) -> bytes:
    """The associated data of a row: its table and identifying columns, unambiguously joined."""
    fields = [table, *("" if p is None else str(p) for p in parts)]
    # A length prefix per field: ("a|b", "c") and ("a", "b|c") must not collide.
    return b"".join(len(f.encode()).to_bytes(4, "big") + f.encode() for f in fields)


def new_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


class Sealer:
    """One key's AES-GCM; `seal` and `open_` with the row identity as associated data."""

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise ValueError(f"a key is {KEY_BYTES} bytes")
        self._aead = AESGCM(key)

    def seal_bytes(self, plain: bytes, identity: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return _HEADER + nonce + self._aead.encrypt(nonce, plain, _HEADER + identity)

    def open_bytes(self, sealed: bytes, identity: bytes, *, what: str) -> bytes:
        """The plain bytes; StoredDataUnreadable (logged, without any content) when `sealed`
        was altered, moved from another row, or sealed under another key."""
        if len(sealed) < 1 + NONCE_BYTES + 16 or sealed[:1] != _HEADER:
            raise unreadable(what, "unknown format")
        nonce = sealed[1 : 1 + NONCE_BYTES]
        try:
            return self._aead.decrypt(nonce, sealed[1 + NONCE_BYTES :], _HEADER + identity)
        except InvalidTag:
            raise unreadable(what, "authentication failed") from None

    def seal(self, text: str, identity: bytes) -> bytes:
        return self.seal_bytes(text.encode("utf-8"), identity)

    def open_(self, sealed: bytes, identity: bytes, *, what: str) -> str:
        return self.open_bytes(sealed, identity, what=what).decode("utf-8")


def unreadable(what: str, reason: str) -> StoredDataUnreadable:
    """Reports a stored value that cannot be opened: which row and why, never its content."""
    logger.error("stored data refused: %s (%s)", what, reason)
    return StoredDataUnreadable()
