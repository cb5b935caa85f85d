"""The pieces of continuous batching with small tensors: batch cache, prefix cache, sampling,
piece coalescing. No model is loaded here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator

import pytest
import torch
from transformers import RepetitionPenaltyLogitsProcessor

from models.llm.backend import GenerationParams
from models.llm.coalesce import coalesce
from models.llm.kv_batch import BatchKV
from models.llm.prefix_cache import PrefixCache
from models.llm.sampling import Sampler, sample

HEADS, DIM, LAYERS = 2, 4, 3


def row(length: int, fill: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    values = torch.full((1, HEADS, length, DIM), fill)
    return [(values.clone(), -values.clone()) for _ in range(LAYERS)]


def test_rows_of_different_lengths_are_left_padded_and_masked() -> None:
    batch = BatchKV()
    batch.add(row(3, 1.0))
    batch.add(row(5, 2.0))

    assert batch.pads == [2, 0]
    assert batch.length == 5
    keys = batch.cache.layers[0].keys  # type: ignore[union-attr]
    assert keys.shape == (2, HEADS, 5, DIM)
    assert torch.equal(keys[0, :, 2:], torch.full((HEADS, 3, DIM), 1.0))
    assert torch.equal(keys[1], torch.full((HEADS, 5, DIM), 2.0))
    assert batch.attention_mask(torch.device("cpu")).tolist() == [
        [0, 0, 1, 1, 1, 1],
        [1, 1, 1, 1, 1, 1],
    ]


def test_decode_writes_grow_the_buffer_in_place_past_its_headroom() -> None:
    batch = BatchKV()
    batch.add(row(2, 1.0))
    layer = batch.cache.layers[0]  # type: ignore[union-attr]
    for step in range(100):
        new = torch.full((1, HEADS, 1, DIM), float(step))
        keys, _ = layer.update(new, new)

    assert keys.shape[-2] == 102
    assert torch.equal(keys[0, :, -1], torch.full((HEADS, DIM), 99.0))
    assert torch.equal(keys[0, :, :2], torch.full((HEADS, 2, DIM), 1.0))


def test_keeping_rows_drops_the_others_and_padding_no_row_needs() -> None:
    batch = BatchKV()
    batch.add(row(2, 1.0))
    batch.add(row(6, 2.0))
    batch.add(row(4, 3.0))

    batch.keep([2, 0])

    assert batch.pads == [0, 2]
    assert batch.length == 4
    keys = batch.cache.layers[1].keys  # type: ignore[union-attr]
    assert torch.equal(keys[0], torch.full((HEADS, 4, DIM), 3.0))
    assert torch.equal(keys[1, :, 2:], torch.full((HEADS, 2, DIM), 1.0))
    batch.keep([])
    assert len(batch) == 0 and batch.cache is None


def prefix_layers(length: int, fill: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return row(length, fill)


def test_prefix_lookup_finds_the_longest_kept_whole_blocks_and_leaves_a_token() -> None:
    cache = PrefixCache(block=4, max_bytes=1 << 20)
    ids = list(range(10))
    cache.store("s1", ids, prefix_layers(10, 1.0))

    # Kept: the whole blocks of ids[:9] -> 8 tokens.
    length, layers = cache.lookup([*ids[:9], 99, 98])
    assert length == 8
    assert layers[0][0].shape[-2] == 8
    # A prompt equal to the kept part must still read its last token itself.
    assert cache.lookup(ids[:8])[0] == 4
    assert cache.lookup([5, *ids])[0] == 0


def test_prefix_blocks_are_shared_between_conversations() -> None:
    cache = PrefixCache(block=4, max_bytes=1 << 20)
    system = [1, 2, 3, 4, 5, 6, 7, 8]
    cache.store("a", [*system, 10, 11, 12, 13, 14], prefix_layers(13, 1.0))

    assert cache.lookup([*system, 20, 21])[0] == 8


def test_a_hash_match_with_different_tokens_is_not_reused(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = PrefixCache(block=2, max_bytes=1 << 20)
    monkeypatch.setattr("models.llm.prefix_cache.block_hashes", lambda ids, block, limit: iter([7]))
    cache.store("a", [1, 2, 3], prefix_layers(3, 1.0))

    assert cache.lookup([8, 9, 3])[0] == 0


def test_prefix_cache_replaces_a_sessions_entry_evicts_by_bytes_and_forgets() -> None:
    now = [0.0]
    cache = PrefixCache(block=2, max_bytes=10_000, clock=lambda: now[0])
    cache.store("a", [1, 2, 3], prefix_layers(3, 1.0))
    size = cache.nbytes
    cache.store("a", [1, 2, 3, 4, 5], prefix_layers(5, 1.0))
    assert len(cache) == 1 and cache.nbytes == 2 * size

    cache.max_bytes = int(2.5 * size)
    now[0] = 1.0
    cache.store("b", [7, 8, 9], prefix_layers(3, 2.0))
    assert "a" not in cache and "b" in cache
    assert cache.forget("b") and cache.nbytes == 0
    assert cache.lookup([7, 8, 9])[0] == 0


def test_idle_entries_expire() -> None:
    now = [0.0]
    cache = PrefixCache(block=2, max_bytes=1 << 20, idle_s=60, clock=lambda: now[0])
    cache.store("a", [1, 2, 3], prefix_layers(3, 1.0))
    now[0] = 61.0

    assert cache.lookup([1, 2, 3])[0] == 0
    assert len(cache) == 0


def sampler(**params: float) -> Sampler:
    return Sampler(GenerationParams(seed=1, **params), [], torch.device("cpu"))


def test_greedy_rows_take_the_highest_score_after_the_repetition_penalty() -> None:
    scores = torch.tensor([[1.0, 3.0, 2.9], [5.0, 1.0, 0.0]])
    penalised = sampler(temperature=0.0, repetition_penalty=1.5)
    penalised.penalise(1)
    plain = sampler(temperature=0.0)

    # The same arithmetic as transformers' processor: 3.0 / 1.5 falls below 2.9.
    reference = RepetitionPenaltyLogitsProcessor(1.5)(torch.tensor([[1]]), scores[:1].clone())
    assert int(reference.argmax()) == 2
    assert sample(scores, [penalised, plain]) == [2, 0]


def test_top_p_never_samples_outside_the_nucleus() -> None:
    # Probabilities 0.5, 0.3, 0.15, 0.05: at top_p 0.7 only the first two may be chosen.
    logits = torch.log(torch.tensor([[0.5, 0.3, 0.15, 0.05]]))
    row_sampler = sampler(temperature=1.0, top_p=0.7, repetition_penalty=1.0)

    picks = {sample(logits.clone(), [row_sampler])[0] for _ in range(300)}

    assert picks == {0, 1}


def test_flat_distributions_past_the_first_candidates_fall_back_to_a_full_sort() -> None:
    logits = torch.zeros((1, 1000))
    row_sampler = sampler(temperature=1.0, top_p=0.9, repetition_penalty=1.0)

    picks = {sample(logits.clone(), [row_sampler])[0] for _ in range(200)}

    # Any of the 900 nucleus tokens can come up, far beyond the 256 looked at first.
    assert max(picks) > 256


def test_each_row_keeps_its_own_random_sequence_whatever_its_neighbours() -> None:
    logits = torch.randn((1, 500), generator=torch.Generator().manual_seed(0))
    alone = sample(logits.clone(), [sampler(repetition_penalty=1.0)])
    beside = sample(
        torch.cat([torch.randn((1, 500)), logits]),
        [sampler(repetition_penalty=1.0), sampler(repetition_penalty=1.0)],
    )

    assert beside[1] == alone[0]


async def timed(pieces: list[tuple[float, str]]) -> AsyncGenerator[str, None]:
    for delay, piece in pieces:
        await asyncio.sleep(delay)
        yield piece


async def test_coalescing_sends_the_first_piece_at_once_and_joins_fast_ones() -> None:
    source = timed([(0, "I"), (0.001, " hear"), (0.001, " you"), (0.001, "."), (0.05, " Tell")])
    started = time.monotonic()
    out: list[tuple[float, str]] = []
    async for piece in coalesce(source, 0.03):
        out.append((time.monotonic() - started, piece))

    assert out[0][1] == "I" and out[0][0] < 0.02
    assert "".join(p for _, p in out) == "I hear you. Tell"
    assert len(out) < 5


async def test_slow_pieces_pass_through_one_by_one() -> None:
    source = timed([(0.04, "a"), (0.04, " b"), (0.04, " c")])

    assert [p async for p in coalesce(source, 0.02)] == ["a", " b", " c"]


async def test_an_error_after_some_pieces_reaches_the_consumer_after_them() -> None:
    async def failing() -> AsyncGenerator[str, None]:
        yield "a"
        yield " b"
        raise RuntimeError("model failed")

    got: list[str] = []
    with pytest.raises(RuntimeError, match="model failed"):
        async for piece in coalesce(failing(), 0.03):
            got.append(piece)
    assert "".join(got) == "a b"


async def test_closing_the_coalesced_stream_closes_its_source() -> None:
    closed = asyncio.Event()

    async def endless() -> AsyncGenerator[str, None]:
        try:
            while True:
                await asyncio.sleep(0.005)
                yield "x"
        finally:
            closed.set()

    stream = coalesce(endless(), 0.03)
    await anext(stream)
    await stream.aclose()

    assert closed.is_set()
