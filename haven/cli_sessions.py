"""`haven chat`'s choice of session: the newest ones listed by when they started and the
person's first words (not bare ids), and the last messages of the one picked shown first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

SESSIONS_LISTED = 10
HISTORY_SHOWN = 6
FIRST_WORDS_CHARS = 48

# (method, path) -> the decoded JSON answer; raises on an error answer.
Call = Callable[[str, str], Awaitable[Any]]
Write = Callable[[str], None]


def session_line(created_at: str, messages: list[dict[str, Any]]) -> str:
    """A session as listed: when it started (local time) and the person's first words."""
    started = datetime.fromisoformat(created_at).astimezone().strftime("%Y-%m-%d %H:%M")
    first = next((m["text"] for m in messages if m["role"] == "user"), "")
    words = " ".join(first.split())
    if not words:
        return f"{started}  (no messages yet)"
    if len(words) > FIRST_WORDS_CHARS:
        words = words[:FIRST_WORDS_CHARS] + "…"
    return f"{started}  {words}"


async def show_history(call: Call, write: Write, session_id: str) -> None:
    messages = await call("GET", f"/sessions/{session_id}/messages")
    if len(messages) > HISTORY_SHOWN:
        write(f"[{len(messages) - HISTORY_SHOWN} earlier messages not shown]\n")
    for message in messages[-HISTORY_SHOWN:]:
        who = "you" if message["role"] == "user" else "haven"
        write(f"{who}> {message['text']}\n")


async def pick_session(
    call: Call,
    write: Write,
    session_id: str | None,
    new: bool,
    lines: asyncio.Queue[str | None],
) -> str:
    """The session to chat in: given, new, or picked from the list; an existing session's
    last messages are shown first."""
    if session_id:
        await show_history(call, write, session_id)
        return session_id
    sessions = [] if new else (await call("GET", "/sessions"))[:SESSIONS_LISTED]
    if sessions:
        for i, session in enumerate(sessions, 1):
            messages = await call("GET", f"/sessions/{session['id']}/messages")
            write(f"  {i}. {session_line(session['created_at'], messages)}\n")
        write("Session number, or Enter for a new one: ")
        choice = (await lines.get() or "").strip()
        if choice.isdigit() and 1 <= int(choice) <= len(sessions):
            picked = str(sessions[int(choice) - 1]["id"])
            await show_history(call, write, picked)
            return picked
    return str((await call("POST", "/sessions"))["id"])
