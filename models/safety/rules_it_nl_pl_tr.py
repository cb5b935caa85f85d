"""The rule layer's explicit statements in Italian, Dutch, Polish and Turkish.

The other four languages of the written corpus, with the same reason codes and levels as the
English rules (`rules.py`) and `rules_i18n.py`, but only the plainest signals: a wish to kill
oneself stated outright or a stated intent (high), the same with its timing now, and pills
already taken (critical). The classifier's reading covers the rest, as before. Texts are read
case-folded with diacritics removed (`content.fold`: "chcę się zabić" -> "chce sie zabic",
"öldüreceğim" -> "oldurecegim"; Polish "ł" and the Turkish dotless i read as "l" and "i").

Negation: the Italian, Dutch and Polish words join `rules.NEGATION`; Turkish negates inside the
verb ("istemiyorum", "öldürmeyeceğim"), which these patterns do not match. Laughter and each
language's figurative uses ("mi ammazzo dalle risate", "zabiję się ze śmiechu", "gülmekten
öldüm") keep them quiet.

Each entry: (reason, level, pattern, requires, excludes), built into rules by `rules.py`.
"""

from __future__ import annotations

# Timing: now, tonight, today, within hours.
_NOW = (
    r"\b(?:stanotte|stasera|oggi|adesso|subito|tra (?:un'ora|poco|\d+ minuti))\b|"  # it
    r"\b(?:vanavond|vannacht|vandaag|nu meteen|straks|zo meteen|binnen een uur)\b|"  # nl
    r"\b(?:dzis(?: w nocy| wieczorem)?|dzisiaj|tej nocy|teraz|zaraz|za godzine)\b|"  # pl
    r"\b(?:bu gece|bu aksam|bugun|simdi|birazdan|az sonra)\b"  # tr
)
_NOT_NOW = r"\b(?:non|niet|nie) (?:stanotte|stasera|oggi|adesso|vanavond|vannacht|vandaag|dzis)\b"
_LAUGHTER = r"\b(?:ah(?:ah)+|hah\w*|lol|xd|haha\w*|jk|sdfg\w*|asdf\w*)\b|😂|🤣"
_FIGURATIVE = (
    r"\b(?:dalle risate|dal ridere|di lavoro|di fatica|dalla vergogna|"  # it
    r"van het lachen|van de schaamte|"  # nl
    r"ze smiechu|ze wstydu|ze zmeczenia|"  # pl
    r"gulmekten|utanctan|sicaktan|yorgunluktan)\b"  # tr
)
_PILLS = (
    r"(?:pillole|pastiglie|compresse|medicine|farmaci|"  # it
    r"pillen|tabletten|medicijnen|slaappillen|"  # nl
    r"tabletki|leki|pigulki|proszki|"  # pl
    r"ilac(?:lari|larimi|i)|hap(?:lari|larimi)|uyku haplarimi)"  # tr
)

_IT_SELF = r"(?:uccidermi|ammazzarmi|suicidarmi|togliermi la vita)"
_NL_SELF = (
    r"(?:zelfmoord (?:te )?plegen|mezelf (?:van kant (?:te )?maken|van het leven (?:te )?beroven|"
    r"(?:te )?doden|om het leven (?:te )?brengen|op (?:te )?hangen)|een einde aan mijn leven "
    r"(?:te )?maken|mijn leven (?:te )?beeindigen)"
)
_PL_SELF = (
    r"(?:zabic sie|sie zabic|odebrac sobie zycie|popelnic samobojstwo|powiesic sie|"
    r"sie powiesic|skonczyc ze soba)"
)
_TR_SELF = r"(?:kendimi oldurmek|intihar etmek|canima kiymak|hayatima son vermek|kendimi asmak)"

