"""One reply, start to end: queue place, intent, prompt, streamed text.

The Serve deployment (`deployments.generator.ResponseGenerator`) is a thin wrapper around this
class, so everything here runs in-process in tests, with any backend and any planner.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Sequence
from contextlib import aclosing
from typing import Protocol

from haven.backends import ChatTurn, ReplyRequest
from haven.risk import RISK_LEVELS, RiskLevel
from models.llm.admission import Admission
from models.llm.backend import ChatBackend, GenerationParams
from models.llm.candidates import ReplyChooser
from models.llm.coalesce import DEFAULT_INTERVAL_S, coalesce
from models.llm.drafts import drop_all, open_drafts, read_together
from models.llm.later_sentences import LaterSentences, LaterState, checked
from models.llm.prompt import build_messages, resolve_intent
from models.llm.reply_shape import DEFAULT_MAX_SENTENCES, ReplyShape

logger = logging.getLogger(__name__)

# What a turn carries out when the planner is off or fails: acknowledging the feeling is the
# reply that is right most often and harmful least often.
DEFAULT_INTENT = "validate"


class PlannedIntent(Protocol):
    @property
    def intent(self) -> str: ...


class IntentPlanner(Protocol):
    """Chooses what the next reply should do (`models.intent.planner.IntentPlanner`)."""

    def plan(self, context: Sequence[ChatTurn]) -> PlannedIntent: ...


class ReplyService:
    def __init__(
        self,
        backend: ChatBackend,
        params: GenerationParams,
        *,
        max_prompt_tokens: int,
        crisis_hotline: str,
        crisis_text: str,
        planner: IntentPlanner | None = None,
        coalesce_s: float = DEFAULT_INTERVAL_S,
        max_sentences: int = DEFAULT_MAX_SENTENCES,
        candidates: int = 1,
        chooser: ReplyChooser | None = None,
        drafts_max_batch: int = 4,
    ) -> None:
        """`coalesce_s`: text written within this long of the last piece sent goes out with
        the next one (`models.llm.coalesce`); 0 sends every piece as it comes.
        `max_sentences`: a reply stops after this many sentences or where it starts writing
        another turn (`models.llm.reply_shape`); 0: only the token bound applies.
        `candidates`: drafts sampled per turn while batch places are free; `chooser` picks one at
        the end of their first sentences (`models.llm.drafts`), and its first sentence goes out
        whole, then each later sentence whole once it passes the chooser's person and question
        checks (`models.llm.later_sentences`). 1, or no chooser: one reply, streamed throughout.
        `drafts_max_batch`: extra drafts are taken only while the model then holds at most this
        many replies, so that drafts never slow a busy batch."""
        if candidates < 1:
            raise ValueError("candidates must be at least 1")
        self._candidates = candidates if chooser is not None else 1
        self._chooser = chooser
        self._drafts_max_batch = drafts_max_batch
        self.backend = backend
        self._coalesce_s = coalesce_s
        self._max_sentences = max_sentences
        self.params = params
        self._planner = planner
        self._max_prompt_tokens = max_prompt_tokens
        self._crisis_hotline = crisis_hotline
        self._crisis_text = crisis_text

    async def generate(self, request: ReplyRequest) -> AsyncGenerator[str, None]:
        """Yields the intent the reply carries out, then the reply's text pieces.

        Raises `haven.errors.Busy` before yielding anything when the backend's queue is full.
        Closing the generator stops the model; a model error propagates out of it.
        """
        # Taken before anything is yielded so that a full queue is refused straight away.
        admission = self.backend.admit()
        try:
            intent = request.intent or await self._plan(request.history)
            # The intent goes out first, while the reply may still wait for the model.
            yield intent
            messages = build_messages(
                request.history,
                intent=intent,
                risk_level=request.risk_level,
                tokenizer=self.backend.tokenizer,
                max_prompt_tokens=self._max_prompt_tokens,
                crisis_hotline=self._crisis_hotline,
                crisis_text=self._crisis_text,
            )
            if self._candidates > 1:
                stream = self._best_of(request, messages, admission)
            else:
                stream = self.backend.stream(
                    messages, self.params, admission, cache_key=request.session_id
                )
                if self._max_sentences > 0:
                    stream = _shaped(stream, ReplyShape(self._max_sentences))
            async with aclosing(coalesce(stream, self._coalesce_s)) as pieces:
                async for piece in pieces:
                    yield piece
        finally:
            # Normally the backend has given the place back already; this covers a reply that
            # ended before reaching the model.
            admission.release()

    async def _best_of(
        self, request: ReplyRequest, messages: list[dict[str, str]], admission: Admission
    ) -> AsyncGenerator[str, None]:
        """The chosen draft's first sentence, then each later one as it ends, up to the first
        that invents a person or asks a second question (`models.llm.later_sentences`)."""
        assert self._chooser is not None
        # Our own place first; extra drafts only take places nobody else is waiting for, and only
        # while the batch stays small: on a CPU every reply in the batch slows every other.
        await admission.start()
        queue = self.backend.queue
        keep_free = max(queue.concurrency - self._drafts_max_batch, 0)
        extras = queue.take_spare(self._candidates - 1, keep_free=keep_free)
        drafts = open_drafts(
            self.backend,
            messages,
            self.params,
            [admission, *extras],
            cache_key=request.session_id,
            max_sentences=self._max_sentences,
        )
        try:
            await read_together(drafts)
            chosen = drafts[0]
            if len(drafts) > 1:
                chosen = drafts[await self._choose([d.text for d in drafts], request)]
            await drop_all(drafts, keep=chosen)
            later = LaterSentences(chosen.text, _context(request), level=_level(request))
            if later.first:
                yield later.first
            async with aclosing(checked(chosen.rest(), later)) as rest:
                async for piece in rest:
                    yield piece
            if later.state is LaterState.CUT:
                # The fault only, not the text: replies are the person's conversation.
                logger.info("reply ended before a later sentence: %s", later.cut_by)
        finally:
            await drop_all(drafts)
            for extra in extras:
                extra.release()

    async def _choose(self, texts: list[str], request: ReplyRequest) -> int:
        assert self._chooser is not None
        message = next((t.text for t in reversed(request.history) if t.role == "user"), "")
        try:
            ranked = await asyncio.to_thread(
                self._chooser.rank, texts, message, _context(request), level=_level(request)
            )
        except Exception:
            # Any of the drafts is a reply; choosing only finds the better one.
            logger.exception("choosing among %d drafts failed; sending the first", len(texts))
            return 0
        return ranked[0].index

    def forget(self, session_id: str) -> bool:
        """Drop what the backend keeps for a deleted session."""
        return self.backend.forget(session_id)

    async def _plan(self, history: Sequence[ChatTurn]) -> str:
        if self._planner is None:
            return DEFAULT_INTENT
        try:
            # Off the event loop: the planner is a model too, and other replies are streaming.
            prediction = await asyncio.to_thread(self._planner.plan, history)
        except Exception:
            # A reply with the default intent serves the person better than no reply.
            logger.exception("intent planning failed; using %r", DEFAULT_INTENT)
            return DEFAULT_INTENT
        return resolve_intent(prediction.intent)


def _context(request: ReplyRequest) -> list[str]:
    """The conversation's texts, both sides: who in it counts as mentioned."""
    return [turn.text for turn in request.history]


async def _shaped(
    pieces: AsyncGenerator[str, None], shape: ReplyShape
) -> AsyncGenerator[str, None]:
    """`pieces` cut to the reply's shape; leaving early closes `pieces`, which stops the model."""
    async with aclosing(pieces) as text:
        async for delta in text:
            piece = shape.add(delta)
            if piece.send:
                yield piece.send
            if piece.stop:
                return
    rest = shape.finish()
    if rest:
        yield rest


def _level(request: ReplyRequest) -> RiskLevel:
    """The person's message's risk level; an unknown one is taken as medium."""
    if request.risk_level not in RISK_LEVELS:
        return RiskLevel.MEDIUM
    return RiskLevel(request.risk_level)
