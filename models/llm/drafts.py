"""Several replies to one prompt, written together until each has its first sentence.

The service samples a few drafts in the model's batch, reads each up to the end of its first
sentence, lets `ReplyChooser` pick one, stops the others, and streams the rest of the chosen
one sentence by sentence as each passes `models.llm.later_sentences`. The person waits for one
sentence of three drafts, not for three whole replies. Each draft is held to the reply's shape
(`ReplyShape`) from its first piece.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from enum import Enum

from models.llm.admission import Admission
from models.llm.backend import ChatBackend, GenerationParams
from models.llm.reply_shape import ReplyShape, count_sentences


class DraftState(Enum):
    WRITING = "writing"  # the model may still add to it
    ENDED = "ended"  # the model stopped, or the shape ended it
    DROPPED = "dropped"  # not chosen; its stream was closed


@dataclass(eq=False)
class Draft:
    """One candidate reply: its model stream, the text released so far, and its shape."""

    stream: AsyncGenerator[str, None]
    shape: ReplyShape | None
    text: str = ""
    state: DraftState = field(default=DraftState.WRITING)

    async def first_sentence(self) -> None:
        """Read until the released text holds a whole sentence, or the draft ends."""
        while self.state is DraftState.WRITING and count_sentences(self.text) < 1:
            await self._next()

    async def rest(self) -> AsyncGenerator[str, None]:
        """Each further piece as it is written, to the draft's end."""
        while self.state is DraftState.WRITING:
            piece = await self._next()
            if piece:
                yield piece

    async def drop(self) -> None:
        """Stop the model for this draft; its place is given back by the stream."""
        if self.state is not DraftState.DROPPED:
            self.state = DraftState.DROPPED
            await self.stream.aclose()

    async def _next(self) -> str:
        try:
            delta = await anext(self.stream)
        except StopAsyncIteration:
            self.state = DraftState.ENDED
            rest = self.shape.finish() if self.shape is not None else ""
            self.text += rest
            return rest
        if self.shape is None:
            self.text += delta
            return delta
        piece = self.shape.add(delta)
        self.text += piece.send
        if piece.stop:
            self.state = DraftState.ENDED
            await self.stream.aclose()
        return piece.send


def open_drafts(
    backend: ChatBackend,
    messages: Sequence[dict[str, str]],
    params: GenerationParams,
    admissions: Sequence[Admission],
    *,
    cache_key: str | None,
    max_sentences: int,
) -> list[Draft]:
    """One draft per admission. The first keeps the conversation's prompt state under
    `cache_key`; a seeded request gives the others the next seeds."""

    def seeded(index: int) -> GenerationParams:
        if params.seed is None or index == 0:
            return params
        return params.model_copy(update={"seed": params.seed + index})

    return [
        Draft(
            backend.stream(messages, seeded(i), admission, cache_key=cache_key if i == 0 else None),
            ReplyShape(max_sentences) if max_sentences > 0 else None,
        )
        for i, admission in enumerate(admissions)
    ]


async def read_together(drafts: Sequence[Draft], *, whole: bool = False) -> None:
    """Every draft to its first sentence (or, `whole`, to its end), all at once.

    If one fails or the caller is cancelled, the others are stopped before this returns.
    """

    async def read(draft: Draft) -> None:
        if whole:
            async for _ in draft.rest():
                pass
        else:
            await draft.first_sentence()

    tasks = [asyncio.create_task(read(draft)) for draft in drafts]
    try:
        await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await drop_all(drafts)
        raise


async def drop_all(drafts: Sequence[Draft], keep: Draft | None = None) -> None:
    for draft in drafts:
        if draft is not keep:
            await draft.drop()
