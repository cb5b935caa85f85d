"""Finding and starting Debian's headless Chromium, for every tier that drives the web client.

Nothing here downloads a browser: it is `/usr/bin/chromium` (or `HAVEN_CHROMIUM`), driven by
Playwright. Without it a test is skipped, or fails where HAVEN_REQUIRE_BROWSER is set (CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

INSTALL_HINT = "install Debian's chromium (apt-get install chromium) or set HAVEN_CHROMIUM"


def browser_required() -> bool:
    value = os.environ.get("HAVEN_REQUIRE_BROWSER", "").strip().lower()
    return value not in ("", "0", "false", "no")


def chromium_path() -> Path | None:
    configured = os.environ.get("HAVEN_CHROMIUM")
    candidates = [configured] if configured else ["/usr/bin/chromium", shutil.which("chromium")]
    for candidate in candidates:
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return Path(candidate)
    return None


@contextmanager
def launched_chromium() -> Iterator[Any]:
    """A headless Chromium for one test module. Playwright's sync API runs its own event loop,
    so each module starts and stops its own: the loop is closed again before the asyncio tests
    of other modules run."""
    path = chromium_path()
    if path is None:
        if browser_required():
            pytest.fail(f"a browser is required here (HAVEN_REQUIRE_BROWSER): {INSTALL_HINT}")
        pytest.skip(f"no chromium found: {INSTALL_HINT}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if browser_required():
            raise
        pytest.skip("the playwright package is missing: pip install -e '.[dev]'")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(path), headless=True)
        try:
            yield browser
        finally:
            browser.close()
