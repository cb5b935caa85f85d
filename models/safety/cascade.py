"""Two readers in cascade: the fast MiniLM classifier reads every text, and the larger mpnet
classifier re-reads the texts MiniLM thinks could be high or critical, and decides those.

Why: at the same critical-miss rate (≤ 0.04, out of fold on the written training split), mpnet's
head raises a crisis panel for far fewer ordinary messages than MiniLM's (over-escalation 0.145
against 0.250), but reads about a sixth as many messages a second. Most messages in a support
chat are nowhere near a crisis, and MiniLM already tells those apart: only a text whose MiniLM
probability of `high` or above reaches `gate` (0.05) is read again. Out of fold that gate keeps
mpnet's figures (over-escalation 0.140, miss 0.038, QWK 0.828, MODEL_CARD.md "Cascade") while
mpnet reads 34 % of ESConv seekers' messages and 2 of the benchmark's 16.

A text below the gate keeps MiniLM's assessment; a text at or above it takes the second reader's
whole assessment (level and probabilities), so the audit trail names the model that decided.

mpnet was trained on English and reads the other languages of the written corpus poorly: out of
fold it raised 52 % of their ordinary messages to high and missed 16 % of their severe ones. Those
texts (`language.Route.TRAINED`) go instead to `languages`, a head over multilingual-e5-small
(`e5.py`) with thresholds chosen on those languages' messages, when one is given.
"""

from __future__ import annotations

from collections.abc import Sequence

from haven.risk import Assessment, RiskLevel
from models.safety import language
from models.safety.pipeline import RiskModel

# MiniLM's P(high or above) from which a text is read again (chosen out of fold, see above).
DEFAULT_GATE = 0.05
SEVERE = (RiskLevel.HIGH.value, RiskLevel.CRITICAL.value)


def severe_probability(assessment: Assessment) -> float:
    """P(high or above) of an assessment."""
    return sum(assessment.probabilities.get(level, 0.0) for level in SEVERE)


class CascadeModel:
    """`first` for every text; for the texts whose severe probability reaches `gate`, `languages`
    if given and the text is in a trained language other than English, `second` otherwise."""

    def __init__(
        self,
        first: RiskModel,
        second: RiskModel,
        gate: float = DEFAULT_GATE,
        languages: RiskModel | None = None,
    ) -> None:
        if not 0.0 <= gate <= 1.0:
            raise ValueError(f"gate must be within [0, 1], not {gate}")
        self.first, self.second, self.gate, self.languages = first, second, gate, languages
        self.model_id = f"{first.model_id}>{second.model_id}"
        self.model_version = f"{first.model_version}>{second.model_version}"
        if languages is not None:
            self.model_id += f"|{languages.model_id}"
            self.model_version += f"|{languages.model_version}"
        # Texts read twice since start, for the benchmark and the operator's curiosity.
        self.read = 0
        self.reread = 0

    @property
    def reread_fraction(self) -> float:
        """The share of the texts read so far that the second reader read again."""
        return self.reread / self.read if self.read else 0.0

    def assess(self, texts: Sequence[str]) -> list[Assessment]:
        """One assessment per text, in the order given."""
        out = self.first.assess(texts)
        again = [i for i, a in enumerate(out) if severe_probability(a) >= self.gate]
        other: list[int] = []
        if self.languages is not None:
            other = [i for i in again if language.route(texts[i]) is language.Route.TRAINED]
        routed = set(other)
        rest = [i for i in again if i not in routed]
        for reader, indices in ((self.second, rest), (self.languages, other)):
            if reader is not None and indices:
                readings = reader.assess([texts[i] for i in indices])
                for i, assessment in zip(indices, readings, strict=True):
                    out[i] = assessment
        self.read += len(texts)
        self.reread += len(again)
        return out
