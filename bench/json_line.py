"""Every benchmark's output: one JSON line on stdout, nothing else."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from typing import Any


def print_json_line(compute: Callable[[], dict[str, Any]]) -> None:
    """Runs `compute` with file descriptor 1 sent to stderr, then prints its result as one JSON
    line: Ray's processes inherit the descriptor and print notices to it (raylet messages at
    shutdown), which would otherwise mix with the figures."""
    sys.stdout.flush()
    json_out = os.dup(1)
    os.dup2(2, 1)
    try:
        result = compute()
    finally:
        sys.stdout.flush()
        os.dup2(json_out, 1)
        os.close(json_out)
    print(json.dumps(result), flush=True)
