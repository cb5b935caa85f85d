"""Loading whichever classifier the configuration names, behind the common `RiskModel` interface."""

from __future__ import annotations

import pathlib
from collections.abc import Mapping
from typing import Literal

from models.safety.pipeline import RiskModel

ModelKind = Literal["default", "huggingface", "cascade"]


def load_risk_model(
    model: ModelKind = "default",
    *,
    model_path: str | pathlib.Path | None = None,
    head_path: str | pathlib.Path | None = None,
    label_map: Mapping[str, str] | None = None,
    thresholds: Mapping[str, float] | None = None,
    device: str = "cpu",
    threads: int | None = None,
    second_head_path: str | pathlib.Path | None = None,
    second_thresholds: Mapping[str, float] | None = None,
    gate: float | None = None,
    model_cache_dir: str | pathlib.Path = ".cache/models",
    languages: bool = True,
    languages_head_path: str | pathlib.Path | None = None,
    languages_thresholds: Mapping[str, float] | None = None,
) -> RiskModel:
    """`default`: MiniLM and a head file (the committed one unless `head_path`);
    `huggingface`: a local sequence-classification folder at `model_path`;
    `cascade`: the default model, then all-mpnet-base-v2 (the folder at `model_path`, else the one
    prepared under `model_cache_dir`) with its head (`second_head_path`, else the committed one)
    for the texts the first reads as possibly high or above (`cascade.py`); with `languages`,
    those of them in the trained languages other than English are read by multilingual-e5-small
    (prepared under `model_cache_dir`) with its head (`languages_head_path`, else the committed
    one) instead."""
    if model == "huggingface":
        if model_path is None:
            raise ValueError("model 'huggingface' needs model_path")
        from models.safety.hf_model import HFSafetyModel

        return HFSafetyModel(
            pathlib.Path(model_path), label_map, thresholds, device=device, threads=threads
        )
    if model not in ("default", "cascade"):
        raise ValueError(f"unknown model kind {model!r}")
    from models.safety.classifier import SafetyModel

    head = pathlib.Path(head_path) if head_path else None
    first = SafetyModel.load(head, device=device, threads=threads, thresholds=thresholds)
    if model == "default":
        return first
    from models.safety import mpnet
    from models.safety.cascade import DEFAULT_GATE, CascadeModel
    from models.safety.classifier import (
        E5_HEAD_PATH,
        E5_MODEL_NAME,
        MPNET_HEAD_PATH,
        MPNET_MODEL_NAME,
    )

    folder = (
        pathlib.Path(model_path)
        if model_path
        else mpnet.prepared_dir(pathlib.Path(model_cache_dir))
    )
    second = SafetyModel.load(
        pathlib.Path(second_head_path) if second_head_path else MPNET_HEAD_PATH,
        device=device,
        threads=threads,
        thresholds=second_thresholds,
        encoder_path=folder,
        model_id=MPNET_MODEL_NAME,
    )
    third: RiskModel | None = None
    if languages:
        from models.safety import e5
        from models.safety.head import load_head

        # Its windows are cut by MiniLM's word pieces: the tokenizer the first reader holds.
        encoder = e5.E5Encoder(
            e5.prepared_dir(pathlib.Path(model_cache_dir)),
            threads=threads,
            tokenizer=first.encoder.tokenizer,
        )
        head_file = pathlib.Path(languages_head_path) if languages_head_path else E5_HEAD_PATH
        third = SafetyModel(encoder, load_head(head_file), languages_thresholds, E5_MODEL_NAME)
    return CascadeModel(first, second, DEFAULT_GATE if gate is None else gate, third)
