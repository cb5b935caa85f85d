"""The garbage collector's settings for the processes that hold sockets.

A process on the socket path (the Serve proxy, the Gateway replica, a ConnectionHost) holds
many long-lived objects per socket, and each ping or chunk allocates short-lived ones. With
CPython's default thresholds (700, 10, 10) young collections run often under traffic, the
objects in flight at that moment are promoted, and promotions start full collections: scans
of every socket's objects that stop the event loop, and so every socket of the process. The
loop probe measured such pauses at 50-160 ms (young and middle collections) and 90-460 ms
(full) at 1,000 sockets, and 1.8-3.1 s at 5,000 (docs/benchmarks.md, "Where the stalls came
from").

`settle()` freezes what start-up allocated (never scanned again) and raises the thresholds, so
an object must outlive ~1 million allocations to reach the old generation: the objects of a
ping or a chunk die young, and full collections come from real growth (many new sockets), not
from traffic. Cyclic garbage waits at most one young collection of `YOUNG` allocations.
"""

from __future__ import annotations

import gc
import os

# `HAVEN_GC_SETTLE=0` keeps CPython's defaults (read here only; it reaches the proxy too, which
# has no Haven settings): for comparing, as `bench/sockets.py` does.
ENV = "HAVEN_GC_SETTLE"

# Allocations between young collections; then young collections per middle one, and middle
# ones per full one (CPython also waits until a quarter of the old objects are new).
YOUNG = 50_000
MIDDLE_PER_YOUNG = 20
FULL_PER_MIDDLE = 10


_settled = False


def settle() -> None:
    """Call once a process has started (its modules, app and clients built); once per
    process, later calls do nothing."""
    global _settled
    if _settled:
        return
    _settled = True
    if os.environ.get(ENV, "1").strip().lower() in {"0", "false", "no", "off"}:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG, MIDDLE_PER_YOUNG, FULL_PER_MIDDLE)
