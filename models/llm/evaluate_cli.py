"""Command-line options of `models.llm.evaluate`."""

from __future__ import annotations

import argparse
from pathlib import Path

from models.llm.prepare import DEFAULT_CACHE_DIR
from models.llm.reply_shape import DEFAULT_MAX_SENTENCES


def parse_args(argv: list[str] | None, doc: str | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=doc.splitlines()[0] if doc else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="input contexts, one JSON object a line")
    parser.add_argument("--out", type=Path, required=True, help="predictions (or the export)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--limit", type=int, default=None, help="first N contexts only")
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--tuned",
        dest="tuned",
        action="store_true",
        default=True,
        help="the support-tuned model (default; what `make serve` runs)",
    )
    model.add_argument(
        "--untuned",
        dest="tuned",
        action="store_false",
        help="SmolLM2-135M-Instruct as published, for comparison",
    )
    model.add_argument("--model-path", type=Path, default=None, help="any prepared model folder")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-sentences",
        type=int,
        default=DEFAULT_MAX_SENTENCES,
        help="reply bound in sentences (models.llm.reply_shape); 0: no bound",
    )
    parser.add_argument(
        "--temperature",
        type=float,
        default=0.5,
        help="sampling temperature (serve_config.yaml's default 0.5); 0: greedy",
    )
    parser.add_argument(
        "--candidates",
        type=int,
        default=3,
        help="drafts per context, one kept at their first sentences as served "
        "(models.llm.drafts; serve_config.yaml's default 3); 1: one sample",
    )
    parser.add_argument(
        "--risk-level",
        choices=("none", "low", "medium"),
        default="none",
        help="the level every context's last message is taken to have: the prompt's note, the "
        "draft chooser and the output screen follow it, as served (high and critical replies "
        "are reviewed, not generated)",
    )
    parser.add_argument(
        "--export-esconv",
        choices=("train", "valid"),
        default=None,
        help="write this ESConv split as input lines to --out, and stop",
    )
    parser.add_argument("--esconv-dir", type=Path, default=Path("../shared/data/esconv"))
    args = parser.parse_args(argv)
    if args.candidates < 1:
        parser.error("--candidates must be at least 1")
    if args.export_esconv is None and args.data is None:
        parser.error("--data is required (or --export-esconv)")
    return args
