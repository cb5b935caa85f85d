"""The master keys that wrap every user's data key: configured, or in development generated once.

`HAVEN_MASTER_KEY` is base64 of 32 random bytes (`python -c "import os, base64;
print(base64.b64encode(os.urandom(32)).decode())"`). Each key is known by an id derived from it
(an HMAC, which reveals nothing of the key), stored beside every wrapped data key, so a
rotation knows which rows it has re-wrapped and the service accepts both keys meanwhile.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from haven.errors import StoredDataUnreadable
from haven.settings import Settings
from haven.storage.crypto import KEY_BYTES, Sealer, new_key, row_identity, unreadable

logger = logging.getLogger(__name__)

KEY_FILE_NAME = "master_key"


def key_id(key: bytes) -> str:
    return hmac.new(key, b"haven master key id", hashlib.sha256).hexdigest()[:16]


@dataclass(frozen=True)
class MasterKey:
    id: str
    sealer: Sealer

    @classmethod
    def from_bytes(cls, key: bytes) -> MasterKey:
        return cls(key_id(key), Sealer(key))


class MasterKeys:
    """The current master key (wraps new data keys) and earlier ones (still unwrap)."""

    def __init__(self, current: bytes, previous: tuple[bytes, ...] = ()) -> None:
        self.current = MasterKey.from_bytes(current)
        self._by_id = {k.id: k for k in map(MasterKey.from_bytes, (*previous, current))}

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._by_id)

    def wrap(self, user_id: str, data_key: bytes) -> tuple[str, bytes]:
        """(the wrapping key's id, the data key sealed under it, bound to the user)."""
        return self.current.id, self.current.sealer.seal_bytes(data_key, _identity(user_id))

    def unwrap(self, user_id: str, master_id: str, wrapped: bytes) -> bytes:
        key = self._by_id.get(master_id)
        if key is None:
            raise unreadable(f"user_keys[{user_id}]", f"master key {master_id} not configured")
        data_key = key.sealer.open_bytes(wrapped, _identity(user_id), what=f"user_keys[{user_id}]")
        if len(data_key) != KEY_BYTES:
            raise StoredDataUnreadable()
        return data_key

    def new_wrapped_key(self, user_id: str) -> tuple[bytes, str, bytes]:
        """A fresh data key: (the key, its wrapping key's id, the wrapped key)."""
        data_key = new_key()
        master_id, wrapped = self.wrap(user_id, data_key)
        return data_key, master_id, wrapped


def _identity(user_id: str) -> bytes:
    return row_identity("user_keys", user_id)


def decode(value: str) -> bytes:
    return base64.b64decode(value, validate=True)


def master_keys(settings: Settings) -> MasterKeys:
    """The configured keys; in development without one, the key kept in the data dir.

    Settings already refuse to load outside development without `HAVEN_MASTER_KEY`."""
    previous: tuple[bytes, ...] = ()
    if settings.master_key_previous and settings.master_key_previous.get_secret_value():
        previous = (decode(settings.master_key_previous.get_secret_value()),)
    if settings.master_key and settings.master_key.get_secret_value():
        return MasterKeys(decode(settings.master_key.get_secret_value()), previous)
    if settings.environment != "development":
        raise RuntimeError(f"HAVEN_MASTER_KEY must be set (environment={settings.environment})")
    return MasterKeys(_development_key(settings.data_dir / KEY_FILE_NAME), previous)


def configured_master_keys() -> MasterKeys:
    """The keys the environment configures (`HAVEN_*`), for callers without settings."""
    return master_keys(Settings())


def _development_key(path: Path) -> bytes:
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        _create_key_file(path)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        logger.warning("%s was readable by others (mode %o); restricting it to 0600", path, mode)
        path.chmod(0o600)
    key = decode(path.read_text(encoding="ascii").strip())
    if len(key) != KEY_BYTES:
        raise RuntimeError(f"{path} does not hold a {KEY_BYTES}-byte base64 key")
    return key


def _create_key_file(path: Path) -> None:
    # As the development token secret: written whole under a temporary name (mode 0600), then
    # hard-linked into place, so processes starting at once agree on the first key.
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="ascii") as tmp:
            tmp.write(base64.b64encode(new_key()).decode())
            tmp.flush()
            os.fsync(tmp.fileno())
        try:
            os.link(tmp_name, path)
            logger.info("generated a development master key in %s", path)
        except FileExistsError:
            pass
    finally:
        os.unlink(tmp_name)
