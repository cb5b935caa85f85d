"""Which language a message is in, and which path its assessment takes because of it.

Detection: `py3langid` (a maintained fork of langid.py; its naive-Bayes model over byte n-grams,
97 languages, ships inside the wheel, 4.5 MB installed, nothing downloaded). Measured on this
machine on the 245 written multilingual messages whose reason names their language: 100 %
correct at 0.07 ms a message, 1.0 s to load. `lingua-language-detector` 2.1.1 was 99.6 % correct
on the same messages but took 2.7 ms a message (0.45 ms in its low-accuracy mode, 98.4 %),
17 s and 1.3 GB of memory to load all its models, and 96 MB on disk: too heavy for a classifier
replica that answers in milliseconds.

Neither can tell the language of "ok" or "gracias" reliably, so a message shorter than
`MIN_WORDS` words (`content.words`: in scripts without spaces every character is one), or one
in the Latin
script detected with a probability below `MIN_PROBABILITY`, is `UNDETERMINED` and read as English
is read. A message whose letters are mostly of another script (Cyrillic, Greek, Arabic, Hebrew,
Devanagari, Chinese, Japanese, Korean, Thai...) is in none of the trained languages whatever the
detector's confidence, so it takes the untrained path with the detector's best guess as its name.

Paths (`route`):
- `english` (and undetermined): the model with the head's thresholds.
- `trained`: a language the written corpus covers (`TRAINED`); the model's reading, and in the
  served cascade a text near a crisis is read again by the multilingual-e5-small head, whose
  thresholds were chosen out of fold on these languages' messages (`cascade.py`). The rule layer
  recognises explicit plans, means, timing and attempts in Spanish, French, German and
  Portuguese, and a stated wish or intent, its timing and pills taken in Italian, Dutch, Polish
  and Turkish.
- `untrained`: any other language. The model never saw it: its reading there is guesswork both
  ways ("今天晚上我要自杀", "I will kill myself tonight", came out `none`; Russian everyday text
  comes out high). So the model's reading is replaced by `medium`, whatever it says: the reply
  names the local crisis line every time, and no panel is shown on the model's word alone. The
  rule layer (English and the eight trained languages) and the conversation's context can still
  raise it; nothing lowers it. An explicit plan written only in such a language is
  therefore not shown the panel: that is the known limit of this path (MODEL_CARD.md).
"""

from __future__ import annotations

import functools
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from models.safety.content import words

MIN_WORDS = 3
MIN_PROBABILITY = 0.9
# Enough to tell the language of a long post; detection time grows with the text.
DETECT_CHARS = 1000
UNDETERMINED = "und"
ENGLISH = "en"
# Languages the written corpus has messages in, at every level (models/safety/data/written).
TRAINED = frozenset({"es", "fr", "de", "pt", "it", "nl", "pl", "tr"})


class Route(StrEnum):
    ENGLISH = "english"
    TRAINED = "trained"
    UNTRAINED = "untrained"


@dataclass(frozen=True)
class Detected:
    language: str
    probability: float

    @property
    def route(self) -> Route:
        if self.language in (ENGLISH, UNDETERMINED):
            return Route.ENGLISH
        return Route.TRAINED if self.language in TRAINED else Route.UNTRAINED


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def _mostly_other_script(text: str) -> bool:
    letters = [c for c in text if c.isalpha()]
    latin = sum(1 for c in letters if "LATIN" in unicodedata.name(c, ""))
    return bool(letters) and latin < len(letters) / 2


def detect(text: str) -> Detected:
    """The language of `text`, or `UNDETERMINED` when it is too short or unclear to say."""
    head = text[:DETECT_CHARS]
    if len(words(head)) < MIN_WORDS:
        return Detected(UNDETERMINED, 0.0)
    language, probability = _identifier().classify(head)
    if _mostly_other_script(head):
        # Never English nor a trained language, whichever of the others it is.
        return Detected(str(language) if language != ENGLISH else "other", float(probability))
    if probability < MIN_PROBABILITY:
        return Detected(UNDETERMINED, float(probability))
    return Detected(str(language), float(probability))


def route(text: str) -> Route:
    return detect(text).route
