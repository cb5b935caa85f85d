"""Loading whichever classifier the configuration names, behind the common `RiskModel` interface."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Literal

from models.safety.pipeline import RiskModel

ModelKind = Literal["default", "huggingface"]


def load_risk_model(
    model: ModelKind = "default",
    *,
    model_path: str | pathlib.Path | None = None,
    head_path: str | pathlib.Path | None = None,
    label_map: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    device: str = "cpu",
    threads: int | None = None,
) -> RiskModel:
    """`default`: MiniLM and a head file (the committed one unless `head_path`);
    `huggingface`: a local sequence-classification folder at `model_path`."""
    if model == "huggingface":
        if model_path is None:
            raise ValueError("model 'huggingface' needs model_path")
        from models.safety.hf_model import HFSafetyModel

        return HFSafetyModel(
            pathlib.Path(model_path), label_map, thresholds, device=device, threads=threads
        )
    if model != "default":
        raise ValueError(f"unknown model kind {model!r}")
    from models.safety.classifier import SafetyModel

    head = pathlib.Path(head_path) if head_path else None
    return SafetyModel.load(head, device=device, threads=threads, thresholds=thresholds)