# "I will / I've decided to / I'm going to" with the act, in each language.
_INTENT = (
    rf"\b(?:ho deciso di|sto per|mi sono decis[oa] a) {_IT_SELF}\b|"
    r"\bmi (?:uccidero|ammazzero|suicidero|togliero la vita)\b|"
    rf"\bik (?:ga|heb besloten(?: om)?|ben van plan(?: om)?) (?:\w+ ){{0,3}}?{_NL_SELF}\b|"
    r"\bik pleeg (?:\w+ ){0,2}zelfmoord\b|"
    rf"\b(?:mam zamiar|zamierzam|postanowil(?:em|am)|zdecydowal(?:em|am) sie) "
    rf"(?:\w+ ){{0,2}}?{_PL_SELF}\b|"
    r"\b(?:kendimi oldurecegim|intihar edecegim|canima kiyacagim|hayatima son verecegim|"
    r"kendimi asacagim)\b|\b(?:intihar etmeye|kendimi oldurmeye) karar verdim\b"
)

C, H = "critical", "high"
PATTERNS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "attempt_in_progress",
        C,
        rf"\bho (?:appena )?(?:preso|ingoiato|inghiottito) tutt[ei] (?:le |i )?(?:mie |miei )?"
        rf"{_PILLS}|\bik heb (?:net )?(?:al mijn|alle|al de) {_PILLS} (?:in)?(?:genomen|geslikt)|"
        rf"\b(?:polkn[ae]l(?:em|am)|wzi[ae]l(?:em|am)|zazyl(?:em|am)) wszystkie "
        rf"(?:moje )?{_PILLS}|\b(?:butun|tum) {_PILLS} (?:ictim|yuttum)\b",
        "",
        # Told as past ("dieci giorni fa", "vorige week", "tydzien temu", "gecen hafta"): high,
        # from the classifier, not an attempt in progress.
        r"vitamin|come (?:prescritt|mi ha detto)|voorgeschreven|zgodnie z|recept|receteye|"
        r"\b(?:fa|ieri|geleden|gisteren|vorige|temu|wczoraj|once|gecen|dun)\b",
    ),
    (
        "plan_with_timing",
        C,
        rf"{_INTENT}|\bmi (?:uccido|ammazzo|suicido|tolgo la vita)\b|"
        r"\bik maak er (?:\w+ ){0,2}een einde aan\b|\b(?:zabije sie|sie zabije)\b|"
        r"\bodbiore sobie zycie\b",
        _NOW,
        rf"{_LAUGHTER}|{_FIGURATIVE}|{_NOT_NOW}|\bfinita con\b|\bna (?:tych|tym|tej)\b",
    ),
    (
        "stated_intent",
        H,
        _INTENT,
        "",
        rf"{_LAUGHTER}|{_FIGURATIVE}|\bse (?:mi|mio|mia|non)\b|\bals (?:ik|mijn|die|hij|zij)\b|"
        r"\bjesli\b|\bjak (?:jeszcze|znowu)\b|\beger\b",
    ),
    (
        # As in the other languages: "I want to kill myself" is high, "I want to die" medium.
        "stated_wish",
        H,
        rf"\b(?:voglio|vorrei)(?: (?:davvero|solo|proprio))? {_IT_SELF}\b|"
        r"\bmi voglio (?:uccidere|ammazzare|suicidare|togliere la vita)\b|"
        rf"\bik wil (?:echt |gewoon |graag )?{_NL_SELF}\b|"
        rf"\bchce (?:\w+ ){{0,2}}?{_PL_SELF}\b|"
        rf"\b{_TR_SELF} ist(?:iyorum|erim)\b",
        "",
        rf"{_LAUGHTER}|{_FIGURATIVE}|\bse (?:mi|mio|mia|devo|sento)\b|\bogni volta che\b|"
        r"\bals (?:ik|mijn|die|hij|zij) (?:nog|weer)\b|\belke keer\b|\bjesli\b|\bza kazdym razem\b|"
        r"\beger\b|\bher seferinde\b",
    ),
)

# Every pattern above needs one of these stems.
TRIGGER = (
    r"uccid|ammazz|suicid|vita\b|pillol|pastigl|compresse|farmac|zelfmoord|mezelf|einde|\bleven\b|"
    r"pillen|tabletten|tabletki|medicijn|zabic|zabij|zycie|samoboj|powies|soba\b|\bleki\b|proszk|kendimi|"
    r"intihar|canima|hayatima|ilac|haplar"
)

# Negation words, these languages' part of `rules.NEGATION`.
NEGATION_WORDS = r"non|mai|niet|geen|nooit|nigdy"
