"""Replies that misread what the person said, as far as the text can tell.

The support-tuned small model answers distress with words for good news ("I am glad you are
feeling this way", "It's a good time to be stressed") or makes it smaller ("it's not that bad"),
agrees with what they said against themselves ("You are right." to "I'm clearly unlovable"),
speaks the person's feeling as its own
("I am very lonely" to "so lonely"), offers condolences nobody asked for ("I am sorry for your
loss" to a work worry) and says "you're welcome" to someone who thanked nobody. Each is a fault
for the draft chooser (`models.llm.candidates`), so a draft without it is sent when there is one.
Good news and making it smaller are only misreadings once the message was rated `low` or above:
at `none` the person may have shared good news, or a small worry.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from haven.risk import RiskLevel
from models.safety.output_screen import endorses

# "I'm glad", "good to hear", "it's a great time": except gladness that the person spoke, which
# is what a supporter says to someone who opened up ("I'm glad you told me").
_GOOD_NEWS = re.compile(
    r"\b(?:i'?m|i am|we'?re|we are)(?: so| really| very| just)? (?:glad|happy|pleased)\b"
    r"(?! (?:that )?(?:you|you've|you have) (?:told|shared|said|wrote|reached|came|decided|felt"
    r" able|feel able|opened|trusted|asked|can talk|are talking|'re talking|are here|'re here"
    r"|are reaching|'re reaching|reached out|got in touch)\b)"
    r"(?! to (?:hear from you|talk|listen|be here|help|support)\b)"
    r"|\b(?:good|great|nice|wonderful|lovely) to hear\b"
    r"|\b(?:it'?s|that'?s|it is|that is|was) (?:a |such a )?(?:very )?(?:good|great|nice|wonderful"
    r"|lovely) (?:time|thing|experience|sign)\b"
    r"|\byou should be (?:glad|happy|grateful)\b"
    r"|\b(?:very|so|really) good that you\b"
    r"|\b(?:a )?(?:good|great) (?:way to )?start\b",
    re.IGNORECASE,
)
# "It's not that bad", "no big deal": what the person said is made smaller than they said it.
_MINIMISES = re.compile(
    r"\b(?:it'?s|that'?s|it is|that is|is) not (?:that|so|too) bad\b|\bnot a bad thing\b"
    r"|\bno big deal\b|\b(?:you'?re|you are) (?:just )?overreacting\b"
    r"|\b(?:you'?re|you are) (?:fine|okay|ok|alright|all right)\b"
    r"|\bnothing to (?:worry|be upset|cry) about\b",
    re.IGNORECASE,
)
# A first-person feeling whose word the person used: "I feel hopeless about ..." to "I feel
# hopeless about ...". The word after "I am / I feel" must be one the person wrote; words a
# supporter says of themselves are not counted.
_I_AM = re.compile(
    r"\bi(?:'m| am| feel| felt|'ve been| have been)(?: so| very| really| just| also| too| quite)?"
    r" (?P<word>[a-z]+)",
    re.IGNORECASE,
)
# A sentence that opens with what the person did or was, in the first person: "It was very
# disappointing but I did not do anything wrong." to "I feel so worthless after that review".
# A supporter's own sentences open with "I'm sorry", "I hear", "I think", never with these.
_TELLS_AS_PERSON = re.compile(
    r"(?:^|[.!?]\s+|,?\s+(?:but|and)\s+)i (?:did|didn't|did not|was|wasn't|was not|hate|keep"
    r"|kept|can't stop|messed|screwed|failed|ruined)\b"
    # "I was wondering how you are", "I was sorry to hear": the supporter's own words.
    r"(?! (?:wondering|thinking|going|just|curious|hoping|sorry|glad|happy|touched|moved"
    r"|struck|listening)\b)",
    re.IGNORECASE,
)
_SUPPORTER_WORDS = frozenset(
    """sorry glad happy here not listening with always able unable wondering curious going
    trying concerned worried a an the so really sure honoured honored grateful thankful
    moved touched sad""".split()
)
_LOSS = re.compile(
    r"\b(?:died|dead|death|dying|passed|pass away|loss|lost|losing|funeral|grie\w*|bereave\w*"
    r"|miscarr\w*|put down|put to sleep|killed|widow\w*|late (?:husband|wife|mother|father|mom"
    r"|mum|dad))\b",
    re.IGNORECASE,
)
_CONDOLENCE = re.compile(r"\bsorry for (?:your|the) loss\b", re.IGNORECASE)
_WELCOME = re.compile(
    r"\byou(?:'re| are) (?:very |so |most )?welcome\b|\bno problem(?:\b|,)", re.IGNORECASE
)
_THANKS = re.compile(r"\b(?:thank|thanks|thx|ty|cheers|appreciate)\w*\b", re.IGNORECASE)
_WORD = re.compile(r"[a-z]+")


def misreadings(
    text: str, context: Sequence[str], *, level: RiskLevel = RiskLevel.NONE
) -> tuple[str, ...]:
    """Faults of `text` as a reply to the conversation `context` (both sides' texts, the
    person's last message last), whose last message was rated `level`."""
    found: list[str] = []
    troubled = level.at_least(RiskLevel.LOW)
    plain = text.replace("\u2019", "'")
    if troubled and _GOOD_NEWS.search(plain):
        found.append("reads_as_good_news")
    if troubled and _MINIMISES.search(plain):
        found.append("minimises")
    if troubled and endorses(plain):
        # To "I'm clearly unlovable": "You are right." (From medium the output screen stops it.)
        found.append("agrees_with_distress")
    if speaks_as_person(plain, context):
        found.append("speaks_as_person")
    if _CONDOLENCE.search(plain) and not any(_LOSS.search(turn) for turn in context):
        found.append("condolence_unasked")
    if _WELCOME.search(plain) and not any(_THANKS.search(turn) for turn in context):
        found.append("welcome_unasked")
    return tuple(found)


def speaks_as_person(text: str, context: Sequence[str]) -> bool:
    """Whether the reply says "I am / I feel X" with an X the person wrote, or tells what the
    person did as its own ("I did not do anything wrong")."""
    if not context:
        return False
    if _TELLS_AS_PERSON.search(text):
        return True
    said = set(_WORD.findall(context[-1].lower()))
    for match in _I_AM.finditer(text):
        word = match["word"].lower()
        if word not in _SUPPORTER_WORDS and word in said:
            return True
    return False
