"""The `--write` / `--check` command line shared by the generated files under docs/.

Each generator renders its file from the code; `--check` (CI, and the drift tests) fails when the
committed file is not exactly what the code renders now.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(
    argv: Sequence[str] | None, *, module: str, default_path: Path, render: Callable[[], str]
) -> int:
    """Print the rendered text, write it (`--write`), or exit 1 when the file differs."""
    parser = argparse.ArgumentParser(prog=f"python -m {module}")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help=f"write {default_path.name}")
    mode.add_argument("--check", action="store_true", help="exit 1 if the file differs")
    parser.add_argument("--path", type=Path, default=default_path)
    args = parser.parse_args(argv)
    text = render()
    if args.write:
        args.path.write_text(text, encoding="utf-8")
    elif args.check:
        current = args.path.read_text(encoding="utf-8") if args.path.exists() else None
        if current != text:
            print(f"{args.path} is out of date: run python -m {module} --write")
            return 1
    else:
        sys.stdout.write(text)
    return 0
