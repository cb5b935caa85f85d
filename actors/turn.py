"""One turn of the conversation: store -> classify -> (escalate) -> generate -> stream -> store."""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from haven.backends import ChatTurn, ReplyGenerator, ReplyRequest, RiskAssessor
from haven.errors import GenerationFailed, HavenError, SafetyUnavailable
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    CompletedMessage,
    ErrorEvent,
    SafetyEscalation,
    ServerEventBase,
    SessionMessage,
    UserMessageEvent,
)
from haven.risk import Assessment
from haven.safety_policy import (
    UNASSESSED,
    crisis_reply,
    emergency_resources,
    escalates,
    reply_intent,
)
from haven.settings import Settings
from haven.storage.store import Store

logger = logging.getLogger(__name__)

Emit = Callable[[ServerEventBase], None]


@dataclass(frozen=True)
class TurnContext:
    user_id: str
    settings: Settings
    store: Store
    assessor: RiskAssessor
    generator: ReplyGenerator
    broadcast: Emit  # to every socket of the user
    reply: Emit  # to the socket that sent the message


class Turn:
    def __init__(self, ctx: TurnContext, message: SessionMessage) -> None:
        self._ctx = ctx
        self._message = message

    async def run(self) -> None:
        ctx, session_id, text = self._ctx, self._message.session_id, self._message.message_text
        try:
            stored = await ctx.store.add_message(ctx.user_id, session_id, "user", text)
        except HavenError as error:
            # Nothing was stored; only the sender made the mistake, so only the sender hears it.
            ctx.reply(ErrorEvent.from_error(error))
            return
        ctx.broadcast(UserMessageEvent(text=text, session_id=session_id, message_id=stored.id))

        history = await ctx.store.list_messages(
            ctx.user_id, session_id, limit=ctx.settings.context_messages + 1
        )
        earlier_user_texts = [m.text for m in history[:-1] if m.role == "user"]
        assessment = await self._assess(text, earlier_user_texts)
        if assessment is None:
            return
        await ctx.store.set_risk_level(stored.id, assessment.risk_level.value)
        level = assessment.risk_level
        if escalates(level):
            ctx.broadcast(
                SafetyEscalation(
                    risk_level=level.value,
                    emergency_resources=emergency_resources(ctx.settings),
                    session_id=session_id,
                )
            )
        intent = reply_intent(level)
        request = ReplyRequest(
            history=[ChatTurn(role=m.role, text=m.text) for m in history],
            intent=intent,
            risk_level=level.value,
        )
        await self._generate(request, intent, level.value, vetted=escalates(level))

    async def _assess(self, text: str, context: list[str]) -> Assessment | None:
        ctx = self._ctx
        try:
            return await ctx.assessor.assess(text, context)
        except Exception:
            # Fail closed: an unassessed message never reaches the language model, and the
            # person sees the crisis resources in case they needed them.
            logger.exception("risk assessment failed for user %s", ctx.user_id)
            ctx.broadcast(
                SafetyEscalation(
                    risk_level=UNASSESSED,
                    emergency_resources=emergency_resources(ctx.settings),
                    session_id=self._message.session_id,
                )
            )
            ctx.broadcast(ErrorEvent.from_error(SafetyUnavailable()))
            return None

    def _pieces(self, request: ReplyRequest, vetted: bool) -> AsyncIterator[str]:
        if vetted:
            return _stream_of(crisis_reply(self._ctx.settings))
        return self._ctx.generator.stream(request)

    async def _generate(
        self, request: ReplyRequest, intent: str, risk_level: str, *, vetted: bool
    ) -> None:
        ctx, session_id = self._ctx, self._message.session_id
        reply_id = str(uuid.uuid4())
        ctx.broadcast(AssistantMessageStart(session_id=session_id, message_id=reply_id))
        pieces: list[str] = []
        try:
            async for piece in self._pieces(request, vetted):
                if not piece:
                    continue
                pieces.append(piece)
                ctx.broadcast(
                    AssistantMessageChunk(chunk=piece, session_id=session_id, message_id=reply_id)
                )
        except Exception:
            # The partial reply is not stored as complete; the next message works as usual.
            logger.exception("generation failed for user %s", ctx.user_id)
            ctx.broadcast(ErrorEvent.from_error(GenerationFailed()))
            return
        text = "".join(pieces).strip()
        try:
            await ctx.store.add_message(
                ctx.user_id,
                session_id,
                "assistant",
                text,
                intent=intent,
                risk_level=risk_level,
                message_id=reply_id,
            )
        except HavenError as error:
            # The session was deleted while the reply was being written.
            ctx.broadcast(ErrorEvent.from_error(error))
            return
        ctx.broadcast(
            AssistantMessageComplete(
                message=CompletedMessage(text=text, intent=intent, risk_level=risk_level),
                session_id=session_id,
                message_id=reply_id,
            )
        )


async def _stream_of(pieces: list[str]) -> AsyncIterator[str]:
    for piece in pieces:
        yield piece
