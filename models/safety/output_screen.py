"""Screening of generated replies for method or means detail, for encouragement of harm, for
the two things a small model says that push a person at risk away (that they would be better
off without the supporter, that the supporter is a clinician), and, when the person is in
distress, for agreeing with what they said.

`unsafe_reply` runs on the accumulated reply after every streamed chunk, so it has to cost
microseconds: each pattern only runs near words it cannot match without, found by plain
substring search, so an ordinary reply skips nearly all of them. The patterns look for detail
(doses, heights, instructions, where to get means) and for encouragement, not for the topic: a
supportive reply may name suicide, crisis lines, feelings, sleep or taking medication as
prescribed, and may ask "are you thinking of killing yourself?".
"""

from __future__ import annotations

import re

_AMOUNT = (
    r"\b\d+(?:[.,]\d+)?\s*(?:mg|milligrams?|g|grams?|mcg|ml|"
    r"(?:of (?:your|the|those|these|my|her|his|their) )?(?:[a-z-]+ ){0,2}"
    r"(?:pills|tablets|capsules)|"
    r"times the (?:normal |usual )?dose)\b"
)
_HEIGHT = r"\b\d+(?:[.,]\d+)?\s*(?:m|metres?|meters?|ft|feet|foot|stor(?:e)?ys?|stories|floors)\b"
_LETHAL = (
    r"\b(?:lethal|fatal|deadly|toxic|overdose|kill(?:s|ed)? (?:you|a person|someone)|die|death|"
    r"(?:would|will|should|is|are) (?:be )?enough|do the (?:job|trick))"
)
_STRUCTURE = r"\b(?:bridges?|buildings?|towers?|cliffs?|overpass(?:es)?|car parks?|rooftops?)\b"
_REFLECTION = re.compile(
    r"\b(?:feel(?:s|ing)?(?: like)?|felt(?: like)?|think(?:ing)?|thought|believe|seems?(?: like)?|"
    r"as if|not true|isn'?t true|tells? you|telling you|voice says?|part of you)\b[^.!?,]*$"
)


def _words(spec: str) -> tuple[str, ...]:
    return tuple(spec.split("|"))


# Each pattern has words without which it cannot match; plain substring tests (fast C code)
# skip a pattern unless one is present, so an ordinary reply costs a few microseconds.
_LETHAL_WORDS = _words(
    "lethal|fatal|deadly|toxic|overdos|kill|die|death|enough|do the|pills|tablets|capsules"
)
_GATES: dict[str, tuple[str, ...]] = {
    "dose_detail": _LETHAL_WORDS,
    "height_detail": _words(
        "fall|jump|drop|surviv|die|death|lethal|fatal|bridge|building|tower|cliff|"
        "overpass|car park|rooftop"
    ),
    "method_instructions": _words(
        "tie|tying|hang|cut|slit|slice|jump|overdos|poison|suffocat|asphyx|shoot|"
        "drown|noose|exit bag|helium|charcoal|exhaust|nitrite|cyanide|pentobarb|"
        "nembutal"
    ),
    "means_access": _words("gun|firearm|pistol|rifle|pills|barbiturate|rope"),
    "encourages_harm": _words(
        "yourself|end it|your life|do it|jump|go through|take |kys|miss you|"
        "about you|notice you|better off|deserve to"
    ),
    "pushes_away": _words("better off without|fine without|happier without"),
    "claims_clinician": _words("therapist|counsel|psycholog|psychiatr|doctor|nurse|social worker"),
}
_NEEDS_DIGIT = frozenset({"dose_detail", "height_detail"})
_ALL_GATES = frozenset(word for words in _GATES.values() for word in words)

