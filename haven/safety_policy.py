"""What Haven does with an assessed risk: when to escalate, which reply, which intent.

The whole response, escalation panel and reply together, is calibrated to the level, following
the clinical ladder safety benchmarks grade by (`haven.reply_elements` enforces the reply's part):

- none: listening and, if asked, ideas; no crisis resources in the reply.
- low: validate, suggest someone they trust or a professional; no crisis line, no panel.
- medium: no panel; a reviewed reply (`haven.reviewed_replies`) validates, asks gently how the
  person is right now, says that support exists right now and names the locale's line. Only an
  operator who serves a large model through the `openai` backend may let it write here
  (`generator.trusted_at_medium`); its reply is screened for agreeing with the person and gets
  the line added when missing.
- high: the panel first, then a reviewed reply (`haven.reviewed_replies`): it stays with the
  person, asks directly about safety now, names the line and gives one safety-planning step.
  Only an operator who serves a large model through the `openai` backend may let it write here
  (`generator.trusted_at_high`); its reply is screened strictly and gets the line and the safety
  question added when missing.
- critical: the panel with the emergency number first, then a reviewed urgent reply.
- could not assess: fail closed — resources, a retryable error, and no reply at all.

A model that cannot be trusted with a life never writes free text to a person at risk: the
small default model, prompted for crisis support, was seen to miss the crisis lines in every
sampled reply and sometimes to affirm the person's plan; support-tuned, it welcomed or agreed
with the wish to die in 16 of 60 replies to medium messages ("I am glad you are feeling this
way", "It would be easier if you just die"; models/llm/MODEL_CARD.md).
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
GENTLE_CHECK_IN = "gentle_check_in"  # the reviewed medium reply


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


def uses_fixed_reply(
    level: RiskLevel, *, generated_at_high: bool = False, generated_at_medium: bool = False
) -> bool:
    """Whether the reply is a reviewed one rather than generated; `generated_at_high` and
    `generated_at_medium`: the operator trusts the generating model at that level
    (`Settings.generated_replies_at_high`, `Settings.generated_replies_at_medium`; trust at
    high includes medium)."""
    if level is RiskLevel.CRITICAL:
        return True
    if level is RiskLevel.HIGH:
        return not generated_at_high
    if level is RiskLevel.MEDIUM:
        return not (generated_at_medium or generated_at_high)
    return False


def escalation_action(level: RiskLevel) -> Action:
    return Action.CRISIS_REPLY if level is RiskLevel.CRITICAL else Action.SAFETY_CHECK_IN


def text_line_in_sentence(resources: EmergencyResources) -> str:
    """The locale's text line as it reads after "call 988 or": "text HOME to 741741"."""
    text_line = resources.text_instruction or f"text {resources.crisis_text}"
    return text_line[:1].lower() + text_line[1:]


# Output-screen reasons about how a reply treats the person rather than about harm
# (`models.safety.output_screen`): replaced at none and low risk without crisis resources,
# which a reply at those levels never carries.
RELATIONAL_REASONS = frozenset({"pushes_away", "claims_clinician"})
RELATIONAL_REPLACEMENT = (
    "I'm sorry, that didn't come out the way I meant it. I'm here and I'm listening. "
    "Would you tell me a bit more about what's going on?"
)


# A reply that agreed with a person in distress (reason `endorses`, screened at medium and
# above): it takes the agreement back without judging what they said, and does what a medium
# reply does (asks how they are now, says that support exists right now).
ENDORSEMENT_REASON = "endorses"


def safe_replacement(
    resources: EmergencyResources, level: RiskLevel = RiskLevel.MEDIUM, reason: str = ""
) -> str:
    """Sent instead of a generated reply that failed the output check for `reason`."""
    if reason in RELATIONAL_REASONS and level in (RiskLevel.NONE, RiskLevel.LOW):
        return RELATIONAL_REPLACEMENT
    if reason == ENDORSEMENT_REASON:
        return (
            "I'm sorry, that didn't come out the way I meant it. What you're carrying sounds "
            "really heavy, and I'm glad you told me. How are you doing right now? If it ever "
            f"feels like too much, support is there right now: you can call "
            f"{resources.crisis_hotline} or {text_line_in_sentence(resources)}."
        )
    return (
        "I'm sorry, I can't help with that, but I do care about how you're doing. "
        "If you're thinking about hurting yourself, please reach out now: call "
        f"{resources.crisis_hotline} or {text_line_in_sentence(resources)}. "
        "Would you like to tell me more about what's going on?"
    )
