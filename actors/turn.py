"""One turn of the conversation: store -> screen -> (escalate) -> reply -> check -> store.

Events go to every socket of the user (`broadcast`); answers about one frame only to the socket
that sent it (`reply`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from actors.calibrated_reply import CalibratedStream, ReviewedStream
from haven import metrics
from haven.backends import ChatTurn, ReplyGenerator, ReplyRequest, ReplyStream, RiskAssessor
from haven.errors import Busy, GenerationFailed, HavenError, SafetyUnavailable
from haven.logging_context import turn_scope
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    CompletedMessage,
    EmergencyResources,
    ErrorEvent,
    ReplyStatus,
    SafetyEscalation,
    ServerEventBase,
    SessionMessage,
    UserMessageEvent,
)
from haven.reply_elements import concern_of
from haven.reviewed_replies import choose
from haven.risk import Assessment, RiskLevel
from haven.safety_policy import (
    UNASSESSED,
    Action,
    escalates,
    escalation_action,
    policy_intent,
    safe_replacement,
    uses_fixed_reply,
)
from haven.settings import Settings
from haven.storage.records import MessageRecord
from haven.storage.store import DuplicateMessage, Store

logger = logging.getLogger(__name__)

Emit = Callable[[ServerEventBase], None]


# Returns a reason when generated text must not reach the person (method, means, encouragement).
class OutputScreen(Protocol):
    """A reason code when a reply (so far) must not reach the person, else None; `at_risk`
    (the message was rated high or above) and `distressed` (medium or above) make it
    stricter."""

    def __call__(
        self, text: str, *, at_risk: bool = False, distressed: bool = False
    ) -> str | None: ...


@dataclass(frozen=True)
class TurnContext:
    user_id: str
    settings: Settings
    store: Store
    assessor: RiskAssessor
    generator: ReplyGenerator
    output_screen: OutputScreen
    resources: EmergencyResources
    broadcast: Emit  # to every socket of the user
    reply: Emit  # to the socket that sent the message
    reply_ended: Callable[[], None] = field(default=lambda: None)
    # Whether a counsellor is in the session (then the assistant does not reply).
    counsellor_present: Callable[[str], bool] = field(default=lambda _: False)
    # An escalation of the session (its level) was recorded in the audit.
    escalated: Callable[[str, str], None] = field(default=lambda _s, _l: None)


class Turn:
    def __init__(
        self,
        ctx: TurnContext,
        message: SessionMessage,
        *,
        accepted_at: float | None = None,
        connection_id: str | None = None,
    ) -> None:
        self._ctx = ctx
        self._message = message
        # Ties this turn's log lines together, here and in the model replicas.
        self.turn_id = uuid.uuid4().hex
        self.log_fields: dict[str, str] = {"turn_id": self.turn_id}
        if connection_id is not None:
            self.log_fields["connection_id"] = connection_id
        self.outcome: metrics.TurnOutcome = "failed"
        # monotonic seconds: when the actor accepted the message, and when a reply chunk first
        # went out; the difference is what the person waited for the first words.
        self._accepted_at = time.monotonic() if accepted_at is None else accepted_at
        self._first_chunk_at: float | None = None
        self._fixed_reply = False
        self._consumer: asyncio.Task[None] | None = None
        self._cancelled = False
        self._assessment: Assessment | None = None
        self.reply_id: str | None = None
        self._retry = False
        # Writes started beside the reply; done before its completion is announced.
        self._writes: list[asyncio.Future[None]] = []

    def cancel(self, message_id: str | None = None) -> bool:
        """Stops the reply being written (if `message_id` is given, only that one)."""
        if self._consumer is None or self._consumer.done():
            return False
        if message_id is not None and message_id != self.reply_id:
            return False
        self._cancelled = True
        self._consumer.cancel()
        return True

    async def run(self) -> None:
        with turn_scope(self.turn_id):
            try:
                await self._run()
            finally:
                self._finished()

    def _finished(self) -> None:
        fields: dict[str, object] = {**self.log_fields, "outcome": self.outcome}
        if self._assessment is not None:
            fields["risk_level"] = self._assessment.risk_level.value
        first_chunk_s: float | None = None
        if self._first_chunk_at is not None:
            first_chunk_s = self._first_chunk_at - self._accepted_at
            fields["first_chunk_s"] = round(first_chunk_s, 4)
        metrics.turn_finished(
            self.outcome,
            first_chunk_s=first_chunk_s,
            reply="fixed" if self._fixed_reply else "generated",
        )
        logger.info("turn ended: %s", self.outcome, extra=fields)

    async def _run(self) -> None:
        ctx, msg = self._ctx, self._message
        stored = await self._store_user_message()
        if stored is None:
            return
        # A message written while a counsellor was there is theirs to answer, even if they
        # leave while it is being screened: the assistant answers from the next message.
        for_counsellor = ctx.counsellor_present(msg.session_id)
        ctx.broadcast(
            UserMessageEvent(
                text=stored.text,
                session_id=msg.session_id,
                message_id=stored.id,
                client_message_id=msg.client_message_id,
                duplicate=True if self._retry else None,
            )
        )
        history = await ctx.store.list_messages(
            ctx.user_id, msg.session_id, limit=ctx.settings.context_messages + 1
        )
        earlier_user_texts = [m.text for m in history[:-1] if m.role == "user"]
        assessment = await self._assess(stored.text, earlier_user_texts)
        if assessment is None:
            if await self._audit(stored, None, Action.FAIL_CLOSED):
                ctx.escalated(msg.session_id, UNASSESSED)
            return
        self._assessment = assessment
        level = assessment.risk_level
        metrics.risk_assessed(level.value)
        # Bookkeeping writes go on beside the reply (they are not on the person's path to its
        # first words); the turn ends only once they are done.
        self._writes.append(asyncio.ensure_future(self._record_level(stored, level)))
        try:
            if escalates(level):
                metrics.escalated(level.value)
                ctx.broadcast(
                    SafetyEscalation(
                        risk_level=level.value,
                        emergency_resources=ctx.resources,
                        session_id=msg.session_id,
                    )
                )
                self._writes.append(asyncio.ensure_future(self._escalate(stored, assessment)))
            if for_counsellor or ctx.counsellor_present(msg.session_id):
                # The counsellor answers; the person's message reached them with its level.
                self.outcome = "handed_over"
                return
            await self._reply(level, stored, history)
        finally:
            await asyncio.gather(*self._writes, return_exceptions=True)

    async def _reply(
        self, level: RiskLevel, stored: MessageRecord, history: list[MessageRecord]
    ) -> None:
        ctx = self._ctx
        # The same turn (a resend included) gets the same wording; `recent` keeps the next
        # turns from repeating it.
        seed = f"{stored.session_id}:{stored.id}"
        recent = [m.text for m in history[:-1] if m.role == "assistant"]
        if uses_fixed_reply(
            level,
            generated_at_high=ctx.settings.generated_replies_at_high,
            generated_at_medium=ctx.settings.generated_replies_at_medium,
        ):
            self._fixed_reply = True
            reviewed = choose(
                level, ctx.resources, seed=seed, recent=recent, concern=concern_of(stored.text)
            )
            await self._stream(ReviewedStream(reviewed.sentences, reviewed.intent), level, stored)
            return
        request = ReplyRequest(
            # A counsellor's words were said to the person on the supporter's side.
            history=[
                ChatTurn(role="user" if m.role == "user" else "assistant", text=m.text)
                for m in history
            ],
            intent=policy_intent(level),
            risk_level=level.value,
            session_id=stored.session_id,
        )
        try:
            stream = await ctx.generator.open(request)
        except Busy as busy:
            self.outcome = "busy"
            ctx.broadcast(ErrorEvent.from_error(busy))
            return
        except Exception:
            logger.exception(
                "the reply could not be started for user %s", ctx.user_id, extra=self.log_fields
            )
            ctx.broadcast(ErrorEvent.from_error(GenerationFailed()))
            return
        calibrated = CalibratedStream(stream, level, ctx.resources, seed=seed, recent=recent)
        await self._stream(calibrated, level, stored)

    async def _record_level(self, stored: MessageRecord, level: RiskLevel) -> None:
        try:
            await self._ctx.store.set_risk_level(stored.id, level.value)
        except Exception:
            logger.exception(
                "could not record the risk level for user %s",
                self._ctx.user_id,
                extra=self.log_fields,
            )

    async def _store_user_message(self) -> MessageRecord | None:
        ctx, msg = self._ctx, self._message
        try:
            return await ctx.store.add_message(
                ctx.user_id,
                msg.session_id,
                "user",
                msg.message_text,
                client_message_id=msg.client_message_id,
            )
        except DuplicateMessage as duplicate:
            if await self._unanswered_last(duplicate.existing):
                # The earlier attempt failed before a reply was stored (the error said
                # "retryable"): this resend runs the turn for the stored message.
                self._retry = True
                return duplicate.existing
            self.outcome = "duplicate"
            await self._answer_duplicate(duplicate.existing)
        except HavenError as error:
            # Nothing was stored; only the sender made the mistake, so only the sender hears it.
            self.outcome = "refused"
            ctx.reply(ErrorEvent.from_error(error))
        return None

    async def _unanswered_last(self, existing: MessageRecord) -> bool:
        """Whether `existing` is its session's newest message, with no reply stored."""
        ctx = self._ctx
        newest = await ctx.store.list_messages(ctx.user_id, existing.session_id, limit=1)
        return bool(newest) and newest[-1].id == existing.id

    async def _answer_duplicate(self, existing: MessageRecord) -> None:
        """A resend of a stored message: acknowledge it again, with its reply if there is one."""
        ctx = self._ctx
        ctx.reply(
            UserMessageEvent(
                text=existing.text,
                session_id=existing.session_id,
                message_id=existing.id,
                client_message_id=existing.client_message_id,
                duplicate=True,
            )
        )
        answer = await ctx.store.reply_to(ctx.user_id, existing)
        if answer is not None:
            ctx.reply(
                AssistantMessageComplete(
                    message=CompletedMessage(
                        text=answer.text,
                        intent=answer.intent or "other",
                        risk_level=(answer.risk_level or RiskLevel.NONE).value,
                        status=_status(answer.status),
                    ),
                    session_id=answer.session_id,
                    message_id=answer.id,
                )
            )

    async def _assess(self, text: str, context: list[str]) -> Assessment | None:
        ctx = self._ctx
        try:
            return await asyncio.wait_for(
                ctx.assessor.assess(text, context), timeout=ctx.settings.safety_timeout_s
            )
        except Exception:
            # Fail closed: an unassessed message never reaches the language model, and the
            # person sees the crisis resources in case they needed them.
            logger.exception(
                "risk assessment failed for user %s", ctx.user_id, extra=self.log_fields
            )
            self.outcome = "unassessed"
            metrics.escalated(UNASSESSED)
            ctx.broadcast(
                SafetyEscalation(
                    risk_level=UNASSESSED,
                    emergency_resources=ctx.resources,
                    session_id=self._message.session_id,
                )
            )
            ctx.broadcast(ErrorEvent.from_error(SafetyUnavailable()))
            return None

    async def _escalate(self, stored: MessageRecord, assessment: Assessment) -> None:
        level = assessment.risk_level
        if await self._audit(stored, assessment, escalation_action(level)):
            self._ctx.escalated(stored.session_id, level.value)

    async def _audit(
        self, message: MessageRecord, assessment: Assessment | None, action: Action
    ) -> bool:
        """Whether the audit record was written."""
        try:
            await self._ctx.store.audit.record_escalation(
                user_id=self._ctx.user_id,
                session_id=message.session_id,
                message_id=message.id,
                risk_level=assessment.risk_level.value if assessment else UNASSESSED,
                scores=assessment.probabilities if assessment else {},
                model_id=assessment.model_id if assessment else "unavailable",
                model_version=assessment.model_version if assessment else "",
                raised_by=assessment.raised_by if assessment else None,
                action=action.value,
            )
        except Exception:
            # The person's safety comes first: a failed audit write never holds up the turn.
            logger.exception(
                "could not record an escalation for user %s",
                self._ctx.user_id,
                extra=self.log_fields,
            )
            return False
        return True

    async def _stream(self, stream: ReplyStream, level: RiskLevel, stored: MessageRecord) -> None:
        ctx, session_id = self._ctx, self._message.session_id
        self.reply_id = reply_id = str(uuid.uuid4())
        intent = stream.intent
        ctx.broadcast(AssistantMessageStart(session_id=session_id, message_id=reply_id))
        pieces: list[str] = []
        outcome = _Outcome()
        self._consumer = asyncio.get_running_loop().create_task(
            self._consume(stream, pieces, outcome, reply_id, level)
        )
        try:
            await self._consumer
        except asyncio.CancelledError:
            if not self._cancelled:
                raise
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()
        if outcome.failed:
            # The partial reply is not stored as complete; the next message works as usual.
            ctx.reply_ended()
            ctx.broadcast(ErrorEvent.from_error(GenerationFailed()))
            return
        status: ReplyStatus = "complete"
        text = "".join(pieces).strip()
        if self._cancelled:
            status = "cancelled"
        elif outcome.unsafe is not None:
            status, text = "replaced", safe_replacement(ctx.resources, level, outcome.unsafe)
            logger.warning(
                "generated reply replaced for user %s: %s",
                ctx.user_id,
                outcome.unsafe,
                extra=self.log_fields,
            )
            await self._audit(stored, self._assessment, Action.REPLY_REPLACED)
        await self._complete(reply_id, text, intent, level, status)

    async def _consume(
        self,
        stream: ReplyStream,
        pieces: list[str],
        outcome: _Outcome,
        reply_id: str,
        level: RiskLevel,
    ) -> None:
        ctx, session_id = self._ctx, self._message.session_id
        at_risk, distressed = escalates(level), level.at_least(RiskLevel.MEDIUM)
        text = ""
        try:
            async for piece in stream:
                if not piece:
                    continue
                text += piece
                reason = ctx.output_screen(text, at_risk=at_risk, distressed=distressed)
                if reason is not None:
                    outcome.unsafe = reason
                    return
                pieces.append(piece)
                if self._first_chunk_at is None:
                    self._first_chunk_at = time.monotonic()
                ctx.broadcast(
                    AssistantMessageChunk(chunk=piece, session_id=session_id, message_id=reply_id)
                )
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("generation failed for user %s", ctx.user_id, extra=self.log_fields)
            outcome.failed = True

    async def _complete(
        self, reply_id: str, text: str, intent: str, level: RiskLevel, status: ReplyStatus
    ) -> None:
        ctx, session_id = self._ctx, self._message.session_id
        try:
            await ctx.store.add_message(
                ctx.user_id,
                session_id,
                "assistant",
                text,
                intent=intent,
                risk_level=level.value,
                message_id=reply_id,
                status=status,
            )
        except HavenError as error:
            # The session was deleted while the reply was being written.
            ctx.reply_ended()
            ctx.broadcast(ErrorEvent.from_error(error))
            return
        # Whoever sees the completion and reads the history then sees the risk level too.
        await asyncio.gather(*self._writes, return_exceptions=True)
        ctx.broadcast(
            AssistantMessageComplete(
                message=CompletedMessage(
                    text=text, intent=intent, risk_level=level.value, status=status
                ),
                session_id=session_id,
                message_id=reply_id,
            )
        )
        self.outcome = _TURN_OUTCOMES[status]


_TURN_OUTCOMES: dict[ReplyStatus, metrics.TurnOutcome] = {
    "complete": "completed",
    "cancelled": "cancelled",
    "replaced": "replaced",
}


@dataclass
class _Outcome:
    failed: bool = False
    unsafe: str | None = None


def _status(value: str | None) -> ReplyStatus:
    if value == "cancelled":
        return "cancelled"
    if value == "replaced":
        return "replaced"
    return "complete"
