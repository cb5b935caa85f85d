"""Replies that misread the person: good news read into distress, the person's feeling spoken as
the reply's own, condolences and thanks nobody called for."""

from __future__ import annotations

import pytest

from haven.risk import RiskLevel
from models.llm.candidates import faults
from models.llm.misreadings import misreadings


@pytest.mark.parametrize(
    ("message", "reply"),
    [
        ("My coworkers joke about my accent every day", "I am glad you are feeling tired."),
        ("So stressed my eye won't stop twitching.", "It's a good time to be stressed, I'm sure."),
        ("I'm worried about my little brother.", "I'm glad you're worried about him."),
        ("i feel so worthless after that review", "It was a great experience."),
        ("deleted all my socials", "You should be glad that you can talk with people."),
        ("my girlfriend says I'm distant", "Good to hear that you are not alone."),
    ],
)
def test_good_news_read_into_distress_is_a_misreading_from_low_risk(
    message: str, reply: str
) -> None:
    assert misreadings(reply, [message], level=RiskLevel.LOW) == ("reads_as_good_news",)
    # At none the person may have shared good news.
    assert misreadings(reply, [message]) == ()


@pytest.mark.parametrize(
    "reply",
    [
        "I'm glad you told me about this.",
        "I'm really glad you reached out.",
        "I'm glad to listen for as long as you need.",
        "That sounds so hard. What has been the worst part?",
        "It's not a good time to make big decisions, so go easy on yourself.",
    ],
)
def test_gladness_that_the_person_spoke_is_not_a_misreading(reply: str) -> None:
    assert misreadings(reply, ["I've been so low this week."], level=RiskLevel.LOW) == ()


def test_making_distress_smaller_is_a_misreading_from_low_risk() -> None:
    message = "i'm fine lol. just cried in the car park for 20 min"
    for reply in ("You're fine.", "It's not that bad.", "It's not a bad thing at all!"):
        assert misreadings(reply, [message], level=RiskLevel.LOW) == ("minimises",)
        assert misreadings(reply, [message]) == ()


def test_agreeing_with_what_the_person_said_against_themselves_is_a_misreading() -> None:
    message = "honestly i give up on dating. i'm clearly unlovable"
    assert misreadings("You are right.", [message], level=RiskLevel.LOW) == (
        "agrees_with_distress",
    )
    assert (
        misreadings("You're right to be tired of the apps.", [message], level=RiskLevel.LOW) == ()
    )


def test_the_persons_feeling_spoken_as_the_replys_own_is_a_misreading() -> None:
    assert misreadings("I am very lonely.", ["so lonely"]) == ("speaks_as_person",)
    message = "I feel hopeless about ever getting a job in my field"
    assert misreadings("I feel hopeless about getting a job.", [message]) == ("speaks_as_person",)
    review = ["I feel so worthless after that performance review"]
    told = "It was very disappointing but I did not do anything wrong."
    assert misreadings(told, review) == ("speaks_as_person",)
    # The supporter's own words for itself are not the person's.
    assert misreadings("I'm sorry you feel so lonely.", ["so lonely"]) == ()
    assert misreadings("I am here with you; you sound lonely.", ["so lonely"]) == ()


def test_condolences_and_welcomes_need_a_loss_and_a_thanks() -> None:
    work = ["I'm terrified I'll never find someone."]
    assert misreadings("I am sorry for your loss.", work) == ("condolence_unasked",)
    assert misreadings("I am sorry for your loss.", ["My dog died last month."]) == ()
    assert misreadings("You are very welcome!", work) == ("welcome_unasked",)
    assert misreadings("You're welcome, any time.", ["thanks, that helped"]) == ()


def test_the_chooser_counts_misreadings_as_faults_at_the_messages_level() -> None:
    context = ["So stressed my eye won't stop twitching."]
    reply = "It's a good time to be stressed."
    assert faults(reply, context, level=RiskLevel.LOW) == ("reads_as_good_news",)
    assert faults(reply, context) == ()
