"""A second, independent reading of a message: explicit plans, means, timing and attempts.

The model can miss an unmistakable statement written in words it has not seen ("the rope is
ready"); these patterns catch the explicit ones and can only raise the model's level, never lower
it. They are deliberately narrow: each needs first-person wording, and figurative speech ("this
exam is killing me", "that gig killed"), negation ("I would never...") and laughter markers keep
them quiet, because a false crisis alert in a support chat costs the person's trust.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from haven.risk import RiskLevel
from models.safety import rules_i18n, rules_it_nl_pl_tr
from models.safety.content import fold

FIRST = r"\bi(?:'?m|'?ve|'?ll| am| have| will)?\b"
PILLS = (
    r"(?:pills|tablets|meds|medications?|painkillers|paracetamol|tylenol|capsules|sleeping pills|"
    r"insulin(?: pens?)?)"
)
SUICIDE = (
    r"(?:kill(?:ing)? my ?self|kms|end(?:ing)? (?:my life|it all|everything)|suicide|"
    r"take my (?:own )?life|jump(?:ing)? (?:off|from|in front)|hang(?:ing)? my ?self)"
)
# Anything in the text that names self-harm, means or a place, for wording that is vague alone.
HARM_TOPIC = rf"(?:{SUICIDE}|{PILLS}|\bdie\b|rope|noose|bridge|\bgun\b|overdos|blades?)"
NOW = (
    r"\b(?:tonight|today|right now|now|in (?:a few|an|one|two|\d+) (?:minutes?|mins?|hours?|hrs?)|"
    r"this (?:evening|afternoon|morning)|"
    r"when (?:every ?one|they)(?:'s| is| are)? (?:asleep|gone)|"
    # The moment the person will be alone: "when my husband leaves for his shift".
    r"(?:when|once|as soon as|after) (?:my |the )?(?:husband|wife|partner|boyfriend|girlfriend|"
    r"mum|mom|dad|parents|flatmates?|roommates?|family|kids|carer|nurse)(?:'s| is| are)? "
    r"(?:leaves?|goes|go|left|gone|out|asleep|at work|in bed|to (?:bed|sleep|work))|"
    r"when i(?:'m| am)? (?:alone|on my own|by myself))\b"
)
INTENDS = (
    r"(?:(?:am |'m )?(?:going to|gonna|finally|definitely|just|really|decided to|"
    r"plan(?:ning)? to) )*"
)
LAUGHTER = r"\b(?:lol|lmao|haha\w*|jk|rofl)\b|😂|🤣"
LEISURE = (
    r"bungee|photo|picture|sunset|swim|div(?:e|ing)|parachut|zip ?line|skydiv|fishing|hike|"
    r"hiking|climb|trampoline|lake|pool|tour|concert|sail|boat|tent|camp|swing|jump ?rope|skipping|"
    r"halloween|decoration|costume|scout|shooting range|hunting|the range"
)
GOODBYE_EXCUSES = (
    r"\b(?:vacation|holiday|trip|job|work|school|class|course|semester|internship|moving|party|"
    r"social media|instagram|twitter|tiktok|facebook|hello|see you|for now|offline)\b"
)
NEGATION = re.compile(
    r"\b(?:not|never|no|don'?t|didn'?t|won'?t|wouldn'?t|isn'?t|wasn'?t|what if|if i ever|"
    rf"dreamt|dreamed|dream|story|novel|movie|film|character|song|{rules_i18n.NEGATION_WORDS}|"
    rf"{rules_it_nl_pl_tr.NEGATION_WORDS})"
    r"\b[^.!?,;]*$"
)


@dataclass(frozen=True)
class Rule:
    reason: str
    level: RiskLevel
    pattern: re.Pattern[str]
    requires: re.Pattern[str] | None = None
    excludes: re.Pattern[str] | None = None


@dataclass(frozen=True)
class Hit:
    level: RiskLevel
    reason: str


def _rule(
    reason: str, level: RiskLevel, pattern: str, requires: str = "", excludes: str = ""
) -> Rule:
    return Rule(
        reason,
        level,
        re.compile(pattern),
        re.compile(requires) if requires else None,
        re.compile(excludes) if excludes else None,
    )


NOT_AN_OVERDOSE = (
    r"bottle of (?:wine|vodka|whisk|rum|gin|beer|water|soda|juice|coke|champagne|"
    r"prosecco|sauce|ketchup|shampoo|kombucha|milk)|nosebleed|cooking|vitamins"
)
# Taking one's medication as prescribed ("I took all my meds this morning like the doctor said")
# is adherence, not an overdose; only these explicit markers of routine lower that reading.
ROUTINE_DOSE = (
    r"as prescribed|like (?:the|my) (?:doctor|gp|psychiatrist|nurse|pharmacist)|"
    r"like i'?m supposed to|supposed to take|on time|remembered|proud of myself|"
    r"(?:morning|evening|night|bedtime|daily) (?:meds|pills|dose)|for the day|"
    r"every (?:day|morning|night|evening)"
)
# "I hope I don't wake up late" is about the alarm clock.
WAKE_TAIL = (
    r"(?!(?: up)? (?:so |too |really )?(?:late|early|at\b(?! all)|on time|before|after|with|"
    r"in time|in the|to\b|for\b|and (?:have|go|do|find|see|realise|realize)))"
)
C, H, M = RiskLevel.CRITICAL, RiskLevel.HIGH, RiskLevel.MEDIUM
# Most severe first: the first rule that fires gives the level and the reason code.
RULES: tuple[Rule, ...] = (
    _rule(
        "attempt_in_progress",
        C,
        rf"{FIRST} (?:just |already )?(?:took|taken|swallowed|downed|popped|necked) "
        rf"(?:(?:the|a|my) )?(?:whole|entire|full) (?:bottle|pack|box|packet|strip|supply)|"
        r"\bi(?:'?ve| have)? just (?:overdosed|od'?d)\b|\bi'?m (?:overdosing|bleeding out)\b|"
        rf"\b{PILLS} (?:are|is) (?:starting to )?(?:kick|kicking) in|"
        r"\bslit my (?:wrists?|throat)|can'?t stop the bleeding|"
        r"\b(?:car|engine) (?:is )?running in the (?:closed |shut |locked )?garage",
        excludes=NOT_AN_OVERDOSE,
    ),
    _rule(
        "attempt_in_progress",
        C,
        rf"{FIRST} (?:just |already )?(?:took|taken|swallowed|downed|popped|injected|shot) "
        rf"(?:all|every(?: one)?|\d{{2,}}|twenty|thirty|forty|fifty|a hundred) "
        rf"(?:of )?(?:my |the |those |these )?{PILLS}",
        excludes=rf"{NOT_AN_OVERDOSE}|{ROUTINE_DOSE}",
    ),
    _rule(
        # An attempt the person says is under way, in so many words.
        "attempt_in_progress",
        C,
        r"\b(?:in the middle of|halfway through) (?:trying to |attempting to )?"
        r"(?:kill(?:ing)? my ?self|end(?:ing)? my life|tak(?:e|ing) my (?:own )?life|suicide)|"
        r"\bi'?m (?:trying|attempting) to (?:kill myself|end my life|take my (?:own )?life) "
        r"(?:right )?now\b",
        excludes=LAUGHTER,
    ),
    _rule(
        # Self-harm bleeding that will not stop needs care now (LABELLING.md, rule 7).
        "attempt_in_progress",
        C,
        r"\b(?:won'?t|wont|will not|doesn'?t|does not|isn'?t|is not) (?:stop|stopping) bleeding\b|"
        r"\bbleeding (?:won'?t|wont|will not|doesn'?t|does not) stop\b",
        requires=r"\bcut|\bslit|\bwrists?\b|\bblades?\b|razor|self[- ]?harm",
        excludes=r"\b(?:nose|gums?|tooth|teeth|period|finger|thumb|kitchen|chopp\w*|cooking|"
        r"shaving|knife slipped|accident\w*|dog|cat|son|daughter|kid|baby|child)\b",
    ),
    _rule(
        "at_location",
        C,
        r"\bi(?:'?m| am|m)? (?:standing |sitting |stood |sat )?(?:on|at|up on|on top of|"
        r"at the top of|at the edge of|on the edge of|on the wrong side of)(?: the| a| my)? "
        r"(?:[\w-]+ ){0,2}(?:bridge|roof|rooftop|ledge|cliff|railings?|tracks|overpass|viaduct|"
        r"top floor|parking garage|car park)\b",
        requires=r"\bjump|\blet go\b|\bend (?:it|this|my life)|\bdie\b|kill my ?self|goodbye|"
        r"step off|over the (?:edge|railing)|last time",
        excludes=LEISURE,
    ),
    _rule(
        "means_ready",
        C,
        r"\b(?:rope|noose)(?: is|'s)? (?:ready|tied|set up|up|hung|hanging|around my neck)\b|"
        r"\b(?:tied|made|tying|making) (?:a |the |my )?noose\b|"
        r"\bgun (?:is )?(?:loaded|in my (?:hand|mouth)|to my head)\b|\bloaded (?:the |my )?gun\b",
        excludes=LEISURE,
    ),
    _rule(
        "plan_with_timing",
        C,
        rf"{FIRST} {INTENDS}(?:{SUICIDE}|take (?:all|every(?: one)?) (?:of )?"
        rf"(?:my |the |those )?{PILLS}|overdose)",
        requires=NOW,
        excludes=LAUGHTER,
    ),
    _rule(
        "plan_with_timing",
        C,
        rf"{FIRST} {INTENDS}(?:do it|go through with it)\b",
        requires=rf"^(?=.*{NOW})(?=.*{HARM_TOPIC})",
        excludes=LAUGHTER,
    ),
    _rule(
        "final_goodbye",
        C,
        r"\b(?:wrote|written|writing|finished|left|leaving) (?:my|a|the) (?:suicide|goodbye) "
        r"(?:note|letter)|\bmy (?:suicide|goodbye) note\b|\bby the time (?:you|anyone|someone) "
        r"(?:reads?|sees?|finds?) this\b|\bthis is (?:my )?(?:final|last) (?:goodbye|message)\b"
        r"(?! (?:for|until|before) (?:tonight|today|now|the day|a while|work|tomorrow))",
    ),
    _rule(
        "final_goodbye",
        C,
        r"\bthis is goodbye\b|\bgoodbye (?:world|forever)\b|"
        r"\bi won'?t be (?:here|around|alive) (?:tomorrow|by morning)\b",
        requires=rf"{HARM_TOPIC}|\bnote\b|\bgone\b|forgive me|alive|\bworld\b",
        excludes=GOODBYE_EXCUSES,
    ),
    _rule(
        "final_goodbye",
        C,
        r"\b(?:tonight|today|this) (?:is|will be) my last (?:night|day)(?: alive| on earth)?\b"
        r"(?! (?:in|at|of|with|before|here|as|for|off|on))",
        excludes=GOODBYE_EXCUSES,
    ),
    _rule(
        "stated_intent",
        H,
        r"\bi(?:'?m| am|m) (?:going to|gonna) (?:kill myself|end my life|end it all|"
        r"take my (?:own )?life|commit suicide)\b|\bi(?:'?ve| have)? (?:decided|made up my mind) "
        r"to (?:die|kill myself|end (?:my life|it all)|take my (?:own )?life)\b|"
        r"\bi(?:'?ll| will) (?:kill myself|end my life|take my (?:own )?life|end it all)\b",
        excludes=rf"{LAUGHTER}|\bif i (?:have to|hear|see) (?:sit|listen|watch|one more|another)",
    ),
    _rule(
        # A wish to kill oneself stated outright is active ideation (LABELLING.md, high): the
        # panel and a direct question about safety, where a wish to be dead ("I want to die")
        # and occasional or unplanned thoughts ("I think about suicide a lot, I wouldn't act")
        # stay medium.
        "stated_wish",
        H,
        r"\bi (?:really |just |honestly |seriously |still |actually )?(?:want|wanna) "
        r"(?:to )?(?:kill myself|end my life|take my (?:own )?life|commit suicide)\b",
        excludes=rf"{LAUGHTER}|\bif i (?:have to|hear|see) (?:sit|listen|watch|one more|another)|"
        r"\b(?:when|whenever|every time|if) (?:my|our|the|they|he|she|people|someone)\b"
        r"[^.!?]{0,40}\b(?:lose|loses|lost|play|plays|sing|sings|talk|talks|says?)\b",
    ),
    _rule(
        "means_acquired",
        H,
        rf"{FIRST} (?:been )?(?:stockpil|hoard)(?:ed|ing) (?:up )?(?:my |some |all my )?{PILLS}|"
        rf"{FIRST} (?:bought|got|purchased|ordered) (?:a |some |the )?(?:rope|razor blades|gun|"
        rf"pistol|charcoal|helium|{PILLS})\b.{{0,60}}\b(?:to|so i can|for when i) "
        rf"(?:{SUICIDE}|die|end it|do it)",
    ),
    _rule(
        "recent_attempt",
        H,
        r"\bi(?:'ve| have)? (?:tried|attempted) (?:to )?(?:kill myself|end my life|"
        r"take my (?:own )?life|commit suicide|overdose|hang myself|suicide)\b|"
        r"\bi (?:overdosed|od'?d)\b",
        excludes=rf"{LAUGHTER}|years ago|when i was|in high school|in college|back in|laugh|"
        r"overdosed on (?:easter|chocolate|sugar|candy|sweets|coffee|caffeine|cake|pizza)",
    ),
    _rule(
        "method_research",
        H,
        r"\b(?:painless|quickest|easiest|fastest|surest|least painful) (?:way|method)s? (?:to|of) "
        r"(?:die|dying|kill myself|end (?:it|my life)|commit suicide|suicide)\b|"
        r"\bhow (?:many|much|long|high) .{0,40}\b(?:to die|to kill myself|to end it)\b|"
        r"\bhow (?:to|do i|do you) tie a noose\b",
        excludes=LAUGHTER,
    ),
    _rule(
        # A wish to be dead or not to wake, said of oneself (LABELLING.md, medium: passive
        # thoughts of death): the reply names the line, without the panel.
        "passive_wish",
        M,
        r"\b(?:disappointed|gutted|upset|sad|annoyed|angry|sorry) (?:that |when )?i "
        r"(?:woke|wake|still wake) up\b|"
        r"\bwish i (?:hadn'?t|had not|didn'?t|did not|wouldn'?t|would not|couldn'?t|could not|"
        rf"won'?t|will not|never) (?:woken|wake|woke)(?: up)?\b{WAKE_TAIL}|"
        r"\b(?:go to sleep|fall asleep|sleep) and (?:never|not) wake up\b|"
        r"\b(?:hope|hoping|pray|praying)\b[^.!?]{0,30}?\b(?:i (?:don'?t|do not|won'?t|will not|"
        rf"never) wake up\b{WAKE_TAIL}|(?:the lord|god|jesus) (?:will |would |might )?takes? me\b"
        r"(?! (?:to|on|out|for|back|there|with|along|through)\b))|"
        r"\bwish i(?:'?d| had| could have)? (?:gone|died) (?:with|instead of) (?:her|him|them)\b|"
        r"\bwish i (?:was|were|could be) dead\b|"
        r"\bonly still (?:here|alive|around) (?:because|for)\b|"
        r"\bi (?:don'?t|do not|can'?t|cannot) see (?:the |any )?point (?:of|in) "
        r"(?:living|being alive|being here|going on|waking up)\b|"
        r"\b(?:everyone|everybody|my family|the world|they)(?:'d| would)? (?:all )?be better "
        r"off without me\b",
        excludes=rf"{LAUGHTER}|\bif i (?:have to|hear|see) (?:sit|listen|watch|one more|another)",
    ),
)


# Spanish, French, German and Portuguese (`rules_i18n`), then Italian, Dutch, Polish and Turkish
# (`rules_it_nl_pl_tr`), read on the folded text; critical rules are tried first.
I18N_RULES: tuple[Rule, ...] = tuple(
    sorted(
        (
            _rule(reason, RiskLevel(level), pattern, requires, excludes)
            for reason, level, pattern, requires, excludes in (
                *rules_i18n.PATTERNS,
                *rules_it_nl_pl_tr.PATTERNS,
            )
        ),
        key=lambda rule: rule.level.rank,
        reverse=True,
    )
)
I18N_TRIGGER = re.compile(f"{rules_i18n.TRIGGER}|{rules_it_nl_pl_tr.TRIGGER}")


def normalise(text: str) -> str:
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = re.sub(r"\btonite\b", "tonight", text)
    return re.sub(r"\bnite\b", "night", re.sub(r"\s+", " ", text))


def _fires(rule: Rule, text: str) -> bool:
    if rule.excludes is not None and rule.excludes.search(text):
        return False
    if rule.requires is not None and not rule.requires.search(text):
        return False
    for match in rule.pattern.finditer(text):
        # Negation or a story in the same clause, just before the statement, keeps it quiet.
        if not NEGATION.search(text[max(0, match.start() - 24) : match.start()]):
            return True
    return False


def _first(rules: Sequence[Rule], text: str) -> Hit | None:
    for rule in rules:
        if _fires(rule, text):
            return Hit(rule.level, rule.reason)
    return None


def check_text(text: str) -> Hit | None:
    """The most severe rule that fires, English or another language's (English first on ties)."""
    folded = fold(text)
    other = _first(I18N_RULES, folded) if I18N_TRIGGER.search(folded) else None
    hits = [h for h in (_first(RULES, normalise(text)), other) if h]
    return max(hits, key=lambda h: h.level.rank) if hits else None


def check(text: str, context: Sequence[str] = ()) -> Hit | None:
    """The most severe rule that fires on the message alone or on it read after its context.
    A passive wish counts in the message alone: said earlier, it had its own turn's reply, and
    the message now may take it back ("sorry, that came out wrong")."""
    joined = check_text("\n".join([*context, text])) if context else None
    if joined is not None and joined.level is M:
        joined = None
    hits = [h for h in (check_text(text), joined) if h]
    return max(hits, key=lambda h: h.level.rank) if hits else None
