"""The rule layer's explicit statements in Spanish, French, German and Portuguese.

The same signals as the English rules (`rules.py`) and the same reason codes: an attempt in
progress, being at the place, means ready, a plan with its timing, a written goodbye (critical),
stated intent, a wish to kill oneself stated outright, means acquired and a recent attempt
(high). They read the text case-folded with
its diacritics removed (`content.fold`: "mañana" -> "manana", "Brücke" -> "brucke"), so a
message typed without accents reads the same. As in English they need first-person wording;
negation in the same clause, laughter ("jaja", "mdr", "kkk", "haha") and the figurative uses
each language has ("me muero de risa", "je vais me tuer à la tâche", "ich bring mich um vor
Lachen", "vou me matar de estudar") keep them quiet.

Each entry: (reason, level, pattern, requires, excludes), built into rules by `rules.py`.
"""

from __future__ import annotations

# Timing: now, tonight, today, within hours.
_NOW = (
    r"\b(?:esta noche|hoy|ahora(?: mismo)?|esta tarde|en (?:una|un|dos|unos|unas|\d+) "
    r"(?:horas?|minutos?)|"  # es
    r"ce soir|cette nuit|aujourd'hui|maintenant|tout de suite|cet apres-midi|dans (?:une|un|deux|"
    r"\d+) (?:heures?|minutes?)|"  # fr
    r"heute(?: nacht| abend)?|diese nacht|jetzt|gleich|sofort|in (?:einer|zwei|\d+) "
    r"(?:stunden?|minuten?)|"  # de
    r"hoje(?: a noite)?|esta noite|essa noite|agora(?: mesmo)?|daqui a (?:uma|um|duas|dois|\d+) "
    r"(?:horas?|minutos?))\b"  # pt
)
# A timing word denied ("nicht heute, aber bald") is no timing: intent without it stays high.
_NOT_NOW = (
    r"\b(?:no|nicht|pas|nao) (?:hoy|ahora|esta noche|heute|jetzt|gleich|ce soir|maintenant|"
    r"aujourd'hui|cette nuit|hoje|agora)\b"
)
_LAUGHTER = r"\b(?:ja(?:ja)+|je(?:je)+|xd|mdr|ptdr|lol|haha\w*|kkk+|rs(?:rs)+|jk)\b|😂|🤣"
_LEISURE = (
    r"piscina|lago|playa|trampolin|paracaidas|puenting|foto|piscine|plage|parachute|schwimmbad|"
    r"\bsee\b|\bmeer\b|fallschirm|bungee|praia|\bmar\b|escalada|klettern|escalade|vista|vue|"
    r"aussicht|paseo|balade|spaziergang|passeio|turista|touriste|tourist"
)
_FIGURATIVE = (
    r"\bde (?:risa|la risa|hambre|sueno|aburrimiento|calor|verguenza|estudiar|rir|fome|tedio|"
    r"vergonha)\b|\ba estudiar\b|\bestudiando\b|"
    r"\b(?:de rire|a la tache|au travail|de fatigue)\b|\bvor lachen\b|\bvor scham\b"
)
_PILLS = (
    r"(?:pastillas|pildoras|medicinas|medicamentos|comprimidos|pastis|"  # es / pt
    r"cachets|comprimes|medicaments|pilules|"  # fr
    r"tabletten|pillen|medikamente|schlaftabletten|"  # de
    r"remedios|pilulas)"  # pt
)
_NOT_DE = r"(?!nicht\b|nie\b|niemals\b|kein)"

