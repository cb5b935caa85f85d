"""A Hugging Face sequence classifier swapped in by configuration: a tiny random BERT and a
tokenizer built here from a handful of words, saved to a temporary folder (nothing downloaded)."""

from __future__ import annotations

import collections
import json
import pathlib

import numpy as np
import pytest
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors
from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

from deployments.safety import SafetyOptions
from haven.risk import RISK_LEVELS, Assessment, RiskLevel
from models.safety import evaluate
from models.safety.hf_model import HFSafetyModel
from models.safety.loading import load_risk_model
from models.safety.windows import pool_max, split

WORDS = ["i", "feel", "fine", "sad", "want", "to", "die", "tonight", "the", "rope", "is", "ready"]
LABELS = {0: "SAFE", 1: "CONCERN", 2: "DANGER"}
LABEL_MAP = {"SAFE": "none", "CONCERN": "medium", "DANGER": "critical"}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> pathlib.Path:
    path = tmp_path_factory.mktemp("hf-model")
    vocab = {t: i for i, t in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", *WORDS])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)]
    )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
    )
    fast.save_pretrained(str(path))
    config = BertConfig(  # type: ignore[call-arg]
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=3,
        id2label=LABELS,
        label2id={v: k for k, v in LABELS.items()},
    )
    BertForSequenceClassification(config).save_pretrained(str(path))
    return path


def test_labels_are_mapped_onto_levels(model_dir: pathlib.Path) -> None:
    model = HFSafetyModel(model_dir, LABEL_MAP, threads=1)
    results = model.assess(["i feel fine", "the rope is ready tonight", "unknown words here"])
    assert len(results) == 3
    for a in results:
        assert set(a.probabilities) == set(RISK_LEVELS)
        # No model label maps to low or high, so they get nothing.
        assert a.probabilities["low"] == 0.0 and a.probabilities["high"] == 0.0
        assert sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert a.risk_level in (RiskLevel.NONE, RiskLevel.MEDIUM, RiskLevel.CRITICAL)
        assert a.model_id == f"hf:{model_dir.name}" and len(a.model_version) == 8
    assert model.assess([]) == []


def test_batch_matches_single(model_dir: pathlib.Path) -> None:
    model = HFSafetyModel(model_dir, LABEL_MAP, threads=1)
    texts = ["i want to die tonight", "fine", "i feel sad " * 40]
    batch = model.assess(texts)
    for text, a in zip(texts, batch, strict=True):
        single = model.assess([text])[0]
        for level in RISK_LEVELS:
            assert a.probabilities[level] == pytest.approx(single.probabilities[level], abs=1e-5)


def test_thresholds_apply_to_any_model(model_dir: pathlib.Path) -> None:
    # P(critical or above) always reaches 0: every text is critical.
    model = load_risk_model(
        "huggingface", model_path=model_dir, label_map=LABEL_MAP, thresholds={"critical": 0.0}
    )
    assert {a.risk_level for a in model.assess(["i feel fine", "sad"])} == {RiskLevel.CRITICAL}


def test_unmapped_label_is_a_configuration_error(model_dir: pathlib.Path) -> None:
    with pytest.raises(ValueError, match="DANGER"):
        HFSafetyModel(model_dir, {"SAFE": "none", "CONCERN": "medium"})


def test_options_select_the_model_without_code(model_dir: pathlib.Path) -> None:
    options = SafetyOptions.model_validate(
        {
            "model": "huggingface",
            "model_path": str(model_dir),
            "label_map": LABEL_MAP,
            "thresholds": {"high": 0.3},
        }
    )
    assert options.label_map == {k: RiskLevel(v) for k, v in LABEL_MAP.items()}
    with pytest.raises(ValueError, match="model_path"):
        SafetyOptions.model_validate({"model": "huggingface"})
    with pytest.raises(ValueError):
        SafetyOptions.model_validate({"thresholds": {"severe": 0.3}})


