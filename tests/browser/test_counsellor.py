"""A counsellor in the console at /counsellor, and the person's view of them, in Chromium."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, PageFactory
from tests.browser.pages import log_in, replies, send
from tests.fakes import CRISIS_WORD
from tests.rest_client import PASSWORD


def _counsellor(live_server: LiveServer, name: str) -> None:
    token = live_server.register(name)
    account = live_server.services.tokens.verify(token).user_id
    assert live_server.call(live_server.services.store.set_role(account, "counsellor"))


def _console(open_page: PageFactory, name: str) -> Page:
    page: Page = open_page()
    page.goto("/counsellor")
    page.get_by_label("Username").fill(name)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#connection-status")).to_have_attribute("data-state", "connected")
    return page


def test_counsellor_joins_from_the_live_queue_talks_and_hands_back(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    _counsellor(live_server, "cara")
    live_server.register("ana")
    console = _console(open_page, "cara")
    expect(console.locator("#queue-empty")).to_be_visible()

    person = open_page()
    log_in(person, "ana")
    send(person, f"{CRISIS_WORD} I can't do this anymore")
    expect(replies(person)).to_have_count(1)

    # The escalation reaches the console live, with its level and the person's name only.
    entry = console.locator(".queue-entry")
    expect(entry).to_have_count(1)
    expect(entry.locator(".level")).to_have_text("High")
    expect(entry.locator(".who")).to_have_text("ana")
    console.get_by_role("button", name="Join ana").click()
    expect(console.locator("#conversation-title")).to_have_text("With ana")
    expect(console.locator("#transcript .from-user .text")).to_have_text(
        [f"{CRISIS_WORD} I can't do this anymore"]
    )

    # The person sees who joined, above the conversation.
    banner = person.locator("#counsellor-banner")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("cara, a trained counsellor")

    console.get_by_label("Your reply").fill("Hi Ana, I'm Cara. I'm here with you.")
    console.get_by_role("button", name="Send").click()
    bubble = person.locator(".message.counsellor")
    expect(bubble.locator(".text")).to_have_text("Hi Ana, I'm Cara. I'm here with you.")
    expect(bubble.locator(".name")).to_have_text("cara, counsellor")

    # The person's reply arrives live in the console; the assistant stays quiet.
    send(person, "thank you, it helps to talk to someone")
    expect(console.locator("#transcript .from-user .text")).to_have_count(2)
    expect(console.locator("#transcript .from-user .text").last).to_have_text(
        "thank you, it helps to talk to someone"
    )
    expect(replies(person)).to_have_count(1)

    console.get_by_role("button", name="Leave, hand back to the assistant").click()
    expect(banner).to_be_hidden()
    expect(person.locator("#transcript .notice").last).to_contain_text(
        "cara has left the conversation"
    )
    expect(console.locator("#composer")).to_be_hidden()
    send(person, "ok")
    expect(replies(person)).to_have_count(2)

    # Reloaded from storage, the counsellor's words are still theirs, under their name.
    person.reload()
    expect(person.locator("#connection-status")).to_have_attribute("data-state", "connected")
    expect(person.locator(".message.counsellor .text")).to_have_text(
        ["Hi Ana, I'm Cara. I'm here with you."]
    )
    expect(person.locator(".message.counsellor .name")).to_have_text(["cara, counsellor"])


def test_console_refuses_an_account_that_is_not_a_counsellors(
    open_page: PageFactory, live_server: LiveServer
) -> None:
    live_server.register("ana")
    page: Page = open_page()
    page.goto("/counsellor")
    page.get_by_label("Username").fill("ana")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#auth-error")).to_have_text("This account is not a counsellor's.")
    expect(page.locator("#desk-view")).to_be_hidden()
