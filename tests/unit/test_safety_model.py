"""Safety classifier: training pipeline, committed head behaviour, and input robustness."""

from __future__ import annotations

import json
import pathlib
from dataclasses import replace

import numpy as np
import pytest

from haven.risk import RISK_LEVELS, Assessment, RiskLevel
from models.safety.classifier import DEFAULT_HEAD_PATH, SafetyModel
from models.safety.datasets import parse_post_list
from models.safety.encoder import FEATURE_DIM
from models.safety.fit import FitConfig, fit_head
from models.safety.head import Head, decide, load_head, save_head
from models.safety.metrics import confusion, quadratic_weighted_kappa, summarise

FIXTURE = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "safety" / "tiny.jsonl"

# None of these sentences is in the training corpus; they are paraphrases the service relies on.
MUST_BE_SEVERE = [
    "I have saved up a bottle of pills and I am going to take all of them tonight. This is goodbye.",
    "I've been hoarding my pills and tonight I'm going to swallow every one of them. Goodbye.",
    "i've got a whole bottle of pills saved and i'm taking them all tonight, this is my goodbye",
    "This is goodbye. I've stockpiled my pills and I'm swallowing all of them tonight.",
    "I'm going to jump off the bridge tonight, I've already written my note",
    "I want to kill myself and I've got the pills to do it",
]
MUST_BE_MILD = [
    "I feel a bit anxious about my exam tomorrow",
    "this exam is killing me lol",
    "I'm a little nervous about tomorrow's test",
    "ugh this homework is killing me haha",
    "I could die of embarrassment lol",
    "this test is gonna kill me lol",
    "I'm so stressed about finals",
]


@pytest.fixture(scope="module")
def model() -> SafetyModel:
    return SafetyModel.load()


def _fixture_rows() -> list[dict[str, str]]:
    return [json.loads(line) for line in FIXTURE.read_text(encoding="utf-8").splitlines() if line]


def _random_head(rng: np.random.Generator, **kwargs: object) -> Head:
    tensors = {
        "hidden.weight": rng.normal(size=(8, 384)).astype(np.float32),
        "hidden.bias": rng.normal(size=8).astype(np.float32),
        "out.weight": rng.normal(size=(5, 8)).astype(np.float32),
        "out.bias": rng.normal(size=5).astype(np.float32),
        "ngram.weight": rng.normal(size=(64, 5)).astype(np.float32),
    }
    return Head(tensors=tensors, **kwargs)  # type: ignore[arg-type]


def test_training_pipeline_end_to_end(model: SafetyModel, tmp_path: pathlib.Path) -> None:
    rows = _fixture_rows()
    train_rows, held_rows = rows[0::2], rows[1::2]
    texts = [r["text"] for r in train_rows]
    labels = np.array([RISK_LEVELS.index(r["level"]) for r in train_rows])
    config = FitConfig(hidden=32, epochs=60, batch_size=16, buckets=1024)
    head = fit_head(model.encoder.encode(texts), texts, labels, config=config)
    path = tmp_path / "head.safetensors"
    save_head(Head(head.tensors, version="test"), path)
    loaded = SafetyModel(model.encoder, load_head(path))
    assert (loaded.model_id, loaded.model_version) == ("minilm-l6-head", "test")

    results = loaded.assess([r["text"] for r in held_rows])
    truth = np.array([RISK_LEVELS.index(r["level"]) for r in held_rows])
    pred = np.array([a.risk_level.rank for a in results])
    # Five balanced levels: guessing scores 0.2 exact and a mean level error of 1.6.
    assert (pred == truth).mean() > 0.4
    assert np.abs(pred - truth).mean() < 1.2


