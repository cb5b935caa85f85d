"""Where the tests find the repository and the language model prepared by `make setup`."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODEL_CACHE_DIR = ROOT / ".cache" / "models"