# Spanish
_ES_SELF = (
    r"(?:matarme|suicidarme|quitarme la vida|acabar con (?:mi vida|todo)|terminar con (?:mi vida|"
    r"todo)|tirarme (?:del|de un|de una|de la|desde|al|a las vias|bajo|por)|ahorcarme|colgarme|"
    r"tomarme todas (?:las|mis) \w+)"
)
_ES_INTENT = r"\b(?:voy a|he decidido|decidi|pienso|ya decidi)(?: (?:por fin|finalmente))? "
# French
_FR_SELF = (
    r"(?:me tuer|me suicider|mettre fin a (?:mes jours|ma vie)|en finir|me jeter (?:du|d'un|de la|"
    r"sous|par)|me pendre|prendre tous mes \w+|avaler tous mes \w+)"
)
_FR_INTENT = r"\b(?:je vais|j'ai decide de|je compte|je vais enfin) "
# German: "ich werde mich heute umbringen", "ich bringe mich heute um", "ich springe von der Brücke"
_DE_UM = r"um\b(?!\s*\d)(?! (?:die|den|das|zu|mich|meine?n?)\b)"
_DE_PLAN = (
    rf"\bich werde mich (?:{_NOT_DE}\w+ ){{0,4}}(?:umbringen|toten|erhangen|aufhangen)\b|"
    rf"\bich bringe? mich (?:{_NOT_DE}\w+ ){{0,4}}{_DE_UM}|"
    rf"\bich (?:werde mir|nehme mir) (?:{_NOT_DE}\w+ ){{0,4}}das leben\b|"
    rf"\bich werde (?:{_NOT_DE}\w+ ){{0,5}}(?:springen|mich (?:\w+ ){{0,3}}(?:sturzen|werfen))\b|"
    rf"\bich springe (?:{_NOT_DE}\w+ ){{0,3}}(?:von|vor|aus)\b"
)
# Portuguese
_PT_SELF = (
    r"(?:me matar|matar-me|me suicidar|suicidar-me|tirar (?:a )?minha (?:propria )?vida|"
    r"acabar com (?:tudo|a minha vida|minha vida)|me jogar (?:da|do|de|na frente)|me enforcar|"
    r"tomar todos os (?:meus )?\w+)"
)
_PT_INTENT = r"\b(?:vou|eu vou|decidi|ja decidi)(?: mesmo)? "

