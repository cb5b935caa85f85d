"""Continuous batching and the prefix cache, on the real prepared SmolLM2 model.

Equality tests load the model in float32: in bfloat16, a row's numbers depend slightly on the
shape of the batch it shares, which can flip a near-tie between two tokens.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import torch

from models.llm.backend import GenerationParams
from models.llm.batcher import BatchLimits
from models.llm.generation import TransformersBackend
from models.llm.prompt import ChatTurn, build_messages
from models.llm.sampling import Sampler
from tests.llm_backend import loaded_backend

# Only catches a reply that went on after its close; how fast it stops is a benchmark's figure.
HANG_GUARD_S = 5.0
PEOPLE = [
    "I feel anxious about my exam tomorrow.",
    "My sister stopped talking to me and I don't know why.",
    "I can't sleep lately, my head keeps racing.",
    "Work is overwhelming me this month.",
]


@pytest.fixture(scope="module")
def exact() -> Iterator[TransformersBackend]:
    with loaded_backend(torch.float32) as loaded:
        yield loaded


@pytest.fixture(scope="module")
def served() -> Iterator[TransformersBackend]:
    """The model as served (bfloat16 where the CPU has it): the timing tests' model."""
    with loaded_backend() as loaded:
        yield loaded


def fresh(
    backend: TransformersBackend, *, max_queued: int = 16, **limits: Any
) -> TransformersBackend:
    """A backend on the same weights with its own batcher, queue and prefix cache."""
    return TransformersBackend(
        backend.model,
        backend.tokenizer,
        device=torch.device("cpu"),
        threads=1,
        max_queued=max_queued,
        limits=BatchLimits(**limits),
    )


def chat(backend: TransformersBackend, *turns: str) -> list[dict[str, str]]:
    history = [
        ChatTurn("user" if index % 2 == 0 else "assistant", text)
        for index, text in enumerate(turns)
    ]
    return build_messages(
        history,
        intent="validate",
        risk_level="none",
        tokenizer=backend.tokenizer,
        max_prompt_tokens=1024,
    )


