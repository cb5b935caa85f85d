"""What `haven chat` prints: server events as terminal text, and a quiet status line.

Crisis resources are wrapped at word boundaries to the terminal's width, every line framed by
`!!`, so a phone number or a keyword ("HOME", "741741") is never split across lines.
"""

from __future__ import annotations

import os
import textwrap
from typing import TextIO

from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    CounsellorJoined,
    CounsellorLeft,
    CounsellorMessageEvent,
    EmergencyResources,
    ErrorEvent,
    Resumed,
    SafetyEscalation,
    ServerEventBase,
)

# Narrower than this and the frame would leave too little room for words.
MIN_WIDTH, MAX_WIDTH, DEFAULT_WIDTH = 30, 100, 80
PREFIX = "!! "


def terminal_width(out: TextIO) -> int:
    """The width of the terminal `out` writes to; 80 when it is not a terminal."""
    try:
        columns = os.get_terminal_size(out.fileno()).columns
    except (AttributeError, OSError, ValueError):
        columns = int(os.environ.get("COLUMNS", DEFAULT_WIDTH) or DEFAULT_WIDTH)
    return max(MIN_WIDTH, min(columns, MAX_WIDTH))


def crisis_box(resources: EmergencyResources, width: int) -> str:
    """The resources framed in `!`, wrapped to `width` at spaces only."""
    text_width = width - len(PREFIX)

    def wrap(text: str) -> list[str]:
        return textwrap.wrap(text, text_width, break_long_words=False, break_on_hyphens=False) or [
            ""
        ]

    lines = [
        *wrap("You are not alone. Please reach out now:"),
        *wrap(f"Call {resources.crisis_hotline}  |  Text {resources.crisis_text}"),
        *wrap(resources.message),
    ]
    bar = "!" * width
    return "\n" + "\n".join([bar, *(PREFIX + line for line in lines), bar]) + "\n"


class Renderer:
    """Turns server events into terminal text, in the order they arrive."""

    def __init__(self, width: int = DEFAULT_WIDTH) -> None:
        self.width = width
        self._streamed: set[str] = set()  # replies whose chunks were shown
        self._done: set[str] = set()  # replies shown in full
        self.writing: str | None = None  # the reply whose chunks are being shown
        self._counsellors: dict[str, str] = {}  # session id -> the counsellor in it
        self._said: set[str] = set()  # counsellor messages shown

    def render(self, event: ServerEventBase) -> str:
        if isinstance(event, SafetyEscalation):
            return crisis_box(event.emergency_resources, self.width)
        if isinstance(event, AssistantMessageStart):
            return "" if event.message_id in self._done else "haven> "
        if isinstance(event, AssistantMessageChunk):
            if event.message_id in self._done:
                return ""
            self._streamed.add(event.message_id)
            self.writing = event.message_id
            return event.chunk
        if isinstance(event, AssistantMessageComplete):
            self.writing = None
            return self._complete(event)
        if isinstance(event, ErrorEvent):
            after = f", retry after {event.retry_after}s" if event.retry_after else ""
            return f"\n[error {event.code}] {event.message}{after}\n"
        if isinstance(event, CounsellorJoined | CounsellorLeft | CounsellorMessageEvent):
            return self._counsellor(event)
        if isinstance(event, Resumed) and not event.recovered:
            return "[some events were missed and are no longer kept]\n"
        return ""

    def counsellor_in(self, session_id: str) -> bool:
        """Whether a counsellor is in the session (then they, not the assistant, reply)."""
        return session_id in self._counsellors

    def _counsellor(self, event: CounsellorJoined | CounsellorLeft | CounsellorMessageEvent) -> str:
        if isinstance(event, CounsellorMessageEvent):
            if event.message.id in self._said:
                return ""  # replayed after a reconnect
            self._said.add(event.message.id)
            return f"{event.message.counsellor.display_name} (counsellor)> {event.message.text}\n"
        name = event.counsellor.display_name
        if isinstance(event, CounsellorJoined):
            # Also sent on every connect while they are there: said once.
            if self._counsellors.get(event.session_id) == name:
                return ""
            self._counsellors[event.session_id] = name
            return f"[{name}, a trained counsellor, has joined and will reply to you]\n"
        self._counsellors.pop(event.session_id, None)
        return f"[{name} has left; Haven's assistant will answer your next message]\n"

    def _complete(self, event: AssistantMessageComplete) -> str:
        reply_id, message = event.message_id, event.message
        if reply_id in self._done:
            return ""
        self._done.add(reply_id)
        if reply_id not in self._streamed:
            return f"haven> {message.text}\n"  # replayed or resent: the chunks were not shown
        if message.status == "replaced":
            return f"\n[that reply was withdrawn; instead:]\nhaven> {message.text}\n"
        if message.status == "cancelled":
            return " [stopped]\n"
        return "\n"


class Screen:
    """Writes to the terminal, with one status line that later output replaces.

    On a terminal the status is shown dimmed on a line of its own and erased by the next
    output; elsewhere (a pipe, a file) each status is written once as `[status]`."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = bool(getattr(out, "isatty", lambda: False)())
        self._status = ""
        self._at_line_start = True

    def write(self, text: str) -> None:
        if not text:
            return
        self._clear()
        self._out.write(text)
        self._out.flush()
        self._at_line_start = text.endswith("\n")

    def status(self, text: str) -> None:
        """Shows `text` until the next output; a status never interrupts a line being written."""
        if text == self._status:
            return
        if not self._tty:
            self.write(("" if self._at_line_start else "\n") + f"[{text}]\n")
            self._status = text  # not repeated until other output comes between
            return
        if not self._at_line_start:
            return
        self._out.write(f"\r\x1b[2m{text}\x1b[0m\x1b[K")
        self._out.flush()
        self._status = text

    def _clear(self) -> None:
        if self._status and self._tty:
            self._out.write("\r\x1b[K")
        self._status = ""