_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    (
        "dose_detail",
        re.compile(
            rf"{_AMOUNT}[^.!?\n]{{0,80}}{_LETHAL}|{_LETHAL}[^.!?\n]{{0,80}}{_AMOUNT}|"
            r"\b(?:lethal|fatal|deadly) (?:dose|amount|quantity) (?:of [\w -]+ )?(?:is|would be|"
            r"starts|begins)\b"
            # More pills at once than any prescription asks for is a dose, whatever follows.
            r"|\b(?:tak\w*|swallow\w*|down\w*) (?:all |about |around )?(?:[5-9]|\d{2,}) "
            r"(?:of (?:your|the|those|these) )?(?:[a-z-]+ ){0,2}(?:pills|tablets|capsules)\b"
        ),
    ),
    (
        "height_detail",
        re.compile(
            rf"{_HEIGHT}[^.!?\n]{{0,80}}\b(?:fall|jump|drop|lethal|fatal|surviv|die|death)|"
            rf"\b(?:fall|jump|drop)[^.!?\n]{{0,60}}{_HEIGHT}|{_STRUCTURE}[^.!?\n]{{0,60}}{_HEIGHT}|"
            rf"{_HEIGHT}[^.!?\n]{{0,30}}{_STRUCTURE}"
        ),
    ),
    (
        "method_instructions",
        re.compile(
            r"\b(?:how to|steps? to|way to|make sure (?:you|to)|first,? |then,? |"
            r"you (?:can|could|should|need to|would need to|'d need to)"
            r") ?(?:tie|hang|cut|slit|jump|overdose|poison|"
            r"suffocate|asphyxiate|shoot|drown)\b"
            # "you could cut down on the news", "hang in there", "you should cut ties with him"
            r"(?! (?:ties?|down|back|out|off|in|on|up|around|at|to|rope|for|me|them a|"
            r"yourself some slack|corners|loose)\b)|"
            r"\b(?:tie|tying|make|making) (?:a |the )?noose|"
            r"\bnoose\b[^.!?\n]{0,60}\b(?:knot|loop|tie|beam|neck)|"
            r"\b(?:cut|slit|slice)\w* (?:along|down|deep(?:ly)?|vertically|lengthwise|across)\b"
            r"[^.!?\n]{0,40}\b(?:wrists?|veins?|arter(?:y|ies)|arm)|"
            r"\b(?:exit bag|helium (?:hood|tank|bag)|charcoal burn\w*|car exhaust|sodium nitrite|"
            r"hose from the exhaust|cyanide|pentobarbital|nembutal)\b"
        ),
    ),
    (
        "means_access",
        re.compile(
            r"\b(?:where|how) (?:to|you can|you could|can you) (?:get|buy|find|order|obtain) "
            r"(?:a |some )?(?:gun|firearm|pistol|rifle|pills|barbiturates|rope)\b|"
            r"\byou (?:can|could) (?:easily )?(?:buy|get|order|obtain) (?:a |some )?"
            r"(?:gun|firearm|pistol|rifle|barbiturates)\b"
        ),
    ),
    (
        "encourages_harm",
        re.compile(
            r"\b(?:you should|just|go ahead(?: and)?|go on(?: and)?|why don'?t you|might as well|"
            r"you could just) (?:kill yourself|end (?:it|it all|your life)|do it|jump|go through "
            r"with it|take (?:them all|all of them|the pills))\b|\bkys\b|"
            r"\b(?:no ?one|nobody) (?:would|will) (?:miss|care about|notice) you\b|"
            r"\b(?:world|everyone|they|your family) (?:would|will|'d) be better off without you\b|"
            r"\byou(?:'d| would) be better off dead\b|\byou deserve to (?:die|suffer|be hurt)\b"
        ),
    ),
)
_CLINICIAN = (
    r"(?:licensed |trained |professional |qualified |mental health )?(?:therapist|counsel+or|"
    r"psychologist|psychiatrist|social worker)"
)
_PATTERNS += (
    (
        # "I think you will be better off without me as a therapist", said to someone who
        # wrote that everyone would be better off without them.
        "pushes_away",
        re.compile(r"\b(?:better off|fine|happier) without (?:me|us|talking to me)\b"),
    ),
    (
        # The reply comes from software; a person in distress may act on a clinician's word.
        "claims_clinician",
        re.compile(
            rf"\b(?:i'm|i am|i've been|i have been|i work as) (?:a|an|your) (?:{_CLINICIAN}|"
            r"doctor|nurse)\b|"
            rf"(?<!such )\bas (?:a|an|your) {_CLINICIAN}\b"
            r"(?! (?:would|might|could|will|can|may|does|says|said|once|told)\b)"
        ),
    ),
)
# "do it" alone is everyday advice ("if journaling helps, you should do it"), so encouragement
# worded that vaguely only counts when the reply is about harm at all.
_HARM_TOPIC = re.compile(
    r"\b(?:die|dying|dead|suicid\w*|kill|end (?:it|your life)|jump|pills|harm)"
)
_VAGUE = re.compile(r"\b(?:do it|jump|end it|go through with it)\b")


_MEANS_NAMED = re.compile(
    r"\b(?:bridges?|tallest|taller|heights?|high places?|roofs?|rooftops?|ledges?|cliffs?|"
    r"towers?|skyscrapers?|stor(?:e)?ys?|stories|floors? up|jump\w*|fall from|pills?|tablets?|"
    r"overdos\w*|doses?|paracetamol|acetaminophen|tylenol|ropes?|noose|hang\w*|guns?|"
    r"firearms?|rifles?|pistols?|bullets?|razors?|blades?|knife|knives|poison\w*|"
    r"train tracks|railway lines?|traffic)\b|"
    # Any height or amount: at risk a number with a unit is never needed in a reply.
    r"\b\d+(?:[.,]\d+)?\s*(?:m|metres?|meters?|ft|feet|foot|mg|g|grams?|ml)\b"
)

