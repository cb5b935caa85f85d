"""The project's written chat corpus and its fixed test split.

`data/written/*.jsonl` holds single messages (`{"text", "level", "reason"}`) and, in
`conversations.jsonl`, a person's messages in order (`{"messages", "level", "reason"}`, the level
being the risk after the last message). A fixed fifth of every file and level is the project's
own test set: within each (file, level) group the items with the smallest stable hash of their
text are held out, so the split is stratified, identical on every machine, and an item only
changes side when its group grows or shrinks around it.
"""

from __future__ import annotations

import argparse
import json
import math
import pathlib
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from haven.risk import RISK_LEVELS
from models.safety.datasets import Example, bucket
from models.safety.pipeline import context_text

WRITTEN_DIR = pathlib.Path(__file__).resolve().parent / "data" / "written"
TEST_FRACTION = 0.2


@dataclass(frozen=True)
class WrittenItem:
    """One labelled message, or a conversation whose last message is the one being assessed."""

    messages: tuple[str, ...]
    level: int
    file: str
    split: str

    @property
    def text(self) -> str:
        return self.messages[-1]

    @property
    def context(self) -> list[str]:
        return list(self.messages[:-1])

    @property
    def key(self) -> str:
        return "\n".join(self.messages)

    @property
    def is_conversation(self) -> bool:
        """Several messages, in whichever file: the last is read in the context of the others."""
        return len(self.messages) > 1


def _read(path: pathlib.Path) -> Iterable[tuple[tuple[str, ...], int]]:
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            messages = item["messages"] if "messages" in item else [item["text"]]
            level = RISK_LEVELS.index(item["level"])
        except (ValueError, KeyError, TypeError) as exc:
            # A file still being written can end in a half line; skip it rather than fail.
            print(f"skipping {path.name}:{n}: {exc!r}", file=sys.stderr)
            continue
        messages = tuple(str(m).strip() for m in messages if str(m).strip())
        if messages:
            yield messages, level


def load_written(directory: pathlib.Path = WRITTEN_DIR) -> list[WrittenItem]:
    """Every written item, deduplicated by its text, with its fixed train/test split."""
    seen: set[tuple[str, ...]] = set()
    groups: dict[tuple[str, int], list[tuple[str, ...]]] = {}
    for path in sorted(directory.glob("*.jsonl")):
        for messages, level in _read(path):
            folded = tuple(m.casefold() for m in messages)
            if folded not in seen:
                seen.add(folded)
                groups.setdefault((path.stem, level), []).append(messages)
    items: list[WrittenItem] = []
    for (file, level), members in sorted(groups.items()):
        ranked = sorted(members, key=lambda m: bucket("\n".join(m), "written-test"))
        n_test = math.ceil(TEST_FRACTION * len(ranked) - 1e-9)
        test = {ranked[i] for i in range(n_test)}
        items.extend(WrittenItem(m, level, file, "test" if m in test else "train") for m in members)
    return items


def to_examples(items: Iterable[WrittenItem]) -> list[Example]:
    """Training texts: a message alone, or a conversation's last message read in its context,
    which is how the deployment scores it; a conversation's last message alone carries no label
    of its own (\"ok\" after a described plan is not itself a plan), so it is not used."""
    out: list[Example] = []
    for item in items:
        joined = context_text(item.text, item.context)
        source = "conversations" if item.is_conversation else "written"
        out.append(Example(joined or item.text, item.level, source, item.key, item.split))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Write one split of the written corpus in the evaluation CLI's input format."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--split", choices=("train", "test"), default="test")
    parser.add_argument("--out", type=pathlib.Path, required=True)
    parser.add_argument("--written", type=pathlib.Path, default=WRITTEN_DIR)
    args = parser.parse_args(argv)
    with args.out.open("w", encoding="utf-8") as fh:
        for item in load_written(args.written):
            if item.split == args.split:
                row: dict[str, object] = {"risk_level": RISK_LEVELS[item.level], "file": item.file}
                if len(item.messages) > 1:
                    row["messages"] = list(item.messages)
                else:
                    row["text"] = item.text
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
