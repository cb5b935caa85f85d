"""MiniLM in bf16, eager against `torch.compile`, on the safety benchmark's messages.

`OMP_WAIT_POLICY=PASSIVE .venv/bin/python bench/compile_probe.py` (one thread; figures in
docs/benchmarks.md, "More compute for the served cascade").
"""

from __future__ import annotations

import json
import pathlib
import sys
import time
from collections.abc import Callable

import torch

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from bench.safety_messages import MESSAGES
from models.safety.encoder import SentenceEncoder


def ms_per_call(call: Callable[[], object], runs: int = 30) -> float:
    for _ in range(5):
        call()
    started = time.perf_counter()
    for _ in range(runs):
        call()
    return (time.perf_counter() - started) / runs * 1000


def main() -> int:
    torch.set_num_threads(1)
    texts = (list(MESSAGES) * 4)[:32]
    encoder = SentenceEncoder(threads=1, dtype=torch.bfloat16)
    eager = encoder.features(texts)
    eager_ms = ms_per_call(lambda: encoder.features(texts))
    started = time.perf_counter()
    encoder.model = torch.compile(encoder.model, dynamic=True)
    compiled = encoder.features(texts)
    compile_s = time.perf_counter() - started
    compiled_ms = ms_per_call(lambda: encoder.features(texts))
    other = (list(MESSAGES)[::-1] * 4)[:20]
    started = time.perf_counter()
    encoder.features(other)
    new_size_s = time.perf_counter() - started
    print(
        json.dumps(
            {
                "bench": "compile_probe",
                "batch": len(texts),
                "eager_ms": round(eager_ms, 1),
                "compiled_ms": round(compiled_ms, 1),
                "compile_s": round(compile_s, 1),
                "new_batch_size_s": round(new_size_s, 2),
                "max_feature_diff": round(float(abs(compiled - eager).max()), 4),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
