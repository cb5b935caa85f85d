"""docs/security.md points each claim at a test: every test it names exists."""

from __future__ import annotations

import re

from tests.paths import ROOT

# `tests/x.py`, `tests/x.py::test_name`, or `::test_name` (in the file named last before it).
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)?(?:::(\w+))?`")


def test_every_test_named_in_the_security_review_exists() -> None:
    doc = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    named, current = 0, None
    missing: list[str] = []
    for match in REFERENCE.finditer(doc):
        path, name = match.groups()
        current = path or current
        if current is None or not (path or name):
            continue
        source = ROOT / current
        if not source.exists():
            missing.append(current)
            continue
        if name:
            named += 1
            if f"def {name}(" not in source.read_text(encoding="utf-8"):
                missing.append(f"{current}::{name}")
    assert not missing
    assert named >= 30
