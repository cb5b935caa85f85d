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


def crisis_reply(settings: Settings) -> list[str]:
    """The reply at high and critical risk, sentence by sentence.

    Written and reviewed rather than sampled: the small default language model, prompted for
    crisis support, was seen to miss the crisis lines in every sampled reply and sometimes to
    affirm the person's plan. A larger model may replace this once it is shown to do better.
    """
    return [
        "I'm really glad you told me, and I'm worried about your safety right now. ",
        "You don't have to go through this alone. ",
        f"Please call or text {settings.crisis_hotline} to reach someone who can help right now, "
        f"or text HOME to {settings.crisis_text}. ",
        "If you are in immediate danger, call your local emergency number. ",
        "I'm here with you. Are you somewhere safe at the moment?",
    ]


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
