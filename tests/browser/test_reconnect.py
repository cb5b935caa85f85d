"""The client across dropped sockets: it reconnects and resumes after a retryable close, sends
again what the server never got, and stops with a clear message after a terminal one."""

from __future__ import annotations

import json
import time
from typing import Any

from playwright.sync_api import Page, WebSocket, WebSocketRoute, expect
from websockets.sync.client import connect as ws_connect

from tests.browser.conftest import LiveServer, PageFactory
from tests.browser.pages import log_in, replies, send, session_of, token_of, watched
from tests.fakes import FakeGenerator

FULL = FakeGenerator.full_text()


class Opened:
    """A socket the page opened, and the frames it sent."""

    def __init__(self, socket: WebSocket) -> None:
        self.url = socket.url
        self.frames: list[dict[str, Any]] = []
        socket.on("framesent", lambda payload: self.frames.append(json.loads(payload)))

    def texts(self) -> list[str]:
        return [f["message_text"] for f in self.frames if f["type"] == "session_message"]


def _count_sockets(page: Page) -> list[Opened]:
    sockets: list[Opened] = []
    page.on("websocket", lambda socket: sockets.append(Opened(socket)))
    return sockets


def _user_bubbles(page: Page) -> Any:
    return page.locator(".message.user")


def test_server_restart_mid_reply_resumes_and_loses_nothing(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    token = live_server.register("eve")
    page = open_page()
    sockets = _count_sockets(page)
    log_in(page, "eve")
    send(page, "first, before the restart")
    expect(replies(page).first.locator(".text")).not_to_have_text("")

    live_server.drain()  # every socket closed with 1012, mid-reply
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "reconnecting")
    send(page, "second, while it reconnects")
    expect(_user_bubbles(page).nth(1)).to_have_attribute("data-state", "sending")

    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    expect(replies(page)).to_have_count(2)
    for i in range(2):
        expect(replies(page).nth(i)).to_have_attribute("data-state", "complete")
        expect(replies(page).nth(i).locator(".text")).to_have_text(FULL)
    expect(_user_bubbles(page)).to_have_count(2)
    expect(page.locator("[data-state=not-sent], .notice:not([hidden])")).to_have_count(0)
    assert watched(page)["states"][-3:] == ["connected", "reconnecting", "connected"]
    # Written while no socket was open: held by the client, sent on the resumed socket.
    assert len(sockets) == 2
    assert sockets[0].texts() == ["first, before the restart"]
    assert sockets[1].texts() == ["second, while it reconnects"]
    assert "last_seq=" in sockets[1].url and "token" not in sockets[1].url

    stored = live_server.messages(token, session_of(page))
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "first, before the restart"),
        ("assistant", FULL),
        ("user", "second, while it reconnects"),
        ("assistant", FULL),
    ]
    in_page = page.locator("#transcript > li").evaluate_all(
        "items => items.map(item => item.dataset.messageId)"
    )
    assert in_page == [m["id"] for m in stored]


def test_message_lost_with_a_dropped_socket_is_sent_again_once(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    token = live_server.register("fay")
    page = open_page()
    frames: list[list[dict[str, Any]]] = []
    urls: list[str] = []

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()
        sent: list[dict[str, Any]] = []
        frames.append(sent)
        urls.append(ws.url)
        first_connection = len(frames) == 1

        def to_server(message: str | bytes) -> None:
            frame = json.loads(message)
            sent.append(frame)
            if first_connection and frame["type"] == "session_message":
                # The network drops the message and then the socket, as a tunnel would.
                server.close()
                ws.close(code=1012, reason="gone")
                return
            server.send(message)

        ws.on_message(to_server)

    page.route_web_socket("**/ws*", route)
    page.reload()
    log_in(page, "fay")
    send(page, "this must not be lost")

    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    expect(replies(page).first).to_have_attribute("data-state", "complete")
    expect(_user_bubbles(page)).to_have_count(1)
    expect(_user_bubbles(page).first).to_have_attribute("data-state", "sent")
    messages = [[f for f in sent if f["type"] == "session_message"] for sent in frames]
    assert len(frames) == 2 and len(messages[0]) == len(messages[1]) == 1
    assert messages[0][0]["client_message_id"] == messages[1][0]["client_message_id"]
    # The second socket resumed from the last event seen; the token never went into a URL.
    assert "last_seq=" not in urls[0] and "last_seq=" in urls[1]
    assert not [url for url in urls if "token" in url]
    assert frames[1][0]["type"] == "auth"
    stored = live_server.messages(token, session_of(page))
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "this must not be lost"),
        ("assistant", FULL),
    ]


def test_logout_elsewhere_shows_the_login_form_and_never_reconnects(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    live_server.register("gil")
    page = open_page()
    sockets = _count_sockets(page)
    log_in(page, "gil")
    token = token_of(page)

    revoked = live_server.rest.post("/auth/logout", headers={"Authorization": f"Bearer {token}"})
    assert revoked.status_code == 204
    expect(page.locator("#auth-notice")).to_have_text(
        "You have been logged out. Please log in again to keep talking."
    )
    expect(page.get_by_label("Username")).to_be_focused()
    page.wait_for_timeout(2500)  # longer than the first reconnect delay could be
    assert len(sockets) == 1
    assert "reconnecting" not in watched(page)["states"]


def test_too_many_open_connections_is_explained_with_no_retry_loop(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    token = live_server.register("hal")
    limit = live_server.services.settings.max_connections_per_user
    url = live_server.url.replace("http", "ws") + f"/ws?token={token}"
    others = [ws_connect(url) for _ in range(limit)]
    try:
        for other in others:
            assert json.loads(other.recv(timeout=5))["type"] == "connection"
        page = open_page()
        sockets = _count_sockets(page)
        page.get_by_label("Username").fill("hal")
        page.get_by_label("Password", exact=True).fill("correct horse battery")
        page.get_by_role("button", name="Log in").click()

        expect(page.locator("#chat-notice-text")).to_have_text(
            "Haven is open in too many windows or devices. Close one, then try again."
        )
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "closed")
        page.wait_for_timeout(2500)
        assert len(sockets) == 1

        others.pop().close()
        deadline = time.monotonic() + 5
        while live_server.open_socket_count >= limit:
            assert time.monotonic() < deadline, "the closed socket was not let go"
            time.sleep(0.05)
        page.get_by_role("button", name="Try again").click()
        expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
        expect(page.locator("#chat-notice")).to_be_hidden()
    finally:
        for other in others:
            other.close()
