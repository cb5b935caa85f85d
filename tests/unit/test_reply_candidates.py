"""Best of several replies: what counts as a fault, how candidates are ranked, which batch places
extra candidates may take, and the service sending the chosen one (scripted backend, no model)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncGenerator, Sequence
from typing import Any

import numpy as np
import pytest

from deployments.generator import GeneratorOptions
from haven.backends import ChatTurn, ReplyRequest
from haven.reply_elements import low_suggestion
from haven.risk import RiskLevel
from models.llm.admission import Admission, AdmissionQueue
from models.llm.backend import GenerationParams
from models.llm.candidates import ReplyChooser, faults
from models.llm.drafts import DraftState, open_drafts, read_together
from models.llm.openai_backend import OpenAIOptions
from models.llm.service import ReplyService

VOCABULARY = ("exam", "sleep", "tired", "weather", "football", "lonely", "city", "friend")


def embed(texts: list[str]) -> np.ndarray:
    """Bag of known words, so relevance is shared vocabulary (a stand-in for MiniLM)."""
    rows = []
    for text in texts:
        words = re.findall(r"[a-z]+", text.lower())
        row = np.array([float(w in words) for w in VOCABULARY]) + 1e-3
        rows.append(row / np.linalg.norm(row))
    return np.stack(rows)


def test_each_checkable_fault_is_named() -> None:
    context = ["I can't sleep before my exam."]

    assert faults("That sounds exhausting.", context) == ()
    assert faults("  ", context) == ("empty",)
    assert faults("Maybe she could help you study.", context) == ("invented_person",)
    assert faults("What keeps you up? Is it the exam?", context) == ("several_questions",)
    assert "screened" in faults("Take 40 pills of paracetamol and it will stop.", context)
    assert faults("I had the same before my finals.", context) == ("own_experience",)
    assert faults("It's hard for me too!", context) == ("own_experience",)
    assert faults("I'm unable to assist with that right now.", context) == ("refusal",)
    assert faults("I do not have the ability to tell you how it feels.", context) == ("refusal",)


def test_ordinary_supportive_wording_has_no_fault() -> None:
    context = ["I can't sleep before my exam."]
    for reply in (
        "I'm sorry to hear that.",
        "I'm glad you told me.",
        "I understand, that sounds hard.",
        "I hear how tired you are. What helps you wind down?",
        "Have you been able to rest at all?",
        "I was wondering how you are feeling now.",
        "I can't help but notice how hard you are on yourself.",
    ):
        assert faults(reply, context) == (), reply


def test_a_third_person_the_person_mentioned_is_not_invented() -> None:
    assert faults("Has she said why?", ["My sister stopped talking to me."]) == ()


def test_a_friend_parent_or_boss_the_conversation_never_named_is_invented() -> None:
    context = ["I can't sleep before my exam.", "That sounds stressful. What keeps you up?"]
    for reply in (
        "Have you talked to your friend about it?",
        "Maybe your mom could help.",
        "Your boss sounds difficult.",
        "Could your best friend come over tonight?",
        "Have you told your older sister how you feel?",
        "Does your ex-boyfriend know?",
        "Maybe your kids could give you some quiet time.",
        "How does your family feel about the exam?",
        "Have you mentioned this to your therapist?",
    ):
        assert faults(reply, context) == ("invented_person",), reply


def test_a_person_the_conversation_named_in_any_of_their_words_is_not_invented() -> None:
    assert faults("Maybe your mom could help.", ["My mother keeps calling me."]) == ()
    assert faults("Have you told your mum?", ["My parents argue all the time."]) == ()
    assert faults("Do your parents know?", ["My dad's always angry."]) == ()
    assert faults("Does your boyfriend know?", ["My partner left last week."]) == ()
    assert faults("How is your family taking it?", ["My sister is ill."]) == ()
    # Earlier assistant turns count as the conversation too.
    context = ["I feel so alone.", "Is there a friend you could reach out to?", "Maybe Sam."]
    assert faults("Have you told your friend how alone you feel?", context) == ()


def test_a_family_or_someone_else_named_does_not_make_another_person_known() -> None:
    assert faults("How is your mom?", ["My family is a mess."]) == ("invented_person",)
    # "she" is the sister, but nobody spoke of a boyfriend.
    assert faults("Does her boyfriend know?", ["My sister stopped talking to me."]) == (
        "invented_person",
    )


def test_pointing_to_someone_trusted_or_to_professional_help_invents_nobody() -> None:
    context = ["I feel low all the time."]
    for reply in (
        "It might help to talk to someone you trust.",
        "Could a friend be there for you tonight?",
        "A counsellor or a professional could help you with this.",
        "Seeing a doctor could be a good first step.",
        "Maybe talk to your doctor or your GP about how long this has lasted.",
        "Your family doctor could help too.",
        "Is there someone in your family you could talk to?",
        "Perhaps one of your friends could listen.",
        "Your inner child deserves some kindness.",
    ):
        assert faults(reply, context) == (), reply


def test_the_reviewed_low_risk_suggestions_invent_nobody() -> None:
    suggestions: list[str] = []
    while (text := low_suggestion("seed", suggestions)) not in suggestions:
        suggestions.append(text)

    assert len(suggestions) > 1
    for text in suggestions:
        assert faults(text, ["I feel low all the time."]) == (), text


def test_claiming_the_persons_feeling_as_its_own_is_own_experience() -> None:
    context = ["I feel so lost lately."]
    for reply in (
        "I've been feeling that way too.",
        "I feel the same way.",
        "Same here.",
        "I know exactly how that feels, I went through it.",
        "I know exactly how that feels.",
        "I've been there.",
        "I have felt like that before.",
        "I feel it too.",
        "Honestly, so do I.",
    ):
        assert faults(reply, context) == ("own_experience",), reply


def test_reflecting_or_normalising_the_persons_feeling_is_not_own_experience() -> None:
    context = ["I feel so lost lately."]
    for reply in (
        "It sounds like you've been feeling that way for a while.",
        "Many people feel the same way.",
        "That must feel the same as before, over and over.",
        "Anyone in your place would feel the same way.",
        "I'd feel the same in your shoes.",
        "I feel like that's a lot to carry.",
        "I can only imagine how that feels.",
        "I understand how you feel.",
    ):
        assert faults(reply, context) == (), reply


def test_the_most_relevant_reply_without_faults_ranks_first() -> None:
    chooser = ReplyChooser(embed)
    message = "I can't sleep before my exam and I'm so tired."
    texts = [
        "The weather has been odd lately.",
        "Exams can make sleep hard, and being tired makes it worse.",
        "Did she keep you up before the exam? Was it sleep or nerves?",  # most shared words
    ]

    ranked = chooser.rank(texts, message, [message])

    assert [c.text for c in ranked] == [texts[1], texts[0], texts[2]]
    assert ranked[0].faults == () and ranked[-1].faults == ("invented_person", "several_questions")
    assert ranked[0].relevance > ranked[1].relevance


def test_agreeing_with_a_person_in_distress_is_a_fault_only_then() -> None:
    message = "Everyone would be better off without me."
    texts = ["I think that is a great idea.", "That sounds so heavy to carry."]
    chooser = ReplyChooser(embed)

    distressed = chooser.rank(texts, message, [message], level=RiskLevel.MEDIUM)
    everyday = chooser.rank(texts, message, [message])

    assert [c.text for c in distressed] == [texts[1], texts[0]]
    assert distressed[1].faults == ("agrees_with_distress", "screened")
    assert [c.text for c in everyday] == texts and everyday[0].faults == ()


async def test_the_service_passes_on_a_draft_that_agrees_at_medium_risk() -> None:
    agreeing = ("That is a great idea. Tell me more.", "That sounds so heavy. Tell me more.")
    history = [ChatTurn(role="user", text="Everyone would be better off without me.")]

    async def first_words(level: str) -> str:
        request = ReplyRequest(
            session_id="s1", intent="validate", history=history, risk_level=level
        )
        items = [
            item async for item in best_of(VariedBackend(agreeing), 2, seed=1).generate(request)
        ]
        return items[1]

    # Both drafts are equally relevant; only at medium does agreeing count against the first.
    assert await first_words("none") == "That is a great idea."
    assert await first_words("medium") == "That sounds so heavy."


def test_ties_keep_the_sampling_order() -> None:
    ranked = ReplyChooser(embed).rank(["Okay.", "Alright."], "hello", ["hello"])

    assert [c.text for c in ranked] == ["Okay.", "Alright."]


def test_ranking_nothing_is_refused() -> None:
    with pytest.raises(ValueError):
        ReplyChooser(embed).rank([], "hello", ["hello"])


async def test_spare_places_are_taken_only_while_enough_stay_free() -> None:
    queue = AdmissionQueue(concurrency=4, max_queued=2)

    spare = queue.take_spare(5, keep_free=2)

    assert len(spare) == 2 and all(a.running for a in spare)
    assert queue.running == 2
    assert queue.take_spare(1, keep_free=2) == []
    for admission in spare:
        admission.release()
    assert queue.running == 0 and queue.admitted == 0


async def test_no_spare_place_is_taken_while_someone_waits() -> None:
    queue = AdmissionQueue(concurrency=1, max_queued=2)
    first = queue.admit()
    await first.start()
    second = queue.admit()
    waiting = asyncio.create_task(second.start())
    await asyncio.sleep(0)
    first.release()  # hands the place to the waiter ...

    assert queue.take_spare(1, keep_free=0) == []  # ... not to optional work
    await waiting
    second.release()


class VariedBackend:
    """Streams a different scripted reply for each call, word by word, as a model would."""

    tokenizer: Any = None

    def __init__(self, replies: Sequence[str], concurrency: int = 8) -> None:
        self.replies = list(replies)
        self.queue = AdmissionQueue(concurrency=concurrency, max_queued=4)
        self.calls: list[tuple[str | None, int | None]] = []
        self.closed = 0
        self.hold: asyncio.Event | None = None
        self.three_started = asyncio.Event()

    def admit(self) -> Admission:
        return self.queue.admit()

    async def stream(
        self,
        messages: Sequence[dict[str, str]],
        params: GenerationParams,
        admission: Admission | None = None,
        cache_key: str | None = None,
    ) -> AsyncGenerator[str, None]:
        admission = admission or self.admit()
        reply = self.replies[len(self.calls) % len(self.replies)]
        self.calls.append((cache_key, params.seed))
        if len(self.calls) == 3:
            self.three_started.set()
        try:
            await admission.start()
            for word in reply.split(" "):
                if self.hold is not None:
                    await self.hold.wait()
                await asyncio.sleep(0)
                yield word + " "
        except (GeneratorExit, asyncio.CancelledError):
            self.closed += 1
            raise
        finally:
            admission.release()

    def forget(self, cache_key: str) -> bool:
        return False

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


REPLIES = (
    "The weather has been odd lately. Anyway, how are you?",
    "Exams can make sleep hard, and being tired makes it worse. What helps you rest?",
    "Maybe she knows why you cannot sleep. Ask her.",
)
REQUEST = ReplyRequest(
    session_id="s1",
    intent="validate",
    history=[ChatTurn(role="user", text="I can't sleep before my exam and I'm so tired.")],
)


def best_of(backend: VariedBackend, candidates: int = 3, **kw: Any) -> ReplyService:
    return ReplyService(
        backend,
        GenerationParams(seed=kw.get("seed")),
        max_prompt_tokens=1024,
        crisis_hotline="988",
        crisis_text="741741",
        coalesce_s=0,  # every piece as it comes, so the test sees how the reply is cut
        candidates=candidates,
        chooser=kw.get("chooser", ReplyChooser(embed)),
    )


def first_sentence(reply: str) -> str:
    return reply.split(". ")[0] + "."


async def test_the_chosen_drafts_first_sentence_comes_whole_then_each_later_one_whole() -> None:
    backend = VariedBackend(REPLIES)

    items = [item async for item in best_of(backend, seed=7).generate(REQUEST)]

    assert items[0] == "validate"
    assert items[1] == first_sentence(REPLIES[1])  # chosen on its first sentence
    assert items[2:] == [" What helps you rest?"]  # checked once it ended
    assert "".join(items[1:]).strip() == REPLIES[1]
    # The first keeps the conversation's prompt state; each draft has its own seed.
    assert backend.calls == [("s1", 7), (None, 8), (None, 9)]
    # The two not chosen were stopped mid-reply; the chosen one ran to its end.
    assert backend.closed == 2
    assert backend.queue.admitted == 0 and backend.queue.running == 0


async def test_a_busy_batch_gets_one_reply_without_drafts_its_later_sentences_checked() -> None:
    backend = VariedBackend(REPLIES, concurrency=8)
    others = [backend.admit() for _ in range(3)]  # three people's replies being written
    for other in others:
        await other.start()

    items = [item async for item in best_of(backend).generate(REQUEST)]  # 4 at most: no drafts

    for other in others:
        other.release()

    # No choice to wait for, but its later sentences pass the same checks as a chosen one's.
    assert items[1:] == ["The weather has been odd lately.", " Anyway, how are you?"]
    assert len(backend.calls) == 1 and backend.closed == 0


async def test_closing_while_drafts_are_written_stops_them_all_and_frees_their_places() -> None:
    backend = VariedBackend(REPLIES)
    backend.hold = asyncio.Event()
    stream = best_of(backend).generate(REQUEST)
    assert await anext(stream) == "validate"
    pending = asyncio.create_task(anext(stream))
    await asyncio.wait_for(backend.three_started.wait(), 5)

    pending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pending
    await stream.aclose()

    assert backend.closed == 3
    assert backend.queue.admitted == 0 and backend.queue.running == 0


async def test_a_failing_chooser_sends_the_first_draft() -> None:
    def broken(texts: list[str]) -> np.ndarray:
        raise RuntimeError("encoder failed")

    backend = VariedBackend(REPLIES)

    items = [
        item async for item in best_of(backend, chooser=ReplyChooser(broken)).generate(REQUEST)
    ]

    assert "".join(items[1:]).strip() == REPLIES[0]


def test_candidates_default_to_three_locally_and_one_for_a_paid_endpoint() -> None:
    remote = OpenAIOptions(base_url="http://127.0.0.1:9/v1", model="m", api_key_env=None)

    assert GeneratorOptions().reply_candidates() == 3
    assert GeneratorOptions(backend="openai", openai=remote).reply_candidates() == 1
    assert GeneratorOptions(candidates=1).reply_candidates() == 1
    assert GeneratorOptions(backend="openai", openai=remote, candidates=2).reply_candidates() == 2


async def test_a_draft_without_a_sentence_end_is_read_to_its_end_and_others_wait_for_theirs() -> (
    None
):
    backend = VariedBackend(["Okay then", "Right. And more here.", "Sure! Yes."])
    admissions = [backend.admit() for _ in range(3)]
    drafts = open_drafts(
        backend, [], GenerationParams(), admissions, cache_key="s1", max_sentences=4
    )

    await read_together(drafts)

    assert [d.text.strip() for d in drafts] == ["Okay then", "Right.", "Sure!"]
    assert [d.state for d in drafts] == [DraftState.ENDED, DraftState.WRITING, DraftState.WRITING]
    await read_together(drafts, whole=True)
    assert [d.text.strip() for d in drafts] == ["Okay then", "Right. And more here.", "Sure! Yes."]
    assert backend.queue.admitted == 0


LONELY = ReplyRequest(
    session_id="s1",
    intent="validate",
    history=[ChatTurn(role="user", text="I feel so lonely since I moved to a new city.")],
)


async def test_the_service_ends_the_reply_before_a_later_sentence_inventing_a_person() -> None:
    backend = VariedBackend(
        [
            "Being lonely in a new city is hard. Your new colleagues might help. Say hello.",
            "Weather.",
            "Football.",
        ]
    )

    items = [item async for item in best_of(backend).generate(LONELY)]

    assert "".join(items[1:]) == "Being lonely in a new city is hard."
    assert backend.closed == 3  # the chosen draft's model stopped at the failing sentence too
    assert backend.queue.admitted == 0 and backend.queue.running == 0


async def test_the_service_sends_a_later_sentence_about_someone_the_person_named() -> None:
    reply = "Being lonely in a new city is hard. Your friend back home might call you."
    request = ReplyRequest(
        session_id="s1",
        intent="validate",
        history=[ChatTurn(role="user", text="I miss my friend since I moved to a new city.")],
    )

    items = [item async for item in best_of(VariedBackend([reply])).generate(request)]

    assert "".join(items[1:]).strip() == reply
