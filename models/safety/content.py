"""Content-free messages: too short or too empty for the model to read as danger.

A message the encoder has nothing to go on ("ok", "test", "socket", "42", "🙂") is out of the
distribution the head was trained on, and the head's reading of it is noise: "socket" alone came
out critical (P 0.63). Such a message, read alone, is never put above `low`; the conversation it
sits in can still raise it (the in-context reading and the rules are untouched), so "ok" after a
described plan is still taken seriously.

Definition. After NFKC normalisation and case folding, a message is content-free when it names
no risk term (`RISK_TERM`: death, dying, killing, suicide, self-harm, means, a goodbye or a call
for help, in English, Spanish, French, German, Portuguese and Italian, plus the emoji for means
and death) and either

- has no letter at all (digits, punctuation, emoji, white space), or
- has at most `MAX_WORDS` words (runs of letters, apostrophes and hyphens; in scripts written
  without spaces, Chinese, Japanese, Korean and Thai, every character counts as a word) and at
  most `MAX_CHARS` characters.

Anything longer, or anything with a risk term in it, goes to the model as before.
"""

from __future__ import annotations

import re
import unicodedata

MAX_WORDS = 2
MAX_CHARS = 32

# Scripts written without spaces between words: Japanese kana, CJK ideographs, Hangul, Thai.
NO_SPACES = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]")
_WORD = re.compile(
    r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f]|"
    r"(?:(?![\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f])[^\W\d_])"
    r"(?:(?![\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\u0e00-\u0e7f])[^\W\d_]|['\-])*"
)
# Stems match the start of a word; short ones are whole words so "diet" or "endless" stay out.
RISK_TERM = re.compile(
    r"\b(?:die|died|dies|dying|dead|death|kill\w*|suicid\w*|kms|kys|overdos\w*|od|pills?|"
    r"tablets?|meds|rope|noose|gun|jump\w*|bridge|ledge|roof|goodbye|farewell|bye forever|"
    r"cut|cuts|cutting|bleed\w*|blood|hang\w*|end it|ending it|help|sos|hurt\w*|harm\w*|"
    r"razor|blade|unalive|"
    # es / pt / it
    r"muert\w*|morir\w*|muero|morte|morrer\w*|morire|mort[oa]|mat[ae]r\w*|suicidi\w*|"
    r"adios|adeus|addio|ayuda|ajuda|aiuto|socorro|pastillas?|pilulas?|comprimidos?|"
    r"soga|corda|puente|ponte|saltar|pular|"
    # fr
    r"mourir|mort|tuer|adieu|aide|a l'aide|cachets|corde|pont|sauter|"
    # de
    r"sterben|tot|tod|umbringen|selbstmord|suizid\w*|abschied|hilfe|tabletten|seil|brucke|"
    r"springen)\b"
    r"|[\U0001F52A\U0001FA78\U0001F48A\U0001FAA2\U0001F52B\u26B0\U0001FAA6]"
)


# Letters NFKD leaves whole, read as their plain letters: German sharp s, Polish l with stroke,
# Turkish dotless i.
_UNDECOMPOSED = str.maketrans({"ß": "ss", "\u0142": "l", "\u0131": "i"})


def fold(text: str) -> str:
    """Case-folded, NFKC-normalised, diacritics removed ("brücke" -> "brucke", "życie" -> "zycie",
    "öldüreceğim" -> "oldurecegim"), and the letters without a decomposition read plain
    (`_UNDECOMPOSED`)."""
    decomposed = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text).casefold())
    stripped = "".join(c for c in decomposed if not unicodedata.combining(c))
    return stripped.replace("\u2019", "'").translate(_UNDECOMPOSED)


def words(text: str) -> list[str]:
    return _WORD.findall(fold(text))


def content_free(text: str) -> bool:
    """True when `text` is too short or empty to carry risk on its own (module docstring)."""
    folded = fold(text).strip()
    if RISK_TERM.search(folded):
        return False
    found = _WORD.findall(folded)
    if not found:
        return True
    return len(found) <= MAX_WORDS and len(folded) <= MAX_CHARS