def test_evaluate_cli_with_a_hf_model(
    model_dir: pathlib.Path, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "in.jsonl"
    rows = [
        {"text": "i feel fine", "risk_level": "none"},
        {"messages": ["i feel sad", "the rope is ready"], "risk_level": "critical"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = tmp_path / "out.jsonl"
    code = evaluate.main(
        [
            "--data",
            str(data),
            "--out",
            str(out),
            "--model-path",
            str(model_dir),
            "--label-map",
            json.dumps(LABEL_MAP),
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["n"] == 2 and summary["model_id"].startswith("hf:")
    predictions = [json.loads(line) for line in out.read_text().splitlines()]
    # The rule layer reads the second message: whatever the random model says, it is critical.
    assert predictions[1]["risk_level"] == "critical"


async def test_deployment_reads_context_and_applies_rules(model_dir: pathlib.Path) -> None:
    from deployments.safety import SafetyClassifier

    model = HFSafetyModel(model_dir, LABEL_MAP, {"critical": 0.99, "medium": 0.99}, threads=1)
    seen: list[list[str]] = []

    async def assess_batch(texts: list[str]) -> list[Assessment]:
        # Stands in for the @serve.batch method, which needs a running Serve replica.
        seen.append(texts)
        return model.assess(texts)

    # The class behind the deployment, without Serve: its context and rule handling.
    classifier = SafetyClassifier.func_or_class.__new__(SafetyClassifier.func_or_class)  # type: ignore[attr-defined]
    classifier._assess_batch = assess_batch
    classifier._readings, classifier._readings_size = collections.OrderedDict(), 16
    plain = await classifier.assess("i feel fine", [])
    assert plain.raised_by is None and plain.risk_level is RiskLevel.NONE
    assert seen == [["i feel fine"]]
    # "do it tonight" is only a plan in the light of the earlier messages.
    context = ["hi", "the rope is in my bag", "nobody knows", "I'm tired"]
    raised = await classifier.assess("i'm going to do it tonight", context)
    assert (raised.risk_level, raised.raised_by) == (RiskLevel.CRITICAL, "plan_with_timing")
    assert raised.model_id == f"hf:{model_dir.name}"
    # One model call for the turn: the message alone, after the last three earlier messages,
    # and each earlier message on its own (the trajectory), in order.
    assert seen[1] == [
        "i'm going to do it tonight",
        "the rope is in my bag\nnobody knows\nI'm tired\ni'm going to do it tonight",
        *context,
    ]
    # The next turn reads the earlier messages' own readings from the cache.
    await classifier.assess("ok", [*context, "i'm going to do it tonight"])
    assert seen[2] == ["ok", "nobody knows\nI'm tired\ni'm going to do it tonight\nok"]


def test_a_text_longer_than_the_window_is_read_whole(model_dir: pathlib.Path) -> None:
    model = HFSafetyModel(model_dir, LABEL_MAP, threads=1)
    assert model.window == 62  # 64 positions less [CLS] and [SEP]
    text = "i feel fine " * 40 + "the rope is ready tonight"
    pieces = split(model.tokenizer, text, model.window, model.overlap)
    assert len(pieces) > 1 and pieces[-1].endswith("the rope is ready tonight")
    whole = model.assess([text])[0]
    # The text's reading is its windows' readings pooled: its last sentence is read, not cut.
    windows = model.assess(pieces)
    rows = np.array([[a.probabilities[level] for level in RISK_LEVELS] for a in windows])
    pooled = pool_max(rows)
    for level, p in zip(RISK_LEVELS, pooled, strict=True):
        assert whole.probabilities[level] == pytest.approx(p, abs=1e-5)
    # The last window, which the encoder alone would have cut, counts at every level.
    last = rows[-1][::-1].cumsum()[::-1]
    at_least = np.array([whole.probabilities[level] for level in RISK_LEVELS])[::-1].cumsum()[::-1]
    assert (at_least >= last - 1e-5).all()
