"""Risk levels and the result of one safety assessment, shared by the classifier and the turn."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class RiskLevel(StrEnum):
    NONE = "none"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    def at_least(self, other: RiskLevel) -> bool:
        return self.rank >= other.rank


_ORDER: list[RiskLevel] = list(RiskLevel)
RISK_LEVELS: tuple[str, ...] = tuple(level.value for level in RiskLevel)


class Assessment(BaseModel):
    """One message's risk as the classifier sees it."""

    model_config = ConfigDict(frozen=True)

    risk_level: RiskLevel
    # A probability for every level, summing to one.
    probabilities: dict[str, float]
    model_id: str
    model_version: str = ""
    # What raised the level above the model's own reading, e.g. "explicit_plan"; None if nothing.
    raised_by: str | None = None
