"""A person in the web client: an account, a conversation, a streamed reply, crisis resources."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import LiveServer, PageFactory
from tests.browser.pages import PHONE, log_in, replies, send, session_of, token_of, watched
from tests.fakes import CRISIS_WORD, ENDLESS, FakeGenerator
from tests.rest_client import PASSWORD


def test_register_shows_why_a_password_is_refused_then_logs_in(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    page = open_page()
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_role("button", name="Create account").click()

    expect(page.locator("#auth-error")).to_contain_text("at least 10 characters")
    expect(page.locator("#password-error")).to_be_visible()
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    # The first conversation is made for the person, and it is the server's.
    token = token_of(page)
    sessions = live_server.rest.get("/sessions", headers={"Authorization": f"Bearer {token}"})
    assert [s["id"] for s in sessions.json()] == [session_of(page)]
    expect(page.locator("#session-list button[aria-current=true]")).to_have_count(1)

    page.get_by_role("button", name="Log out").click()
    expect(page.locator("#auth-notice")).to_have_text("You have logged out.")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#auth-error")).to_have_text("Wrong username or password.")

    log_in(page, "ana")
    expect(page.locator("#session-list button")).to_have_count(1)


def test_reply_streams_in_piece_by_piece_and_is_still_there_after_a_reload(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    token = live_server.register("ben")
    page = open_page()
    log_in(page, "ben")
    # Keyboard only: Shift+Enter is a new line, Enter sends.
    box = page.get_by_label("Your message")
    expect(box).to_be_focused()
    box.press_sequentially("I had a long day")
    box.press("Shift+Enter")
    box.press_sequentially("and I can't sleep")
    box.press("Enter")

    full = FakeGenerator.full_text()
    expect(replies(page)).to_have_count(1)
    expect(page.locator("#transcript")).to_have_attribute("aria-busy", "true")
    expect(replies(page).first).to_have_attribute("data-state", "complete")
    expect(replies(page).first.locator(".text")).to_have_text(full)
    # It grew in front of the person: they saw partial text before the whole reply.
    grown = watched(page)["replyTexts"]
    partial = [text for text in grown if text != full]
    assert partial and all(full.startswith(text) for text in partial), grown
    expect(page.locator("#transcript")).to_have_attribute("aria-busy", "false")

    stored = live_server.messages(token, session_of(page))
    assert [(m["role"], m["text"]) for m in stored] == [
        ("user", "I had a long day\nand I can't sleep"),
        ("assistant", full),
    ]
    page.reload()
    items = page.locator("#transcript > li")
    expect(items).to_have_count(2)
    expect(items.nth(0).locator(".text")).to_have_text("I had a long day\nand I can't sleep")
    expect(items.nth(1).locator(".text")).to_have_text(full)
    assert [items.nth(i).get_attribute("data-message-id") for i in range(2)] == [
        m["id"] for m in stored
    ]


def test_crisis_message_shows_call_and_text_links_before_the_reply(
    open_page: PageFactory, live_server: LiveServer, artifacts: object
) -> None:
    live_server.register("cam", locale="GB")
    page = open_page(PHONE)
    log_in(page, "cam")
    send(page, f"I am in {CRISIS_WORD} and I don't want to be here")

    panel = page.get_by_role("alert").filter(has_text="You don't have to face this alone")
    expect(panel).to_be_visible()
    expect(panel).to_be_focused()
    expect(panel).to_contain_text("Samaritans")
    expect(page.get_by_role("link", name="Call 116 123")).to_have_attribute("href", "tel:116123")
    expect(page.get_by_role("link", name="Text SHOUT to 85258")).to_have_attribute(
        "href", "sms:85258?body=SHOUT"
    )
    expect(page.get_by_role("link", name="Emergency services: call 999")).to_have_attribute(
        "href", "tel:999"
    )
    expect(replies(page).first).to_have_attribute("data-state", "complete")
    seen = watched(page)["seen"]
    assert seen.index("crisis") < seen.index("replies:1"), seen
    # Above the conversation, where it is read first.
    above = page.evaluate(
        "document.getElementById('crisis-panel').compareDocumentPosition("
        "document.getElementById('transcript')) & Node.DOCUMENT_POSITION_FOLLOWING"
    )
    assert above
    path = f"{artifacts}/crisis-panel-phone.png"
    page.screenshot(path=path)
    print(f"screenshot: {path}")

    # It stays: after the reply, and after a reload.
    page.reload()
    expect(page.get_by_role("link", name="Call 116 123")).to_be_visible()


def test_stop_ends_a_reply_being_written_and_keeps_what_was_written(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    token = live_server.register("dee")
    page = open_page()
    log_in(page, "dee")
    send(page, f"{ENDLESS} tell me a long story")
    reply = replies(page).first
    expect(reply.locator(".text")).to_contain_text("word1")
    page.get_by_role("button", name="Stop reply").click()

    expect(reply).to_have_attribute("data-state", "cancelled")
    expect(reply.locator(".meta")).to_have_text("You stopped this reply.")
    expect(page.get_by_role("button", name="Stop reply")).to_be_hidden()
    stored = live_server.messages(token, session_of(page))[-1]
    assert stored["status"] == "cancelled"
    assert stored["text"] == reply.locator(".text").text_content()


@pytest.mark.parametrize(
    "settings_overrides", [{"access_token_ttl_s": 60, "token_expiring_lead_s": 58.5}]
)
def test_expiring_sign_in_is_renewed_with_the_password_on_the_same_socket(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    live_server.register("kai")
    page = open_page()
    sockets: list[object] = []
    page.on("websocket", lambda socket: sockets.append(socket))
    log_in(page, "kai")
    first_token = token_of(page)

    form = page.locator("#reauth-form")
    expect(form).to_be_visible()
    expect(form).to_contain_text("To stay signed in, please enter your password again.")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Stay signed in").click()

    expect(form).to_be_hidden()
    assert token_of(page) != first_token
    assert live_server.user_id(token_of(page)) == live_server.user_id(first_token)
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    assert len(sockets) == 1