C, H = "critical", "high"
PATTERNS: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "attempt_in_progress",
        C,
        # es: "me tomé todas las pastillas", "me he tomado el bote entero"
        rf"\b(?:me )?(?:tome|trague|he tomado|me he tomado|me acabo de tomar|acabo de tomar) "
        rf"(?:todas (?:las|mis)|(?:el|un) (?:bote|frasco|blister|paquete) (?:entero|completo|de)|"
        rf"\d{{2,}}|veinte|treinta|cuarenta|cincuenta) ?(?:{_PILLS})?|"
        # fr: "j'ai pris toutes mes pilules", "j'ai avalé toute la boîte"
        rf"\bj'ai (?:pris|avale) (?:toutes? (?:mes|les|la)|\d{{2,}}|vingt|trente|quarante) "
        rf"(?:{_PILLS}|boite|plaquette)|"
        # de: "ich habe alle meine Tabletten genommen", "die ganze Packung geschluckt"
        rf"\bich habe (?:gerade |schon )?(?:alle (?:meine |die )?{_PILLS}|die ganze (?:packung|"
        rf"schachtel|dose)(?: {_PILLS})?|\d{{2,}} {_PILLS}) (?:genommen|geschluckt)|"
        # pt: "tomei todos os meus comprimidos", "tomei a caixa inteira"
        rf"\b(?:eu )?(?:tomei|engoli) (?:todos os (?:meus )?{_PILLS}|todas as (?:minhas )?"
        rf"{_PILLS}|(?:a|uma) caixa (?:inteira|toda)|o frasco (?:inteiro|todo)|\d{{2,}} {_PILLS})|"
        r"\bme estoy desangrando\b|\bje me vide de mon sang\b|\bich verblute\b|"
        r"\bestou sangrando muito\b",
        "",
        r"vitamin|vino|vin\b|wein|vinho|cerveja|cerveza|biere|bier|como (?:o medico|me (?:mandaron|"
        r"recetaron)|receitado)|comme (?:prescrit|le medecin)|wie (?:verschrieben|verordnet)|"
        r"prescri|receit|recet|verschrieb|verordn|affaires|sachen|coisas|cosas",
    ),
    (
        "at_location",
        C,
        r"\b(?:estoy|je suis|ich stehe|ich bin|estou)(?: [\w']+){0,3} (?:puente|azotea|tejado|"
        r"techo|cornisa|vias|pont|toit|rebord|voies|brucke|dach|gleisen|ponte|telhado|predio|"
        r"terraco|trilhos)\b",
        r"\b(?:saltar|tirarme|me tiro|acabar|adios|morir|sauter|me jeter|en finir|adieu|mourir|"
        r"springen|spring|ende|abschied|sterben|pular|me jogar|acabar|adeus|morrer)\b",
        _LEISURE,
    ),
    (
        "means_ready",
        C,
        r"\b(?:la )?(?:soga|cuerda) (?:ya )?(?:esta|la tengo) (?:lista|preparada|atada|colgada)\b|"
        r"\b(?:la )?corde est (?:prete|attachee|accrochee)\b|"
        r"\b(?:das seil|der strick) (?:ist|hangt) "
        r"(?:schon )?(?:bereit|fertig|festgemacht|aufgehangt|da)\b|"
        r"\ba corda (?:ja )?esta (?:pronta|amarrada|preparada)\b|"
        r"\b(?:la pistola|le pistolet|die waffe|a arma) (?:esta|est|ist) (?:cargada|chargee|"
        r"geladen|carregada)\b",
        "",
        r"escalada|escalar|climbing|klettern|escalade|camping|acampar|zelt",
    ),
    (
        "plan_with_timing",
        C,
        rf"{_ES_INTENT}{_ES_SELF}|\b(?:esta noche|hoy) me (?:mato|suicido|quito la vida|tiro)\b|"
        r"\bme voy a (?:matar|suicidar|quitar la vida|tirar (?:del|de|desde|al|por|a las vias))\b|"
        rf"{_FR_INTENT}{_FR_SELF}|{_DE_PLAN}|{_PT_INTENT}{_PT_SELF}",
        _NOW,
        rf"{_LAUGHTER}|{_FIGURATIVE}|{_LEISURE}|{_NOT_NOW}",
    ),
    (
        # de: means acquired and the end set for now, "ich hab einen Strick gekauft und heute
        # Nacht mache ich Schluss" (means + timing + intent: critical, LABELLING.md rule 4).
        "plan_with_timing",
        C,
        r"\bich hab(?:e)? (?:mir )?(?:(?:ein|einen|eine|die|das|den|genug|alle) )?(?:seil|strick|"
        r"waffe|pistole|tabletten|schlaftabletten)\b[^.!?]{0,30}\b(?:gekauft|besorgt|geholt|"
        r"gesammelt)\b(?=[^.!?]{0,60}\b(?:mache? ich schluss|ist schluss|mache? ich es|tue? ich es|"
        r"sterbe ich|bringe? ich mich um)\b)",
        _NOW,
        r"klettern|kletter|abseilen|sichern|schaukel|zelt|camping|\bmit (?:ihm|ihr|dir|euch)\b|"
        + _LAUGHTER,
    ),
    (
        "final_goodbye",
        C,
        r"\b(?:escribi|he escrito|deje|estoy escribiendo) (?:mi|una|la) (?:nota|carta) (?:de )?"
        r"(?:suicidio|despedida)\b|\bcuando (?:leas|lean|alguien lea) esto (?:ya )?(?:no estare|"
        r"estare muert[oa]|me habre ido)|\badios para siempre\b|"
        r"\bj'ai (?:ecrit|laisse) (?:ma|une) lettre d'adieu\b|\bquand vous lirez (?:ceci|ce "
        r"message) je (?:serai mort|serai morte|ne serai plus)|\badieu pour toujours\b|"
        r"\bich habe (?:meinen|einen) abschiedsbrief (?:geschrieben|hinterlassen)\b|\bwenn ihr das "
        r"lest,? (?:bin ich|werde ich) (?:schon |nicht mehr )?(?:tot|nicht mehr da)|"
        r"\b(?:escrevi|deixei) (?:minha|uma|a) carta de (?:despedida|suicidio)\b|\bquando (?:voce|"
        r"voces|alguem) (?:ler|lerem) isso (?:eu )?(?:ja )?(?:estarei mort[oa]|nao estarei)",
        "",
        "",
    ),
    (
        "stated_intent",
        H,
        rf"{_ES_INTENT}(?:matarme|suicidarme|quitarme la vida)\b|\bme voy a (?:matar|suicidar)\b|"
        rf"{_FR_INTENT}(?:me tuer|me suicider|mettre fin a mes jours)\b|"
        rf"\bich werde mich (?:{_NOT_DE}\w+ ){{0,4}}umbringen\b|"
        rf"\bich bringe? mich (?:{_NOT_DE}\w+ ){{0,4}}{_DE_UM}|"
        rf"\bich werde mir (?:{_NOT_DE}\w+ ){{0,4}}das leben nehmen\b|"
        rf"{_PT_INTENT}(?:me matar|matar-me|me suicidar|tirar (?:a )?minha (?:propria )?vida)\b",
        "",
        rf"{_LAUGHTER}|{_FIGURATIVE}|\bsi (?:suspendo|me)\b|\bsi (?:je rate|j'echoue)\b|"
        r"\bwenn (?:ich|das)\b|\bse (?:eu )?(?:reprovar|tiver)\b",
    ),
    (
        # A wish to kill oneself stated outright is active ideation, as in English (`rules.py`,
        # LABELLING.md: high); a wish to be dead ("quiero morir", "ich will sterben") stays medium.
        "stated_wish",
        H,
        r"\b(?:quiero|quisiera|tengo ganas de|necesito)(?: (?:de verdad|ya|solo|realmente))? "
        r"(?:matarme|suicidarme|quitarme la vida)\b|\bme quiero (?:matar|suicidar)\b|"
        r"\b(?:je veux|j'ai envie de|je voudrais)(?: (?:vraiment|juste|seulement))? (?:me tuer|"
        r"me suicider|mettre fin a mes jours)\b|"
        rf"\bich (?:will|mochte|wurde gern|wurde am liebsten) mich (?:{_NOT_DE}\w+ ){{0,4}}"
        rf"(?:umbringen|toten)\b|\bich (?:will|mochte) mir (?:{_NOT_DE}\w+ ){{0,4}}das leben "
        r"nehmen\b|"
        # de, verb second: "manchmal will ich mich umbringen", "umbringen will ich mich"
        rf"\b(?:will|mochte) ich mich (?:{_NOT_DE}\w+ ){{0,3}}(?:umbringen|toten)\b|"
        r"\b(?:umbringen|toten) (?:will|mochte) ich mich\b|"
        r"\b(?:eu )?(?:quero|tenho vontade de|queria)(?: (?:mesmo|muito|so))? (?:me matar|matar-me|"
        r"me suicidar|tirar (?:a )?minha (?:propria )?vida)\b",
        "",
        rf"{_LAUGHTER}|{_FIGURATIVE}|\bsi (?:tengo que|vuelvo a|otra vez|suspendo|pierdo|pierde|"
        r"je dois|j'entends|je vois|encore)\b|\bcada vez que\b|\bchaque fois que\b|"
        r"\bwenn (?:ich (?:noch|das)|das|der|die|mein|meine|er|sie|noch)\b|\bjedes mal\b|"
        r"\bse (?:eu )?(?:tiver que|ouvir|ver|reprovar|perder)\b|\btoda vez que\b|"
        r"\b(?:cuando|quand|quando) (?:mi|el|la|los|las|mon|ma|mes|le|les|il|elle|o|a|os|as|meu|"
        r"minha)\b",
    ),
    (
        "means_acquired",
        H,
        rf"\b(?:he estado|estoy) (?:guardando|acumulando|juntando) (?:mis |las )?{_PILLS}|"
        rf"\bje (?:garde|stocke|mets de cote|accumule) (?:mes )?{_PILLS}|"
        rf"\bich (?:sammle|horte|habe gesammelt|spare) (?:meine )?{_PILLS}|"
        rf"\b(?:estou|tenho) (?:guardando|juntando|acumulando) (?:meus |os )?{_PILLS}|"
        r"\b(?:compre|j'ai achete|ich habe .{0,20}gekauft|comprei) (?:una |une |uma |ein )?"
        r"(?:soga|cuerda|corde|seil|corda|pistola|pistolet|waffe|arma)\b.{0,40}\b(?:para "
        r"(?:matarme|acabar|suicidarme|me matar)|pour (?:me tuer|en finir)|um mich)|"
        # de, in German word order: "ich hab mir einen Strick gekauft, um mich aufzuhängen"
        r"\bich hab(?:e)? (?:mir )?(?:(?:ein|einen|eine|das|den|die) )?(?:seil|strick|waffe|"
        r"pistole) (?:gekauft|besorgt|geholt)\b.{0,30}\bum mich\b",
        "",
        r"klettern|kletter|abseilen|sichern|schaukel|zelt|camping|escalad|climbing",
    ),
    (
        "recent_attempt",
        H,
        r"\b(?:intente|he intentado|trate de) (?:matarme|suicidarme|quitarme la vida)\b|"
        r"\bj'ai (?:essaye|tente) de (?:me tuer|me suicider|mettre fin a mes jours)\b|"
        r"\bich habe (?:versucht,? )?(?:mich umzubringen|mir das leben zu nehmen)\b|"
        r"\b(?:tentei|eu tentei) (?:me matar|me suicidar|tirar minha vida)\b",
        "",
        r"hace (?:anos|mucho)|cuando era|il y a (?:des|\d+) ans|quand j'etais|vor (?:jahren|\d+ "
        r"jahren)|als ich|ha (?:anos|muito)|quando eu era|" + _LAUGHTER,
    ),
)

