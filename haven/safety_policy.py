"""What Haven does with an assessed risk: when to escalate, which reply, which intent.

- critical: crisis resources first, then a fixed, reviewed crisis-support reply (not generated).
- high: crisis resources first, then a reply generated under the safety check-in prompt.
- medium: no escalation; the reply's prompt carries a gentle check-in (the generator reads
  the risk level).
- could not assess: fail closed — resources, a retryable error, and no reply at all.
"""

from __future__ import annotations

from enum import StrEnum

from haven.protocol import EmergencyResources
from haven.risk import RiskLevel

ESCALATION_LEVEL = RiskLevel.HIGH
# Sent in place of a level when the message could not be assessed: resources are shown anyway.
UNASSESSED = "unknown"

CRISIS_SUPPORT = "crisis_support"
SAFETY_CHECK_IN = "safety_check_in"


class Action(StrEnum):
    """What was done about an escalation, as the audit trail records it."""

    CRISIS_REPLY = "resources_and_crisis_reply"
    SAFETY_CHECK_IN = "resources_and_safety_check_in"
    FAIL_CLOSED = "resources_and_no_reply"
    REPLY_REPLACED = "unsafe_reply_replaced"


def escalates(level: RiskLevel) -> bool:
    return level.at_least(ESCALATION_LEVEL)


def policy_intent(level: RiskLevel) -> str | None:
    """The intent the safety policy imposes, or None when the planner may choose."""
    if level is RiskLevel.CRITICAL:
        return CRISIS_SUPPORT
    if level is RiskLevel.HIGH:
        return SAFETY_CHECK_IN
    return None


def uses_fixed_reply(level: RiskLevel) -> bool:
    return level is RiskLevel.CRITICAL


def escalation_action(level: RiskLevel) -> Action:
    return Action.CRISIS_REPLY if uses_fixed_reply(level) else Action.SAFETY_CHECK_IN


def _text_line(resources: EmergencyResources) -> str:
    return resources.text_instruction or f"text {resources.crisis_text}"


def crisis_reply(resources: EmergencyResources) -> list[str]:
    """The reply at critical risk, sentence by sentence.

    Written and reviewed rather than sampled: the small default language model, prompted for
    crisis support, was seen to miss the crisis lines in every sampled reply and sometimes to
    affirm the person's plan.
    """
    emergency = resources.emergency_number or "your local emergency number"
    return [
        "I'm really glad you told me, and I'm worried about your safety right now. ",
        "You don't have to go through this alone. ",
        f"Please call {resources.crisis_hotline} to reach someone who can help right now, "
        f"or {_text_line(resources)[0].lower()}{_text_line(resources)[1:]}. ",
        f"If you are in immediate danger, call {emergency}. ",
        "If you can, move away from anything you could use to hurt yourself, and let someone "
        "near you know. ",
        "I'm here with you. Are you somewhere safe at the moment?",
    ]


def check_in_footer(resources: EmergencyResources) -> str:
    """Ends every generated reply at high risk, whatever the model wrote: the way to reach
    someone now is part of the reply itself, not only of the escalation panel."""
    emergency = resources.emergency_number or "your local emergency number"
    return (
        f"\n\nIf you're thinking about ending your life or feel unsafe, you can call "
        f"{resources.crisis_hotline} or {_text_line(resources)[0].lower()}"
        f"{_text_line(resources)[1:]}, any time. If you're in immediate danger, call {emergency}."
    )


def safe_replacement(resources: EmergencyResources) -> str:
    """Sent instead of a generated reply that failed the output check."""
    return (
        "I'm sorry, I can't help with that, but I do care about how you're doing. "
        "If you're thinking about hurting yourself, please reach out now: call "
        f"{resources.crisis_hotline} or {_text_line(resources)[0].lower()}"
        f"{_text_line(resources)[1:]}. Would you like to tell me more about what's going on?"
    )