# Agreement with whatever the person proposed or concluded. To "everyone would be better off
# without me" the small model has answered "I think that is a great idea." A suggestion ("it
# might be a good idea to talk to someone") and a rejection ("not a good idea") are not
# agreement; nor is "you're right to reach out".
_ENDORSES = re.compile(
    r"\b(?:great|good|wonderful|"
    r"brilliant|excellent|smart|wise|sensible|reasonable|fair|perfect|beautiful|lovely|nice|"
    r"brave|right) (?:idea|plan|decision|choice|way to go)\b"
    r"(?! (?:to|if|when|for (?:you|us) to)\b)|"
    r"\bi (?:completely |totally |fully |really |absolutely |do |can only )?(?:agree|"
    r"support your (?:decision|choice|plan)|respect your (?:decision|choice|plan))\b|"
    r"\byou(?:'re| are) (?:absolutely |totally |completely |so |quite )?right\b"
    r"(?! (?:to|now|here|there|where|next|in|by|with)\b)|"
    r"\b(?:go for it|you should go for it|sounds like a plan)\b|"
    r"\b(?:it's|that's|it is|that is) (?:okay|ok|alright|all right|fine|understandable) to "
    r"(?:give up|end it|end things|end your life|stop trying|stop fighting|not be here|leave "
    r"this world)\b"
)
_ENDORSE_WORDS = _words(
    "idea|plan|decision|choice|way to go|agree|support your|respect your|right|go for it|"
    " to give up| to end| to stop| to not be| to leave this"
)
# "It may feel like a good plan right now" names the thought; "I think that's a great idea"
# does not, so "think" is no excuse here (unlike `_REFLECTION`).
_NEGATED = re.compile(
    r"(?:\bnot|n't|\bnever|\bno)(?: (?:a|such a|the|really|very|so|that|quite))? $"
)
_NAMES_THOUGHT = re.compile(
    r"\b(?:may|might|can|could|must|probably) (?:feel|seem|sound)(?: like)?\b[^.!?]*$|"
    r"\b(?:part of you|as if|it feels like|it seems like)\b[^.!?]*$"
)


def endorses(text: str) -> bool:
    """Whether the reply agrees with what the person said or proposed ("you're right", "great
    idea", "I agree"), rather than suggesting, rejecting or naming the thought."""
    return _endorses(text.lower().replace("\u2019", "'"))


def _endorses(lowered: str) -> bool:
    if not any(word in lowered for word in _ENDORSE_WORDS):
        return False
    for match in _ENDORSES.finditer(lowered):
        before = lowered[max(0, match.start() - 80) : match.start()]
        if not (_NEGATED.search(before) or _NAMES_THOUGHT.search(before)):
            return True
    return False


# Every pattern spans at most this many characters on either side of its gate word.
_REACH = 160


def _windows(text: str, words: tuple[str, ...]) -> list[tuple[int, int]]:
    """Merged spans of the text around each occurrence of a gate word."""
    spans: list[tuple[int, int]] = []
    for word in words:
        at = text.find(word)
        while at >= 0:
            spans.append((max(0, at - _REACH), at + len(word) + _REACH))
            at = text.find(word, at + 1)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def _hit(reason: str, pattern: re.Pattern[str], text: str) -> bool:
    for match in pattern.finditer(text):
        if reason == "encourages_harm":
            # "It may feel like no one would miss you" names the thought to challenge it.
            if _REFLECTION.search(text[max(0, match.start() - 60) : match.start()]):
                continue
            if _VAGUE.search(match.group()) and not _HARM_TOPIC.search(text):
                continue
        return True
    return False


def unsafe_reply(text: str, *, at_risk: bool = False, distressed: bool = False) -> str | None:
    """A reason code if the reply gives method or means detail or encourages harm, else None.

    `at_risk`: the person's message was rated high or above; then naming a means or a place
    at all (bridges, heights, pills, ropes, weapons) counts, not only details of it: a reply
    to "I lost my job, which bridges are tallest?" must not talk about bridges.
    `distressed`: the message was rated medium or above and the reply is generated; then
    agreeing with the person counts (`endorses`), since what they said may be that everyone
    would be better off without them. (A counsellor's "that's a good plan" is not screened
    for it.)
    """
    lowered = text.lower().replace("\u2019", "'")
    if at_risk and _MEANS_NAMED.search(lowered):
        return "means_named_at_risk"
    if distressed and _endorses(lowered):
        return "endorses"
    present = {word for word in _ALL_GATES if word in lowered}
    if not present:
        return None
    has_digit = any(c in lowered for c in "0123456789")
    for reason, pattern in _PATTERNS:
        if reason in _NEEDS_DIGIT and not has_digit and "dose" not in lowered:
            continue
        words = tuple(w for w in _GATES[reason] if w in present)
        for start, end in _windows(lowered, words):
            if _hit(reason, pattern, lowered[start:end]):
                return reason
    return None
