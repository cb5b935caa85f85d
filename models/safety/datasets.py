"""Training examples for the safety head, from the public sets and the project's written corpus.

Every example carries a group (user, dialogue, question or text) and a split decided by a stable
hash of that group, so the held-out part never changes between runs or machines and no user's
posts sit on both sides of the split.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import pathlib
import random
import re
from dataclasses import dataclass

from haven.risk import RISK_LEVELS

PUBLIC_TEST_FRACTION = 0.2
CSSRS_POSTS_PER_USER = 8
MIN_POST_CHARS = 30
TWITTER_NEGATIVE_CAP = 2500
ESCONV_CAP = 3000
SEED = 13

CSSRS_LEVELS = {
    "Supportive": "none",
    "Indicator": "low",
    "Ideation": "medium",
    "Behavior": "high",
    "Attempt": "high",
}
# Sources without risk labels are assumed benign; texts that talk about suicide or self-harm are
# dropped from them rather than guessed at, since their true level is unknown.
_RISK_TERMS = re.compile(
    r"suicid|kill(ing)? my ?self|end(ing)? (my life|it all)|self[- ]?harm|overdos|"
    r"want(ed)? to die|cut(ting)? my ?self|hurt(ing)? my ?self|\bkms\b",
    re.IGNORECASE,
)
# The C-SSRS authors replaced words with medical concepts; this one stands for "like" and is
# so frequent (1,300+ times) that leaving it would teach the head a dataset artefact.
_CSSRS_LIKE = re.compile(r"Hyperactive behavior", re.IGNORECASE)
_QUOTED = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"")


@dataclass(frozen=True)
class Example:
    text: str
    level: int
    source: str
    group: str
    split: str


def bucket(key: str, salt: str = "") -> float:
    """A stable pseudo-random number in [0, 1) for `key`."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _split(key: str, fraction: float) -> str:
    return "test" if bucket(key, "split") < fraction else "train"


def _example(text: str, level: str, source: str, group: str, fraction: float) -> Example:
    return Example(text.strip(), RISK_LEVELS.index(level), source, group, _split(group, fraction))


def parse_post_list(raw: str) -> list[str]:
    """Parse C-SSRS's list-literal column; rows cut mid-literal fall back to a quote scan."""
    try:
        value = ast.literal_eval(raw)
        if isinstance(value, list):
            return [str(v) for v in value]
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        pass
    return [m.group(1) if m.group(1) is not None else m.group(2) for m in _QUOTED.finditer(raw)]


def _csv_rows(path: pathlib.Path) -> list[dict[str, str]]:
    csv.field_size_limit(1 << 30)
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def load_cssrs(data_dir: pathlib.Path) -> list[Example]:
    rng = random.Random(SEED)
    out: list[Example] = []
    for row in _csv_rows(data_dir / "cssrs_reddit" / "cssrs_reddit_users.csv"):
        posts = [_CSSRS_LIKE.sub("like", p).strip() for p in parse_post_list(row["Post"])]
        posts = [p for p in posts if len(p) >= MIN_POST_CHARS]
        rng.shuffle(posts)
        level = CSSRS_LEVELS[row["Label"]]
        for post in posts[:CSSRS_POSTS_PER_USER]:
            out.append(_example(post, level, "cssrs", row["User"], PUBLIC_TEST_FRACTION))
    return out


def load_sdcnl(data_dir: pathlib.Path) -> list[Example]:
    out: list[Example] = []
    for row in _csv_rows(data_dir / "sdcnl" / "training-set.csv"):
        text = f"{row['title']}. {row['selftext']}".strip()
        level = "medium" if row["is_suicide"].strip() == "1" else "low"
        out.append(_example(text, level, "sdcnl", text, PUBLIC_TEST_FRACTION))
    return out


def load_twitter_negatives(data_dir: pathlib.Path) -> list[Example]:
    # Class 1 texts are long Reddit-style posts and class 0 short tweets, so using class 1 would
    # teach "long means risky"; only the negatives are used, as ordinary chatter.
    rows = _csv_rows(data_dir / "twitter_suicidal_intention" / "twitter-suicidal_data.csv")
    texts = sorted({r["tweet"].strip() for r in rows if r["intention"].strip() == "0"})
    texts = [t for t in texts if len(t.split()) >= 3 and not _RISK_TERMS.search(t)]
    random.Random(SEED).shuffle(texts)
    return [
        _example(t, "none", "twitter", t, PUBLIC_TEST_FRACTION)
        for t in texts[:TWITTER_NEGATIVE_CAP]
    ]


def load_esconv(data_dir: pathlib.Path) -> list[Example]:
    out: list[Example] = []
    for name in ("train.json", "valid.json"):
        lines = (data_dir / "esconv" / name).read_text(encoding="utf-8").splitlines()
        for n, line in enumerate(filter(None, map(str.strip, lines))):
            dialogue = json.loads(line)
            group = f"{name}:{n}"
            for turn in dialogue["dialog"]:
                text = turn["text"].strip()
                if turn["speaker"] == "usr" and text and not _RISK_TERMS.search(text):
                    out.append(_example(text, "low", "esconv", group, PUBLIC_TEST_FRACTION))
    random.Random(SEED).shuffle(out)
    return out[:ESCONV_CAP]


def load_counsel_chat(data_dir: pathlib.Path) -> list[Example]:
    seen: set[str] = set()
    out: list[Example] = []
    for row in _csv_rows(data_dir / "counsel_chat" / "20200325_counsel_chat.csv"):
        text = (row["questionText"] or row["questionTitle"]).strip()
        if text and text not in seen and not _RISK_TERMS.search(text):
            seen.add(text)
            out.append(
                _example(text, "low", "counsel_chat", row["questionID"], PUBLIC_TEST_FRACTION)
            )
    return out


PUBLIC_SOURCES = ("cssrs", "sdcnl", "twitter", "esconv", "counsel_chat")


def load_public(data_dir: pathlib.Path) -> list[Example]:
    loaders = (load_cssrs, load_sdcnl, load_twitter_negatives, load_esconv, load_counsel_chat)
    return [ex for load in loaders for ex in load(data_dir)]
