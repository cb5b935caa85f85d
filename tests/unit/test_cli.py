"""`haven` (haven/cli.py): accounts and test tokens against a real, migrated database (SQLite and
PostgreSQL: tests/conftest.py), the escalation report through it, and how `haven chat` shows
server events (haven/cli_chat.py)."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from haven.auth import TokenService, signing_secret
from haven.cli import main
from haven.cli_chat import Renderer, parse_event
from haven.protocol import (
    AssistantMessageChunk,
    AssistantMessageComplete,
    AssistantMessageStart,
    CompletedMessage,
    Connection,
    EmergencyResources,
    ErrorEvent,
    SafetyEscalation,
    ServerEventBase,
    UserMessageEvent,
)
from haven.settings import Settings
from haven.storage import Store
from haven.storage.migrate import upgrade

PASSWORD = "quiet harbour lanterns"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    for name in ("HAVEN_ENVIRONMENT", "HAVEN_JWT_SECRET", "HAVEN_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HAVEN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("HAVEN_PASSWORD", PASSWORD)
    return tmp_path


async def _user_id(url: str, username: str) -> str | None:
    async with Store.from_url(url) as store:
        user = await store.get_user_by_username(username)
    return user.id if user else None


def test_users_create_then_token_gives_a_token_the_server_accepts_for_that_user(
    env: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(database_url)
    assert main(["users", "create", "ana", "--locale", "GB", "--database-url", database_url]) == 0
    user_id = asyncio.run(_user_id(database_url, "ana"))
    assert user_id is not None and user_id in capsys.readouterr().out

    assert main(["token", "ana", "--ttl-s", "120", "--database-url", database_url]) == 0
    token = capsys.readouterr().out.strip()
    settings = Settings()
    claims = TokenService(signing_secret(settings), settings.access_token_ttl_s).verify(token)
    assert claims.user_id == user_id
    assert claims.expires_at - claims.issued_at == 120


def test_users_create_refuses_a_taken_username_and_a_weak_password(
    env: Path,
    database_url: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upgrade(database_url)
    assert main(["users", "create", "ana", "--database-url", database_url]) == 0
    assert main(["users", "create", "ANA", "--database-url", database_url]) == 1
    assert "taken" in capsys.readouterr().err

    monkeypatch.setenv("HAVEN_PASSWORD", "1234567890123")
    assert main(["users", "create", "ben", "--database-url", database_url]) == 2
    assert "only digits" in capsys.readouterr().err
    assert asyncio.run(_user_id(database_url, "ben")) is None


def test_token_for_an_unknown_user_fails_and_prints_no_token(
    env: Path, database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    upgrade(database_url)
    assert main(["token", "nobody", "--database-url", database_url]) == 1
    out = capsys.readouterr()
    assert out.out == "" and "no user 'nobody'" in out.err


def test_commands_refuse_a_missing_sqlite_database_without_creating_it(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = env / "absent" / "haven.db"
    assert main(["token", "ana", "--database-url", f"sqlite+aiosqlite:///{path}"]) == 1
    assert "no database" in capsys.readouterr().err
    assert not path.parent.exists()


def test_token_is_refused_in_production_with_status_2(
    env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{env / 'haven.db'}"
    upgrade(url)
    assert main(["users", "create", "ana", "--database-url", url]) == 0
    capsys.readouterr()
    monkeypatch.setenv("HAVEN_ENVIRONMENT", "production")
    monkeypatch.setenv("HAVEN_JWT_SECRET", "s" * 40)
    assert main(["token", "ana", "--database-url", url]) == 2
    out = capsys.readouterr()
    assert out.out == "" and "refused in production" in out.err


def test_escalations_report_is_delegated_to_haven_escalations(
    env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite+aiosqlite:///{env / 'haven.db'}"
    upgrade(url)
    argv = ["escalations", "report", "--since", "2026-11-01", "--until", "2026-11-03"]
    assert main([*argv, "--period", "day", "--format", "json", "--database-url", url]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [p["period"] for p in report["periods"]] == ["2026-11-01", "2026-11-02"]


# --- haven chat: what the terminal shows --------------------------------------------------------

RESOURCES = EmergencyResources(
    crisis_hotline="988", crisis_text="741741", message="Call or text 988 any time."
)


def _turn(reply: str, *, status: str = "complete", chunks: tuple[str, ...] = ()) -> list[str]:
    events: list[ServerEventBase] = [
        UserMessageEvent(text="hi", session_id="s1", message_id="m1", seq=1),
        SafetyEscalation(risk_level="high", emergency_resources=RESOURCES, session_id="s1", seq=2),
        AssistantMessageStart(session_id="s1", message_id="r1", seq=3),
        *(
            AssistantMessageChunk(chunk=c, session_id="s1", message_id="r1", seq=4 + i)
            for i, c in enumerate(chunks)
        ),
        AssistantMessageComplete(
            message=CompletedMessage(
                text=reply,
                intent="crisis_support",
                risk_level="high",
                status=status,  # type: ignore[arg-type]
            ),
            session_id="s1",
            message_id="r1",
            seq=9,
        ),
    ]
    return [e.to_json() for e in events]  # as they come over the wire


def _show(frames: list[str], renderer: Renderer | None = None) -> str:
    renderer = renderer or Renderer()
    shown = []
    for frame in frames:
        event = parse_event(frame)
        assert event is not None
        shown.append(renderer.render(event))
    return "".join(shown)


def test_chat_shows_the_escalation_resources_before_the_streamed_reply() -> None:
    shown = _show(_turn("I'm here with you.", chunks=("I'm here ", "with ", "you.")))
    for resource in ("988", "741741", "Call or text 988 any time."):
        assert resource in shown
    assert "haven> I'm here with you.\n" in shown
    assert shown.index("741741") < shown.index("haven>")
    assert shown.count("I'm here") == 1  # the final text is not printed again


def test_chat_shows_a_replaced_reply_and_a_replayed_one_only_once() -> None:
    renderer = Renderer()
    frames = _turn("A safe reply.", status="replaced", chunks=("unsafe text",))
    shown = _show(frames, renderer)
    assert shown.rindex("haven> A safe reply.") > shown.index("unsafe text")
    assert "withdrawn" in shown
    # A resume replays the same events: nothing of the reply is shown twice.
    assert "reply" not in _show(frames[2:], renderer)


def test_chat_shows_a_reply_it_saw_no_chunks_of_in_full() -> None:
    assert "haven> Welcome back.\n" in _show(_turn("Welcome back.")[2:])


def test_chat_shows_errors_with_their_code() -> None:
    error = ErrorEvent(message="Slow down.", code="rate_limited", retryable=True, retry_after=2)
    assert _show([error.to_json()]) == "\n[error rate_limited] Slow down., retry after 2.0s\n"


def test_chat_ignores_an_event_type_it_does_not_know() -> None:
    assert parse_event(json.dumps({"type": "from_the_future", "seq": 3})) is None


async def test_chat_at_end_of_input_waits_for_the_reply_being_written() -> None:
    """A piped message and its reply: the end of input comes at once, the reply a moment later."""
    from websockets.asyncio.server import ServerConnection, serve

    from haven.cli_chat import ChatClient

    async def haven_like(ws: ServerConnection) -> None:
        await ws.send(Connection().to_json())
        frame = json.loads(await ws.recv())
        await ws.send(
            UserMessageEvent(
                text=frame["message_text"],
                session_id=frame["session_id"],
                message_id="m1",
                client_message_id=frame["client_message_id"],
                seq=1,
            ).to_json()
        )
        await asyncio.sleep(0.5)  # the model is still writing when the input has ended
        for seq, event in enumerate(
            (
                AssistantMessageStart(session_id="s", message_id="r1"),
                AssistantMessageChunk(chunk="Take your time.", session_id="s", message_id="r1"),
                AssistantMessageComplete(
                    message=CompletedMessage(
                        text="Take your time.", intent="validate", risk_level="none"
                    ),
                    session_id="s",
                    message_id="r1",
                ),
            ),
            start=2,
        ):
            await ws.send(event.model_copy(update={"seq": seq}).to_json())
        await ws.wait_closed()

    async with serve(haven_like, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = io.StringIO()
        client = ChatClient(f"http://127.0.0.1:{port}", "ana", "unused", out)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        lines.put_nowait("hello there")
        lines.put_nowait(None)
        try:
            assert await asyncio.wait_for(client.run("s", lines), 10) == 0
        finally:
            await client.aclose()
    assert "Take your time." in out.getvalue()


def _reply_events(session_id: str, first_seq: int, text: str) -> list[str]:
    events = (
        AssistantMessageStart(session_id=session_id, message_id="r1"),
        AssistantMessageChunk(chunk=text, session_id=session_id, message_id="r1"),
        AssistantMessageComplete(
            message=CompletedMessage(text=text, intent="validate", risk_level="none"),
            session_id=session_id,
            message_id="r1",
        ),
    )
    return [e.model_copy(update={"seq": first_seq + i}).to_json() for i, e in enumerate(events)]


async def _chat_across_a_lost_socket(replay_reply: bool) -> tuple[list[dict[str, Any]], str]:
    """The first socket stores the message, then closes with 1012 before the reply is seen; the
    second socket replays (or not) the reply, then `resumed`. Returns what the second socket
    received from the client and what the client printed."""
    from websockets.asyncio.server import ServerConnection, serve

    from haven.cli_chat import ChatClient
    from haven.protocol import Resumed

    received_after_resume: list[dict[str, Any]] = []
    connections = 0

    async def haven_like(ws: ServerConnection) -> None:
        nonlocal connections
        connections += 1
        await ws.send(Connection().to_json())
        if connections == 1:
            frame = json.loads(await ws.recv())
            echo = UserMessageEvent(
                text=frame["message_text"],
                session_id="s",
                message_id="m1",
                client_message_id=frame["client_message_id"],
                seq=1,
            )
            await ws.send(echo.to_json())
            await ws.close(1012)
            return
        assert ws.request is not None and "last_seq=1" in ws.request.path
        for event in _reply_events("s", 2, "Still here.") if replay_reply else []:
            await ws.send(event)
        replayed = 3 if replay_reply else 0
        await ws.send(Resumed(last_seq=1, replayed=replayed, recovered=True).to_json())
        try:
            while True:
                frame = json.loads(await asyncio.wait_for(ws.recv(), 0.5))
                received_after_resume.append(frame)
                await ws.send(
                    UserMessageEvent(
                        text=frame["message_text"],
                        session_id="s",
                        message_id="m1",
                        client_message_id=frame["client_message_id"],
                        duplicate=True,
                        seq=2,
                    ).to_json()
                )
                for event in _reply_events("s", 3, "Still here."):
                    await ws.send(event)
        except TimeoutError:
            pass
        await ws.wait_closed()

    async with serve(haven_like, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        out = io.StringIO()
        client = ChatClient(f"http://127.0.0.1:{port}", "ana", "unused", out, retry_delay_s=0.01)
        lines: asyncio.Queue[str | None] = asyncio.Queue()
        lines.put_nowait("hello there")
        try:
            task = asyncio.create_task(client.run("s", lines))
            for _ in range(200):
                if "Still here." in out.getvalue():
                    break
                await asyncio.sleep(0.05)
            lines.put_nowait(None)
            assert await asyncio.wait_for(task, 10) == 0
        finally:
            await client.aclose()
    return received_after_resume, out.getvalue()


async def test_chat_resends_a_stored_message_whose_reply_was_lost_with_its_socket() -> None:
    resent, printed = await _chat_across_a_lost_socket(replay_reply=False)
    assert [frame["message_text"] for frame in resent] == ["hello there"]
    assert "Still here." in printed


async def test_chat_does_not_resend_a_message_whose_reply_the_resume_replayed() -> None:
    resent, printed = await _chat_across_a_lost_socket(replay_reply=True)
    assert resent == []
    assert printed.count("Still here.") == 1


def test_chat_shows_a_counsellor_by_name_once_and_the_hand_back() -> None:
    from haven.protocol import (
        CounsellorJoined,
        CounsellorLeft,
        CounsellorMessageEvent,
        CounsellorRef,
        CounsellorText,
    )

    cara = CounsellorRef(display_name="Cara")
    said = CounsellorText(id="m-1", text="I'm here with you.", counsellor=cara)
    frames = [
        CounsellorJoined(session_id="s-1", counsellor=cara).to_json(),
        CounsellorMessageEvent(session_id="s-1", message=said).to_json(),
    ]
    renderer = Renderer()
    shown = _show(frames, renderer)
    assert "[Cara, a trained counsellor, has joined and will reply to you]\n" in shown
    assert "Cara (counsellor)> I'm here with you.\n" in shown
    # A reconnect tells the client again who is there, and a resume replays the message.
    assert _show(frames, renderer) == ""
    left = CounsellorLeft(session_id="s-1", counsellor=cara, reason="left")
    assert "Cara has left" in _show([left.to_json()], renderer)
