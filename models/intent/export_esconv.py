"""Write an ESConv split in the evaluation format, one labelled conversation per line.

    python -m models.intent.export_esconv --split valid --out esconv-valid.jsonl

Each line is `{"context": [{"role", "text"}, ...], "intent": ...}` for one supporter turn, built
by the same mapping as training, so `models.intent.evaluate` on the output reproduces the
numbers `models.intent.train` reports for the split.
"""

from __future__ import annotations

import argparse
import json
import pathlib

from models.intent import esconv
from models.intent.train import DEFAULT_DATA


def export(data_dir: pathlib.Path, split: str, out: pathlib.Path) -> int:
    """Write the split to `out`; returns the number of lines written."""
    examples = esconv.load_split(data_dir, split)
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8") as fh:
        for example in examples:
            context = [{"role": t.role, "text": t.text} for t in example.context]
            line = {"context": context, "intent": example.intent}
            fh.write(json.dumps(line, ensure_ascii=False) + "\n")
    return len(examples)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=pathlib.Path, default=DEFAULT_DATA)
    parser.add_argument("--split", choices=esconv.SPLITS, default="valid")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    args = parser.parse_args(argv)
    count = export(args.data, args.split, args.out)
    print(f"wrote {count} conversations to {args.out}")


if __name__ == "__main__":
    main()