def test_head_file_round_trip(tmp_path: pathlib.Path) -> None:
    head = _random_head(
        np.random.default_rng(0),
        version="9+abc",
        thresholds={"low": 0.5, "medium": 0.4, "high": 0.3, "critical": 0.2},
        training={"fit": {"hidden": 8}, "train_counts": {"written/high": 3}},
    )
    path = tmp_path / "h.safetensors"
    save_head(head, path)
    loaded = load_head(path)
    for name, tensor in head.tensors.items():
        np.testing.assert_array_equal(loaded.tensors[name], tensor)
    assert loaded.labels == RISK_LEVELS
    assert (loaded.version, loaded.thresholds) == ("9+abc", head.thresholds)
    assert loaded.training == head.training
    # Saving is byte-stable, so an unchanged retrained head does not show up in git.
    save_head(head, tmp_path / "again.safetensors")
    assert path.read_bytes() == (tmp_path / "again.safetensors").read_bytes()
    texts = ["one", "two words"]
    x = np.random.default_rng(1).normal(size=(2, 384))
    np.testing.assert_allclose(loaded.probabilities(x, texts), head.probabilities(x, texts))


def test_first_format_linear_head_still_loads(tmp_path: pathlib.Path) -> None:
    from models.weights_file import safetensors_bytes

    rng = np.random.default_rng(2)
    weight, bias = rng.normal(size=(5, 384)), rng.normal(size=5)
    metadata = {"format": "haven-safety-head/1", "labels": json.dumps(list(RISK_LEVELS))}
    path = tmp_path / "v1.safetensors"
    path.write_bytes(safetensors_bytes({"weight": weight, "bias": bias}, metadata))
    x = rng.normal(size=(3, 384))
    logits = x @ weight.astype(np.float32).T + bias.astype(np.float32)
    expected = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(load_head(path).probabilities(x), expected, rtol=1e-5)


def test_fit_head_is_deterministic() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(50, 384))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    y = np.arange(50) % 5
    texts = [f"text number {i}" for i in range(50)]
    config = FitConfig(hidden=16, epochs=3, buckets=256)
    first, second = fit_head(x, texts, y, config=config), fit_head(x, texts, y, config=config)
    assert first.digest == second.digest


def test_an_ensemble_head_gives_the_mean_of_its_members_logits() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(40, 384))
    y = np.arange(40) % 5
    texts = [f"message {i} about the {'dead battery' if i % 2 else 'long day'}" for i in range(40)]
    config = FitConfig(hidden=8, epochs=2, buckets=256)
    members = [
        fit_head(x, texts, y, config=replace(config, seed=config.seed + i)) for i in range(3)
    ]
    merged = fit_head(x, texts, y, config=replace(config, ensemble=3))
    assert merged.tensors["hidden.weight"].shape == (24, 384)
    expected = np.mean([m.logits(x, texts) for m in members], axis=0)
    np.testing.assert_allclose(merged.logits(x, texts), expected, rtol=1e-5, atol=1e-6)
    assert merged.training["fit"]["ensemble"] == 3
    assert merged.digest == fit_head(x, texts, y, config=replace(config, ensemble=3)).digest


def test_committed_head_metadata() -> None:
    head = load_head(DEFAULT_HEAD_PATH)
    assert head.tensors["hidden.weight"].shape[1] == FEATURE_DIM
    assert head.tensors["out.weight"].shape[0] == 5
    assert head.labels == RISK_LEVELS
    assert head.version.endswith(head.digest)
    assert head.training["train_counts"]
    assert head.thresholds is not None and set(head.thresholds) == set(RISK_LEVELS[1:])
    # Small enough for git.
    assert DEFAULT_HEAD_PATH.stat().st_size < 5_000_000


def test_committed_head_required_levels(model: SafetyModel) -> None:
    results = model.assess(MUST_BE_SEVERE + MUST_BE_MILD)
    severe, mild = results[: len(MUST_BE_SEVERE)], results[len(MUST_BE_SEVERE) :]
    for text, a in zip(MUST_BE_SEVERE, severe, strict=True):
        assert a.risk_level.at_least(RiskLevel.HIGH), (text, a.probabilities)
    for text, a in zip(MUST_BE_MILD, mild, strict=True):
        assert a.risk_level in (RiskLevel.NONE, RiskLevel.LOW), (text, a.probabilities)


