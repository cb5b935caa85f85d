"""REST: what a counsellor sees (the queue of escalated conversations).

Counsellors only: a person's token gets 403 `forbidden`. Every conversation shown is recorded
in the counsellors' read audit (`counsellor_reads`: who, which session, when) before the answer
goes out, so nothing a counsellor saw is missing from it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from deployments.access import ROLE_ERRORS, Counsellor
from deployments.rest import Services
from deployments.rest_docs import error_responses
from haven.errors import AlreadyJoined, NotFound
from haven.protocol import SessionHistory
from haven.storage.queue import QUEUE_WINDOW

QUEUE_READ = "queue"


def _operation_id(route: APIRoute) -> str:
    return route.name


router = APIRouter(generate_unique_id_function=_operation_id)

OPENAPI_TAGS: list[dict[str, Any]] = [
    {
        "name": "counsellor",
        "description": "For counsellors: the conversations that escalated, to reach the person "
        "in. Every conversation a counsellor is shown is recorded in the audit log.",
    }
]


class QueuedConversation(BaseModel):
    session_id: str = Field(description="The conversation's id.")
    risk_level: str = Field(
        description="The most urgent level escalated in the last 24 hours: `critical`, `high`, "
        "or `unknown` (the message could not be assessed, so it is treated as escalated)."
    )
    last_escalation_at: datetime = Field(description="When it last escalated (UTC).")
    display_name: str = Field(
        description="How to address the person: their display name, else their username. "
        "Nothing else about the account is shown."
    )
    joined_by: str | None = Field(
        default=None,
        description="The display name of the counsellor in the conversation; null when none.",
    )


@router.get(
    "/counsellor/queue",
    tags=["counsellor"],
    summary="The queue of escalated conversations",
    response_description="Most urgent first, then most recently escalated.",
    responses=error_responses(*ROLE_ERRORS),
)
async def queue(counsellor: Counsellor, svc: Services) -> list[QueuedConversation]:
    """Conversations with an escalation (`critical`, `high` or `unknown`) in the last 24
    hours whose session still exists: `critical` before `high` before `unknown`, and within a
    level the most recently escalated first. Counsellors only: 403 `forbidden` otherwise."""
    entries = await svc.store.queue.escalated_since(datetime.now(UTC) - QUEUE_WINDOW)
    await svc.store.queue.record_reads(
        counsellor.user_id, (entry.session_id for entry in entries), QUEUE_READ
    )
    joined = await svc.store.presence.joined_by(entry.session_id for entry in entries)
    return [
        QueuedConversation(
            session_id=entry.session_id,
            risk_level=entry.risk_level,
            last_escalation_at=entry.last_escalation_at,
            display_name=entry.display_name,
            joined_by=joined.get(entry.session_id),
        )
        for entry in entries
    ]


@router.post(
    "/counsellor/sessions/{session_id}/join",
    tags=["counsellor"],
    summary="Join a conversation of the queue",
    response_description="The conversation so far, oldest first.",
    responses=error_responses(*ROLE_ERRORS, NotFound(), AlreadyJoined()),
)
async def join(session_id: str, counsellor: Counsellor, svc: Services) -> SessionHistory:
    """What the socket's `join` frame does, for clients that are not sockets: the person is
    told a counsellor joined, and the assistant stops replying until the counsellor leaves.
    The counsellor's open sockets get `session_history` and every later event of the session.
    404 `not_found` for a conversation that is not in the queue (its existence is not
    revealed); 409 `already_joined` while another counsellor is in it."""
    return await svc.connections.join(counsellor.user_id, session_id)


@router.post(
    "/counsellor/sessions/{session_id}/leave",
    tags=["counsellor"],
    summary="Leave a conversation",
    status_code=204,
    responses=error_responses(*ROLE_ERRORS, NotFound()),
)
async def leave(session_id: str, counsellor: Counsellor, svc: Services) -> Response:
    """What the socket's `leave` frame does: the person gets `counsellor_left` and the
    assistant answers again from their next message. 404 `not_found` unless this counsellor
    is in the conversation."""
    await svc.connections.leave(counsellor.user_id, session_id)
    return Response(status_code=204)