async def until(condition: Callable[[], bool], timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def token_count(
    backend: TransformersBackend, messages: list[dict[str, str]], **params: Any
) -> int:
    return len([t async for t in backend.stream_tokens(messages, GenerationParams(**params))])


async def reply(
    backend: TransformersBackend,
    messages: list[dict[str, str]],
    cache_key: str | None = None,
    **params: Any,
) -> str:
    pieces = backend.stream(messages, GenerationParams(**params), cache_key=cache_key)
    return "".join([piece async for piece in pieces])


@pytest.mark.parametrize("sampling", [{"temperature": 0.0}, {"seed": 11}], ids=["greedy", "seeded"])
async def test_replies_decoded_together_match_each_decoded_alone(
    exact: TransformersBackend, sampling: dict[str, Any]
) -> None:
    prompts = [chat(exact, text) for text in PEOPLE]
    alone = [await reply(exact, p, max_new_tokens=24, **sampling) for p in prompts]

    together = await asyncio.gather(
        *(reply(exact, p, max_new_tokens=24, **sampling) for p in prompts)
    )

    assert list(together) == alone
    assert all(alone)


async def test_cancelling_one_of_four_takes_it_out_of_the_batch_and_the_others_complete(
    served: TransformersBackend,
) -> None:
    local = fresh(served)
    # Every reply runs to its length bound, so all four are surely in the batch together.
    local.batcher.stop_ids, local.batcher.finished = frozenset(), lambda reply: False
    prompts = [chat(local, text) for text in PEOPLE]
    cancelled = local.stream(prompts[0], GenerationParams(max_new_tokens=300, seed=1))
    others = [
        asyncio.create_task(asyncio.wait_for(token_count(local, p, max_new_tokens=60, seed=2), 120))
        for p in prompts[1:]
    ]
    await anext(cancelled)
    await until(lambda: local.batcher.batch_size == 4)

    closed_at = time.perf_counter()
    await cancelled.aclose()
    stopped_in = time.perf_counter() - closed_at

    # aclose returns once the worker's pass under way is done and the reply has left the batch.
    assert stopped_in < HANG_GUARD_S
    assert local.batcher.batch_size == 3
    assert await asyncio.gather(*others) == [60, 60, 60]
    assert local.queue.admitted == 0
    assert local.batcher.in_flight == 0
    local.close()


async def test_a_failure_inside_one_reply_ends_that_reply_only(
    served: TransformersBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = fresh(served)
    local.batcher.stop_ids, local.batcher.finished = frozenset(), lambda reply: False
    original = Sampler.penalise

    def failing_for_seed_13(self: Sampler, token_id: int) -> None:
        if self.rng.initial_seed() == 13 and len(self.penalised) > 3:
            raise RuntimeError("this reply's sampling broke")
        original(self, token_id)

    monkeypatch.setattr(Sampler, "penalise", failing_for_seed_13)
    prompts = [chat(local, text) for text in PEOPLE[:3]]

    outcomes = await asyncio.gather(
        token_count(local, prompts[0], max_new_tokens=30, seed=1),
        token_count(local, prompts[1], max_new_tokens=30, seed=13),
        token_count(local, prompts[2], max_new_tokens=30, seed=2),
        return_exceptions=True,
    )

    assert outcomes[0] == outcomes[2] == 30
    assert isinstance(outcomes[1], RuntimeError)
    assert local.queue.admitted == 0 and local.batcher.in_flight == 0
    local.close()


async def test_a_reply_whose_consumer_disappears_frees_its_place(
    exact: TransformersBackend,
) -> None:
    local = fresh(exact, max_batch_size=1, max_queued=0)
    prompt = chat(local, PEOPLE[0])

    async def consume() -> None:
        async for _ in local.stream(prompt, GenerationParams(max_new_tokens=300, seed=1)):
            pass

    task = asyncio.create_task(consume())
    await until(lambda: local.batcher.batch_size > 0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert local.queue.admitted == 0
    assert local.batcher.in_flight == 0
    # The only place is free again: the next reply is admitted and runs.
    assert await reply(local, prompt, max_new_tokens=6, seed=1)
    local.close()


async def test_requests_past_the_batch_wait_in_the_queue_and_all_complete(
    exact: TransformersBackend,
) -> None:
    local = fresh(exact, max_batch_size=2, max_queued=4)
    prompt = chat(local, PEOPLE[1])

    replies = await asyncio.gather(
        *(reply(local, prompt, max_new_tokens=8, seed=s) for s in range(6))
    )

    assert all(replies)
    assert local.queue.admitted == 0
    local.close()


async def test_prefix_cache_gives_the_same_reply_as_reading_the_whole_prompt(
    exact: TransformersBackend,
) -> None:
    cached, uncached = fresh(exact), fresh(exact)
    uncached.prefix_cache.max_bytes = 0
    opening = " ".join(PEOPLE)
    turns = [opening, "That sounds like a lot at once. Which of these weighs on you most today?"]
    first, second = chat(cached, *turns[:1]), chat(cached, *turns, "The exam, I think.")

    assert await reply(cached, first, "s1", seed=3, max_new_tokens=20) == await reply(
        uncached, first, None, seed=3, max_new_tokens=20
    )
    hits_before = cached.prefix_cache.reused_tokens
    with_cache = await reply(cached, second, "s1", seed=4, max_new_tokens=20)
    without = await reply(uncached, second, None, seed=4, max_new_tokens=20)

    # The second turn started from the first turn's prompt, and wrote the same reply.
    assert cached.prefix_cache.reused_tokens - hits_before >= 128
    assert with_cache == without
    cached.close()
    uncached.close()


async def test_prefix_cache_is_dropped_when_its_session_is_forgotten(
    exact: TransformersBackend,
) -> None:
    local = fresh(exact)
    await reply(local, chat(local, PEOPLE[2]), "session-a", seed=1, max_new_tokens=4)
    assert "session-a" in local.prefix_cache

    assert local.forget("session-a")

    assert "session-a" not in local.prefix_cache
    assert local.prefix_cache.nbytes == 0
    assert not local.forget("session-a")
    local.close()


async def test_prefix_cache_evicts_the_least_recently_used_past_its_bound(
    exact: TransformersBackend,
) -> None:
    local = fresh(exact)
    await reply(local, chat(local, PEOPLE[0]), "first", seed=1, max_new_tokens=2)
    one_entry = local.prefix_cache.nbytes
    local.prefix_cache.max_bytes = int(one_entry * 1.5)

    await reply(local, chat(local, PEOPLE[1]), "second", seed=1, max_new_tokens=2)

    assert "first" not in local.prefix_cache
    assert "second" in local.prefix_cache
    assert local.prefix_cache.nbytes <= local.prefix_cache.max_bytes
    local.close()
