"""What the draft chooser sends from the same drafts with and without the misreading checks.

`python bench/chooser_faults.py --data F.jsonl --pred P.jsonl --level low`

`P.jsonl` is the output of `python -m models.llm.evaluate --data F.jsonl --candidates 3 ...`,
whose rows list every draft written whole. Each context's drafts are ranked again as
`ReplyChooser` ranks them at their first sentence (`models.llm.drafts`), once with every check
and once without `models.llm.misreadings`; prints one JSON line per context whose choice differs
and then a summary: how many chosen first sentences carry a misreading either way.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from haven.risk import RiskLevel
from models.llm import candidates
from models.llm.candidates import ReplyChooser
from models.llm.reply_shape import sentence_ends
from models.safety.encoder import MiniLMEncoder


def first_sentence(text: str) -> str:
    ends = sentence_ends(text)
    return text[: ends[0]].strip() if ends else text.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--pred", type=Path, required=True)
    parser.add_argument("--level", choices=[level.value for level in RiskLevel], default="low")
    args = parser.parse_args(argv)
    level = RiskLevel(args.level)
    contexts = [
        [turn["text"] for turn in json.loads(line)["context"]]
        for line in args.data.read_text().splitlines()
    ]
    rows = [json.loads(line) for line in args.pred.read_text().splitlines()][:-1]
    chooser = ReplyChooser(MiniLMEncoder(threads=1).encode)
    with_checks = candidates.misreadings
    counts = {"with": 0, "without": 0, "differ": 0}
    for context, row in zip(contexts, rows, strict=False):
        firsts = [first_sentence(text) for text in row["candidates"]]
        chosen = {}
        for name in ("with", "without"):
            candidates.misreadings = with_checks if name == "with" else lambda *_a, **_k: ()
            best = chooser.rank(firsts, context[-1], context, level=level)[0]
            chosen[name] = best.text
            candidates.misreadings = with_checks
            counts[name] += bool(with_checks(best.text, context, level=level))
        if chosen["with"] != chosen["without"]:
            counts["differ"] += 1
            print(json.dumps({"message": context[-1], **chosen}))
    print(json.dumps({"contexts": len(rows), "level": level.value, "misread_sent": counts}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