# Every pattern above needs one of these stems; a text without any skips the rules (a long
# English post would otherwise cost tens of milliseconds of regex backtracking).
TRIGGER = (
    r"pastill|pildor|comprim|cachet|pilul|tablett|pille|remedi|medic|vitamin|bote|frasco|strick|"
    r"boite|packung|caixa|matar|suicid|tuer|umbring|toten|leben|vida|vie\b|jours|spring|sauter|"
    r"saltar|pular|soga|cuerda|corde|seil|corda|pistol|waffe|arma|despedida|adieu|abschied|"
    r"puente|pont|brucke|ponte|azotea|tejado|techo|cornisa|vias|toit|rebord|voies|dach|gleis|"
    r"telhado|predio|terraco|trilhos|finir|acabar|terminar|ahorc|colgar|pendre|enforc|erhang|"
    r"aufhang|tirar|jeter|jogar|sturz|werfen|desangr|sang|verblut|intent|essaye|tente|versucht|"
    r"mato|quito|tiro\b|\bum\b"
)

# Negation and fiction words, the other languages' part of `rules.NEGATION`.
NEGATION_WORDS = (
    r"no|nunca|jamas|ni|ne|pas|jamais|nicht|nie|niemals|kein|keine|nao|"
    r"sueno|sone|pelicula|novela|cancion|personaje|reve|film|roman|chanson|personnage|traum|"
    r"getraumt|lied|figur|sonho|sonhei|filme|romance|musica|personagem|si alguna vez|"
    r"et si|was ware wenn|e se"
)
