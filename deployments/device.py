"""Which device a model deployment runs on."""

from __future__ import annotations

import torch


def pick_device(requested: str = "auto") -> str:
    """`auto` means CUDA when this replica was given a GPU, CPU otherwise."""
    if requested != "auto":
        return requested
    return "cuda" if torch.cuda.is_available() else "cpu"
