"""The prepared local language model, for the tests that run it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch

from models.llm.generation import TransformersBackend
from models.llm.prepare import is_prepared, model_dir
from tests.paths import MODEL_CACHE_DIR


@contextmanager
def loaded_backend(dtype: torch.dtype | None = None) -> Iterator[TransformersBackend]:
    """The prepared model on one thread (skips the test when setup has not prepared it).

    One thread: this machine's two cores are shared, and an OpenMP team that waits on a
    descheduled thread slows down by orders of magnitude. The count is process-wide, so it is
    put back for the tests that follow.
    """
    path = model_dir(MODEL_CACHE_DIR)
    if not is_prepared(path):
        pytest.skip("language model not prepared; run `make setup`")
    threads_before = torch.get_num_threads()
    backend = TransformersBackend.load(path, threads=1, dtype=dtype)
    try:
        yield backend
    finally:
        backend.close()
        torch.set_num_threads(threads_before)
