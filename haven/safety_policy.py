"""What Haven does with an assessed risk: when to escalate, which resources, which intent."""

from __future__ import annotations

from haven.protocol import EmergencyResources
from haven.risk import RiskLevel
from haven.settings import Settings

ESCALATION_LEVEL = RiskLevel.HIGH
# Sent in place of a level when the message could not be assessed: resources are shown anyway.
UNASSESSED = "unknown"


def escalates(level: RiskLevel) -> bool:
    return level.at_least(ESCALATION_LEVEL)


def emergency_resources(settings: Settings) -> EmergencyResources:
    return EmergencyResources(
        crisis_hotline=settings.crisis_hotline,
        crisis_text=settings.crisis_text,
        message=settings.crisis_message,
    )


def policy_intent(level: RiskLevel) -> str | None:
    """The intent the safety policy imposes, or None when the conversation may choose."""
    if escalates(level):
        return "crisis_support"
    if level is RiskLevel.MEDIUM:
        return "safety_check_in"
    return None


def reply_intent(level: RiskLevel) -> str:
    # Until a planner chooses among the conversational intents, every other turn validates.
    return policy_intent(level) or "validate"
