"""Weight files written byte-for-byte the same for the same weights, so an unchanged retrained
head leaves git clean."""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np


def safetensors_bytes(tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str]) -> bytes:
    """Serialise float32 tensors in the safetensors layout with a sorted header.

    The library writes its header from a hash map, so the same head would give different bytes
    on each run.
    """
    header: dict[str, object] = {"__metadata__": dict(sorted(metadata.items()))}
    chunks: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        data = np.ascontiguousarray(tensors[name], dtype="<f4").tobytes()
        shape = list(tensors[name].shape)
        end = offset + len(data)
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, end]}
        chunks.append(data)
        offset = end
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format asks for an 8-byte aligned data section
    return len(raw).to_bytes(8, "little") + raw + b"".join(chunks)