def test_batch_keeps_order_and_matches_single(model: SafetyModel) -> None:
    texts = [MUST_BE_MILD[0], MUST_BE_SEVERE[0], "hello", MUST_BE_MILD[1] * 20, MUST_BE_SEVERE[4]]
    batch = model.assess(texts)
    singles = [model.assess([t])[0] for t in texts]
    assert [a.risk_level for a in batch] == [s.risk_level for s in singles]
    # On CPUs with bf16 the encoder runs in bf16, where padding in a batch moves the
    # probabilities in the third decimal; in float32 they agree to 1e-6.
    for a, s in zip(batch, singles, strict=True):
        for level in RISK_LEVELS:
            assert a.probabilities[level] == pytest.approx(s.probabilities[level], abs=1e-2)
    assert batch[1].risk_level.at_least(RiskLevel.HIGH)
    assert not batch[0].risk_level.at_least(RiskLevel.MEDIUM)


def test_awkward_inputs_do_not_crash(model: SafetyModel) -> None:
    texts = [
        "",
        "   \n\t ",
        "🙂🙂🙂",
        "Ich fühle mich heute ein bisschen traurig 😔 — ça va? 你好",
        "lone surrogate \ud800 here",
        "nul\x00byte",
        "word " * 50_000,
        "x" * 200_000,
    ]
    results = model.assess(texts)
    assert len(results) == len(texts)
    assert all(isinstance(a, Assessment) for a in results)


def test_probabilities_are_a_distribution_over_all_levels(model: SafetyModel) -> None:
    for a in model.assess(MUST_BE_MILD + MUST_BE_SEVERE + [""]):
        assert set(a.probabilities) == set(RISK_LEVELS)
        assert sum(a.probabilities.values()) == pytest.approx(1.0, abs=1e-6)
        assert all(0.0 <= p <= 1.0 for p in a.probabilities.values())
        assert a.model_id == "minilm-l6-head" and a.model_version == model.head.version


def test_empty_batch(model: SafetyModel) -> None:
    assert model.assess([]) == []


def test_thresholds_pick_the_highest_level_reached() -> None:
    probs = np.array(
        [[0.45, 0.05, 0.0, 0.3, 0.2], [0.6, 0.1, 0.0, 0.2, 0.1], [0.1, 0.6, 0.3, 0, 0]]
    )
    assert decide(probs, None).tolist() == [0, 0, 1]
    # P(>= low) is 0.55, 0.4 and 0.9; P(>= high) 0.5, 0.3 and 0; P(>= critical) 0.2, 0.1 and 0.
    thresholds = {"low": 0.5, "medium": 0.5, "high": 0.4, "critical": 0.25}
    assert decide(probs, thresholds).tolist() == [3, 0, 1]
    assert decide(probs, {**thresholds, "critical": 0.15}).tolist() == [4, 0, 1]


def test_config_thresholds_replace_the_heads(model: SafetyModel) -> None:
    everything_critical = SafetyModel(model.encoder, model.head, {"critical": 0.0})
    assert everything_critical.assess(["hello"])[0].risk_level is RiskLevel.CRITICAL


def test_truncated_post_list_is_parsed_tolerantly() -> None:
    assert parse_post_list("['first post', \"it's second\"]") == ["first post", "it's second"]
    assert parse_post_list("['complete one', 'cut off in the midd") == ["complete one"]


def test_metrics() -> None:
    y = np.array([0, 1, 2, 3, 4, 4])
    assert quadratic_weighted_kappa(confusion(y, y)) == pytest.approx(1.0)
    summary = summarise(y, np.array([0, 1, 2, 4, 3, 4]))
    assert summary["high_or_above"] == {"recall": 1.0, "precision": 1.0}
    assert summary["confusion"] == {
        "labels": list(RISK_LEVELS),
        "rows_true_cols_pred": [
            [1, 0, 0, 0, 0],
            [0, 1, 0, 0, 0],
            [0, 0, 1, 0, 0],
            [0, 0, 0, 0, 1],
            [0, 0, 0, 1, 1],
        ],
    }
