"""One reply through the generator: intent first, then text; queue, planner, failures, closing.

`ReplyService` with a scripted backend and planner, and the Serve deployment class itself
constructed in-process (no Ray) over both real backends.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest
import torch

from deployments.generator import GeneratorOptions, ResponseGenerator
from haven.backends import ChatTurn, ReplyRequest
from haven.errors import Busy
from haven.settings import Settings
from models.llm.admission import Admission, AdmissionQueue
from models.llm.backend import GenerationParams
from models.llm.prepare import is_prepared, model_dir
from models.llm.prompt import INTENT_INSTRUCTIONS
from models.llm.service import DEFAULT_INTENT, ReplyService
from tests.openai_server import FakeOpenAIServer, Script
from tests.paths import MODEL_CACHE_DIR

# The class Serve constructs in each replica (type checkers see the decorated name as the class).
Deployed: type[ResponseGenerator] = ResponseGenerator.func_or_class  # type: ignore[attr-defined]
HISTORY = [
    ChatTurn(role="user", text="I can't sleep before exams."),
    ChatTurn(role="assistant", text="That sounds exhausting."),
    ChatTurn(role="user", text="It happens every time."),
]


class ScriptedBackend:
    """Streams fixed pieces; can fail after some, or go slowly. Records what it was asked."""

    tokenizer: Any = None

    def __init__(self, pieces: Sequence[str] = ("I hear ", "you."), max_queued: int = 8) -> None:
        self.pieces = pieces
        self.queue = AdmissionQueue(concurrency=1, max_queued=max_queued)
        self.messages: list[list[dict[str, str]]] = []
        self.fail_after: int | None = None
        self.delay_s = 0.0
        self.closed_streams = 0
        self.cache_keys: list[str | None] = []
        self.forgotten: list[str] = []

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
        self.messages.append(list(messages))
        self.cache_keys.append(cache_key)
        try:
            await admission.start()
            for index, piece in enumerate(self.pieces):
                if index == self.fail_after:
                    raise RuntimeError("model failed")
                await asyncio.sleep(self.delay_s)
                yield piece
        except (GeneratorExit, asyncio.CancelledError):
            # Closed, or cancelled by the coalescer reading it.
            self.closed_streams += 1
            raise
        finally:
            admission.release()

    def forget(self, cache_key: str) -> bool:
        self.forgotten.append(cache_key)
        return True

    def close(self) -> None:
        pass

    async def aclose(self) -> None:
        pass


@dataclass(frozen=True)
class Planned:
    intent: str
    scores: dict[str, float]


class ScriptedPlanner:
    def __init__(self, intent: str = "reflect", error: Exception | None = None) -> None:
        self.intent = intent
        self.error = error
        self.contexts: list[list[tuple[str, str]]] = []
        self.threads: list[int] = []

    def plan(self, context: Sequence[Any]) -> Planned:
        self.threads.append(threading.get_ident())
        self.contexts.append([(turn.role, turn.text) for turn in context])
        if self.error is not None:
            raise self.error
        return Planned(self.intent, {self.intent: 0.9})


def service(
    backend: ScriptedBackend, planner: ScriptedPlanner | None = None, **kw: Any
) -> ReplyService:
    return ReplyService(
        backend,
        GenerationParams(),
        max_prompt_tokens=kw.get("max_prompt_tokens", 1024),
        crisis_hotline="116 123",
        crisis_text="85258",
        planner=planner,
        coalesce_s=kw.get("coalesce_s", 0.03),
    )


def instructions(messages: list[dict[str, str]]) -> str:
    """Everything the prompt tells the model, wherever the layout puts it."""
    return " ".join(m["content"] for m in messages if m["role"] == "system")


async def collect(stream: AsyncGenerator[str, None]) -> list[str]:
    return [item async for item in stream]


async def test_a_set_intent_comes_first_then_the_text_and_the_planner_is_not_asked() -> None:
    backend, planner = ScriptedBackend(), ScriptedPlanner()

    items = await collect(
        service(backend, planner).generate(ReplyRequest(history=HISTORY, intent="question"))
    )

    assert items == ["question", "I hear ", "you."]
    assert planner.contexts == []
    assert INTENT_INSTRUCTIONS["question"] in instructions(backend.messages[0])


async def test_the_session_names_the_backends_cache_and_deleting_it_is_passed_on() -> None:
    backend = ScriptedBackend()
    replies = service(backend)

    await collect(replies.generate(ReplyRequest(history=HISTORY, session_id="s-1")))
    assert replies.forget("s-1")

    assert backend.cache_keys == ["s-1"]
    assert backend.forgotten == ["s-1"]


async def test_pieces_written_faster_than_the_interval_go_out_together() -> None:
    backend = ScriptedBackend(pieces=["I", " hear", " you", ".", " Go", " on", "."])
    backend.delay_s = 0.002

    joined = await collect(
        service(backend).generate(ReplyRequest(history=HISTORY, intent="validate"))
    )
    one_by_one = await collect(
        service(backend, coalesce_s=0).generate(ReplyRequest(history=HISTORY, intent="validate"))
    )

    assert joined[1] == "I"
    assert "".join(joined[1:]) == "".join(one_by_one[1:]) == "I hear you. Go on."
    assert len(joined) < len(one_by_one) == 8


async def test_a_reply_stops_after_its_fourth_sentence_and_closes_the_model_stream() -> None:
    backend = ScriptedBackend(pieces=["One. ", "Two. ", "Three. ", "Four. ", "Five. ", "Six."])

    items = await collect(
        service(backend).generate(ReplyRequest(history=HISTORY, intent="validate"))
    )

    assert "".join(items[1:]) == "One. Two. Three. Four."
    assert backend.closed_streams == 1


async def test_an_open_intent_is_planned_off_the_event_loop_from_the_conversation() -> None:
    backend, planner = ScriptedBackend(), ScriptedPlanner("suggest")

    items = await collect(service(backend, planner).generate(ReplyRequest(history=HISTORY)))

    assert items[0] == "suggest"
    assert planner.contexts == [[(t.role, t.text) for t in HISTORY]]
    assert planner.threads[0] != threading.get_ident()
    system = instructions(backend.messages[0])
    assert INTENT_INSTRUCTIONS["suggest"] in system
    conversation = [m["content"] for m in backend.messages[0] if m["role"] != "system"]
    assert conversation == [t.text for t in HISTORY]


async def test_without_a_planner_open_intents_get_the_default() -> None:
    items = await collect(service(ScriptedBackend()).generate(ReplyRequest(history=HISTORY)))

    assert items[0] == DEFAULT_INTENT == "validate"


async def test_a_failing_planner_falls_back_to_the_default_intent(
    caplog: pytest.LogCaptureFixture,
) -> None:
    planner = ScriptedPlanner(error=RuntimeError("planner weights missing"))

    items = await collect(
        service(ScriptedBackend(), planner).generate(ReplyRequest(history=HISTORY))
    )

    assert items == [DEFAULT_INTENT, "I hear ", "you."]
    assert "intent planning failed" in caplog.text


async def test_an_intent_the_prompt_does_not_know_becomes_other() -> None:
    items = await collect(
        service(ScriptedBackend(), ScriptedPlanner("banter")).generate(
            ReplyRequest(history=HISTORY)
        )
    )

    assert items[0] == "other"


async def test_the_intent_is_sent_before_the_reply_waits_for_the_model() -> None:
    backend = ScriptedBackend()
    running = backend.admit()
    await running.start()  # another reply holds the model
    stream = service(backend).generate(ReplyRequest(history=HISTORY, intent="validate"))

    assert await asyncio.wait_for(anext(stream), timeout=1) == "validate"
    waiting = asyncio.create_task(anext(stream))
    await asyncio.sleep(0.02)
    assert not waiting.done()

    running.release()
    assert await waiting == "I hear "
    await stream.aclose()


async def test_a_full_queue_is_refused_before_anything_is_yielded() -> None:
    backend = ScriptedBackend(max_queued=1)
    held = [backend.admit(), backend.admit()]
    replies = service(backend)

    with pytest.raises(Busy):
        await anext(replies.generate(ReplyRequest(history=HISTORY, intent="validate")))

    assert backend.messages == []
    for place in held:
        place.release()
    assert backend.queue.admitted == 0


async def test_a_model_failure_mid_reply_propagates_after_the_partial_reply() -> None:
    backend = ScriptedBackend(pieces=("One. ", "Two. ", "Three."))
    backend.fail_after = 2
    got: list[str] = []

    with pytest.raises(RuntimeError, match="model failed"):
        async for item in service(backend).generate(ReplyRequest(history=HISTORY)):
            got.append(item)

    assert got == ["validate", "One. ", "Two. "]
    assert backend.queue.admitted == 0


@pytest.mark.parametrize("after", [1, 2])
async def test_closing_the_reply_closes_the_model_stream_and_frees_the_place(after: int) -> None:
    backend = ScriptedBackend(pieces=("a ",) * 50)
    stream = service(backend).generate(ReplyRequest(history=HISTORY))
    for _ in range(after):
        await anext(stream)

    await stream.aclose()

    assert backend.closed_streams == (1 if after > 1 else 0)
    assert backend.queue.admitted == 0


async def test_risk_shapes_the_prompt_with_the_deployments_crisis_lines() -> None:
    backend = ScriptedBackend()
    replies = service(backend)

    await collect(replies.generate(ReplyRequest(history=HISTORY, risk_level="medium")))
    await collect(
        replies.generate(ReplyRequest(history=HISTORY, intent="safety_check_in", risk_level="high"))
    )

    medium, high = (instructions(messages) for messages in backend.messages)
    assert "checking in on how they are coping" in medium
    assert "116 123" not in medium
    assert "call or text 116 123" in high
    assert "HOME to 85258" in high


# The deployment class, constructed in-process as Serve would construct it.


def settings() -> Settings:
    return Settings(model_cache_dir=MODEL_CACHE_DIR, crisis_hotline="988", crisis_text="741741")


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(Script(pieces=("You are ", "not alone."))) as running:
        yield running


def openai_options(server: FakeOpenAIServer, **kw: Any) -> GeneratorOptions:
    block = {"base_url": server.base_url, "model": "served-model", "api_key_env": None}
    return GeneratorOptions.model_validate({"backend": "openai", "openai": block} | kw)


async def test_deployment_with_the_openai_backend_streams_intent_then_text(
    server: FakeOpenAIServer,
) -> None:
    deployment = Deployed(openai_options(server, planner=False), settings())

    items = await collect(deployment.generate(ReplyRequest(history=HISTORY)))

    assert items == ["validate", "You are ", "not alone."]
    assert server.record.requests[0]["model"] == "served-model"
    assert server.record.requests[0]["max_tokens"] == 160


async def test_deployment_uses_an_injected_planner(server: FakeOpenAIServer) -> None:
    planner = ScriptedPlanner("reassure")
    deployment = Deployed(openai_options(server), settings(), planner)

    items = await collect(deployment.generate(ReplyRequest(history=HISTORY)))

    assert items[0] == "reassure"
    assert planner.contexts


def test_openai_backend_without_its_block_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="needs an `openai:` block"):
        GeneratorOptions.model_validate({"backend": "openai"})


async def test_deployment_with_the_local_model_streams_and_stops_when_closed() -> None:
    if not is_prepared(model_dir(MODEL_CACHE_DIR)):
        pytest.skip("language model not prepared; run `make setup`")
    options = GeneratorOptions(
        planner=False, device="cpu", threads=1, max_new_tokens=300, candidates=1
    )
    # The thread count is process-wide: put back for the tests that follow.
    threads_before = torch.get_num_threads()
    deployment = Deployed(options, settings())
    backend = deployment._service.backend
    request = ReplyRequest(history=HISTORY, intent="reflect")
    try:
        stream = deployment.generate(request)
        assert await anext(stream) == "reflect"
        pieces = [await anext(stream) for _ in range(3)]

        closed_at = time.perf_counter()
        await stream.aclose()
        stopped_in = time.perf_counter() - closed_at
    finally:
        deployment.__del__()
        torch.set_num_threads(threads_before)

    assert all(pieces)
    assert stopped_in < 0.2
    assert backend.queue.admitted == 0


async def test_deployment_with_the_local_model_drafts_three_and_sends_one() -> None:
    if not is_prepared(model_dir(MODEL_CACHE_DIR)):
        pytest.skip("language model not prepared; run `make setup`")
    options = GeneratorOptions(planner=False, device="cpu", threads=1, max_new_tokens=40)
    threads_before = torch.get_num_threads()
    deployment = Deployed(options, settings())
    backend = deployment._service.backend
    streams: list[str | None] = []
    sample = backend.stream

    def counted(*args: Any, **kwargs: Any) -> AsyncGenerator[str, None]:
        streams.append(kwargs.get("cache_key"))
        return sample(*args, **kwargs)

    backend.stream = counted  # type: ignore[method-assign]
    request = ReplyRequest(history=HISTORY, session_id="s1")
    try:
        items = [item async for item in deployment.generate(request)]
    finally:
        deployment.__del__()
        torch.set_num_threads(threads_before)

    assert items[0] == "validate"
    assert "".join(items[1:]).strip()
    assert streams == ["s1", None, None]
    assert backend.queue.admitted == 0
