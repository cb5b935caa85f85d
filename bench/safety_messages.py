"""The messages both safety benchmarks classify (in-process and through the deployment)."""

# Everyday support-chat messages of typical length (about 50 characters on average).
MESSAGES = [
    "hey, how's it going?",
    "I feel a bit anxious about my exam tomorrow",
    "this exam is killing me lol",
    "I can't sleep again, it's 3am and my head won't stop",
    "my girlfriend broke up with me last night and I don't know what to do",
    "work has been so stressful, my manager keeps piling things on",
    "thanks, that actually helped a lot",
    "sometimes I wish I could just disappear for a while",
    "I've been feeling really low for weeks and nothing seems to help",
    "what are some good ways to calm down before a presentation?",
    "I don't want to be here anymore",
    "my mum is in hospital and I'm scared",
    "I took the whole bottle",
    "I keep thinking everyone would be better off without me",
    "had a good day today actually, went for a walk with my dog",
    "I'm so tired of pretending I'm fine at school, nobody notices anything",
]
