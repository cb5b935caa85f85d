"""The OpenAI-compatible backend over real HTTP, against a scripted server on loopback."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from haven.errors import Busy
from models.llm.backend import GenerationParams
from models.llm.openai_backend import (
    IncompleteReply,
    OpenAIBackend,
    OpenAIOptions,
    api_key,
    is_loopback,
)
from tests.openai_server import FakeOpenAIServer, Script

MESSAGES = [
    {"role": "system", "content": "Be kind."},
    {"role": "user", "content": "I had a rough day."},
]
PARAMS = GenerationParams(max_new_tokens=64, temperature=0.5, top_p=0.8, seed=3)
SLOW = Script(pieces=tuple(f"word{i} " for i in range(200)), delay_s=0.05)


@pytest.fixture
def server() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer() as running:
        yield running


def backend_for(server: FakeOpenAIServer, max_queued: int = 8, **options: Any) -> OpenAIBackend:
    settings: dict[str, Any] = {"base_url": server.base_url, "model": "test-model"} | options
    return OpenAIBackend(OpenAIOptions(**settings), max_queued=max_queued, retry_backoff_s=0.01)


async def collect(backend: OpenAIBackend, params: GenerationParams = PARAMS) -> list[str]:
    return [piece async for piece in backend.stream(MESSAGES, params)]


async def test_reply_streams_piece_by_piece_with_the_request_settings(
    server: FakeOpenAIServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_LLM_KEY", "sk-test-123")
    backend = backend_for(server, api_key_env="TEST_LLM_KEY", extra_body={"top_k": 40})

    pieces = await collect(backend)
    await backend.aclose()

    assert pieces == ["I hear you. ", "That sounds ", "really hard."]
    request = server.record.requests[0]
    assert request["model"] == "test-model"
    assert request["messages"] == MESSAGES
    assert request["stream"] is True
    assert (request["max_tokens"], request["temperature"], request["top_p"]) == (64, 0.5, 0.8)
    assert (request["seed"], request["top_k"]) == (3, 40)
    assert server.record.headers[0]["authorization"] == "Bearer sk-test-123"
    assert server.record.completed == 1


async def test_failures_before_the_first_token_are_retried_within_the_bound(
    server: FakeOpenAIServer,
) -> None:
    server.then(Script(status=503), Script(status=503))
    backend = backend_for(server, max_retries=2)

    pieces = await collect(backend)
    await backend.aclose()

    assert "".join(pieces) == "I hear you. That sounds really hard."
    assert len(server.record.requests) == 3


async def test_retries_stop_at_max_retries(server: FakeOpenAIServer) -> None:
    server.then(Script(status=503), Script(status=502), Script(status=503))
    backend = backend_for(server, max_retries=1)

    with pytest.raises(openai.InternalServerError):
        await collect(backend)
    await backend.aclose()

    assert len(server.record.requests) == 2
    assert backend.queue.admitted == 0


async def test_client_errors_are_not_retried(server: FakeOpenAIServer) -> None:
    server.then(Script(status=401))
    backend = backend_for(server, max_retries=3)

    with pytest.raises(openai.AuthenticationError):
        await collect(backend)
    await backend.aclose()

    assert len(server.record.requests) == 1


async def test_stream_dropped_mid_reply_raises_after_the_partial_reply_without_retry(
    server: FakeOpenAIServer,
) -> None:
    server.then(Script(pieces=("One. ", "Two. ", "Three. ", "Four."), drop_after=2))
    backend = backend_for(server, max_retries=3)
    got: list[str] = []

    with pytest.raises(openai.APIConnectionError):
        async for piece in backend.stream(MESSAGES, PARAMS):
            got.append(piece)
    await backend.aclose()

    assert got == ["One. ", "Two. "]
    assert len(server.record.requests) == 1
    assert backend.queue.admitted == 0


async def test_stream_dropped_before_any_text_is_retried(server: FakeOpenAIServer) -> None:
    server.then(Script(drop_after=0))
    backend = backend_for(server, max_retries=1)

    pieces = await collect(backend)
    await backend.aclose()

    assert "".join(pieces) == "I hear you. That sounds really hard."
    assert len(server.record.requests) == 2


async def test_stream_that_ends_without_a_finish_reason_is_an_error(
    server: FakeOpenAIServer,
) -> None:
    server.then(Script(finish_reason=None))
    backend = backend_for(server, max_retries=0)

    with pytest.raises(IncompleteReply):
        await collect(backend)
    await backend.aclose()


async def test_requests_beyond_concurrency_and_queue_get_busy_at_once(
    server: FakeOpenAIServer,
) -> None:
    server.default = SLOW
    backend = backend_for(server, max_concurrent=2, max_queued=1)
    streams = [backend.stream(MESSAGES, PARAMS) for _ in range(3)]
    first_pieces = [asyncio.create_task(anext(stream)) for stream in streams]
    await asyncio.gather(*first_pieces[:2])
    await asyncio.sleep(0.05)
    assert not first_pieces[2].done()  # waiting for one of the two to finish

    refused = backend.stream(MESSAGES, PARAMS)
    started = time.perf_counter()
    with pytest.raises(Busy):
        await anext(refused)
    refused_in = time.perf_counter() - started
    assert (server.record.active, server.record.max_active) == (2, 2)

    await streams[0].aclose()
    assert await first_pieces[2]
    for stream in streams[1:]:
        await stream.aclose()
    await backend.aclose()

    assert refused_in < 0.05
    assert len(server.record.requests) == 3
    assert backend.queue.admitted == 0


async def test_closing_the_stream_closes_the_http_connection(server: FakeOpenAIServer) -> None:
    server.default = SLOW
    backend = backend_for(server)
    stream = backend.stream(MESSAGES, PARAMS)
    await anext(stream)
    await anext(stream)

    closed_at = time.perf_counter()
    await stream.aclose()
    assert await asyncio.to_thread(server.record.disconnected.wait, 2)
    await backend.aclose()

    assert server.record.disconnected_at is not None
    assert server.record.disconnected_at - closed_at < 0.2
    assert server.record.completed == 0


async def test_cancelling_the_consumer_closes_the_http_connection(
    server: FakeOpenAIServer,
) -> None:
    server.default = SLOW
    backend = backend_for(server)
    reading = asyncio.Event()

    async def consume() -> None:
        async for _ in backend.stream(MESSAGES, PARAMS):
            reading.set()

    task = asyncio.create_task(consume())
    await reading.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert await asyncio.to_thread(server.record.disconnected.wait, 2)
    await backend.aclose()
    assert backend.queue.admitted == 0


async def test_a_silent_server_times_out(server: FakeOpenAIServer) -> None:
    server.default = Script(first_delay_s=3)
    backend = backend_for(server, timeout_s=0.3, max_retries=1)

    started = time.perf_counter()
    with pytest.raises(openai.APITimeoutError):
        await collect(backend)
    elapsed = time.perf_counter() - started
    await backend.aclose()

    # One retry: two waits of timeout_s, well before the server would have answered.
    assert len(server.record.requests) == 2
    assert 0.6 <= elapsed < 2


async def test_a_server_that_stalls_mid_reply_times_out_without_retry(
    server: FakeOpenAIServer,
) -> None:
    server.then(Script(pieces=("Hello. ", "there", " again."), stall_at=1, stall_s=3))
    backend = backend_for(server, timeout_s=0.3, max_retries=2)
    got: list[str] = []

    with pytest.raises(openai.APITimeoutError):
        async for piece in backend.stream(MESSAGES, PARAMS):
            got.append(piece)
    await backend.aclose()

    assert got == ["Hello. "]
    assert len(server.record.requests) == 1


async def test_reply_cut_by_the_length_bound_ends_at_its_last_sentence(
    server: FakeOpenAIServer,
) -> None:
    # Each chunk counts as a token; the last 10 of 40 are the window held back.
    pieces = ("It", *[f" w{i}" for i in range(29)], " done.", " Maybe", *[" you"] * 8)
    server.then(Script(pieces=pieces, finish_reason="length"))
    backend = backend_for(server)

    text = "".join(await collect(backend, GenerationParams(max_new_tokens=len(pieces))))
    await backend.aclose()

    assert text == "It" + "".join(f" w{i}" for i in range(29)) + " done."


def test_missing_api_key_is_a_startup_error_unless_the_server_is_local(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("HAVEN_TEST_MISSING_KEY", raising=False)
    remote = OpenAIOptions(
        base_url="https://api.example.com/v1", model="m", api_key_env="HAVEN_TEST_MISSING_KEY"
    )

    with pytest.raises(ValueError, match="HAVEN_TEST_MISSING_KEY is not set"):
        OpenAIBackend(remote)
    local = remote.model_copy(update={"base_url": "http://127.0.0.1:8000/v1"})
    assert api_key(local) == "not-needed"
    keyless = remote.model_copy(update={"api_key_env": None})
    assert api_key(keyless) == "not-needed"


@pytest.mark.parametrize(
    ("url", "loopback"),
    [
        ("http://localhost:11434/v1", True),
        ("http://127.0.0.1:8000/v1", True),
        ("http://[::1]:8080/v1", True),
        ("https://api.openai.com/v1", False),
        ("http://10.0.0.5:8000/v1", False),
        ("http://localhost.evil.com/v1", False),
    ],
)
def test_loopback_detection(url: str, loopback: bool) -> None:
    assert is_loopback(url) is loopback
