"""Keys and values of prompts already read, so a conversation's next turn reads only what is new.

A conversation's next prompt starts with its previous prompt (the system prompt, the earlier
turns, the newest message), so the model state of that prefix is kept after each turn and the
next turn starts from it. Prompts are read in fixed blocks at fixed positions, and only whole
blocks are kept: the reused part was computed by exactly the same passes as a fresh read would
compute, so a reply is the same with the cache as without it.

Entries are found by a hash chain over their blocks, as vLLM's prefix caching does, so every
conversation shares the blocks of the common system prompt. One entry per conversation key
(the session): a new turn replaces it, deleting the session drops it, entries idle past
`idle_s` are dropped, and the least recently used go first past `max_bytes`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

LayerKV = tuple[torch.Tensor, torch.Tensor]


def block_hashes(ids: list[int], block: int, limit: int) -> Iterator[int]:
    """Hash of each whole block of `ids[:limit]`, each chained to the blocks before it."""
    running = 0
    for start in range(0, limit - block + 1, block):
        running = hash((running, *ids[start : start + block]))
        yield running


@dataclass(eq=False)
class _Entry:
    key: str
    ids: list[int]
    layers: list[LayerKV]
    hashes: list[int]
    nbytes: int
    used: float = field(default=0.0)


class PrefixCache:
    """Reusable prompt prefixes, bounded in bytes and idle time. Safe across threads."""

    def __init__(
        self,
        *,
        block: int,
        max_bytes: int,
        idle_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.block = block
        self.max_bytes = max_bytes
        self.idle_s = idle_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, _Entry] = {}
        self._by_hash: dict[int, set[_Entry]] = {}
        self.nbytes = 0
        self.reused_tokens = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def lookup(self, ids: list[int]) -> tuple[int, list[LayerKV]]:
        """The longest kept prefix of `ids` that leaves at least one token to read.

        Returns its length (a whole number of blocks, 0 when nothing matches) and its keys and
        values per layer, as views the caller must copy before writing.
        """
        with self._lock:
            self._expire()
            best: _Entry | None = None
            length = 0
            for index, digest in enumerate(block_hashes(ids, self.block, len(ids) - 1)):
                found = self._by_hash.get(digest)
                if not found:
                    break
                candidate = next(iter(found))
                end = (index + 1) * self.block
                # A hash collision must never hand one conversation another's state.
                if candidate.ids[:end] != ids[:end]:
                    break
                best, length = candidate, end
            if best is None:
                return 0, []
            best.used = self._clock()
            self.reused_tokens += length
            return length, [(k[:, :, :length], v[:, :, :length]) for k, v in best.layers]

    def store(self, key: str, ids: list[int], layers: list[LayerKV]) -> None:
        """Keep the whole blocks of `ids` (whose keys and values `layers` hold) under `key`."""
        length = ((len(ids) - 1) // self.block) * self.block
        if length <= 0 or self.max_bytes <= 0:
            return
        kept = [(k[:, :, :length].clone(), v[:, :, :length].clone()) for k, v in layers]
        nbytes = sum(k.nbytes + v.nbytes for k, v in kept)
        if nbytes > self.max_bytes:
            return
        entry = _Entry(
            key=key,
            ids=list(ids[:length]),
            layers=kept,
            hashes=list(block_hashes(ids, self.block, length)),
            nbytes=nbytes,
            used=self._clock(),
        )
        with self._lock:
            self._drop(key)
            self._entries[key] = entry
            self.nbytes += nbytes
            for digest in entry.hashes:
                self._by_hash.setdefault(digest, set()).add(entry)
            self._evict()

    def forget(self, key: str) -> bool:
        """Drop what is kept for `key` (its session was deleted); True if there was something."""
        with self._lock:
            return self._drop(key)

    def clear(self) -> None:
        with self._lock:
            for key in list(self._entries):
                self._drop(key)

    def _drop(self, key: str) -> bool:
        entry = self._entries.pop(key, None)
        if entry is None:
            return False
        self.nbytes -= entry.nbytes
        for digest in entry.hashes:
            holders = self._by_hash.get(digest)
            if holders is not None:
                holders.discard(entry)
                if not holders:
                    del self._by_hash[digest]
        return True

    def _evict(self) -> None:
        while self.nbytes > self.max_bytes and self._entries:
            oldest = min(self._entries.values(), key=lambda entry: entry.used)
            self._drop(oldest.key)

    def _expire(self) -> None:
        if self.idle_s is None:
            return
        cutoff = self._clock() - self.idle_s
        for entry in [e for e in self._entries.values() if e.used < cutoff]:
            self._drop(entry.key)
