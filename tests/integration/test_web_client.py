"""The web client in headless Chromium against the real stack: Ray Serve's proxy with Haven's
hooks, the Gateway, the users' ConnectionActors and the real classifier and language model."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.browser.chromium import launched_chromium
from tests.browser.pages import WATCH_SCRIPT, log_in, replies, send, session_of, token_of, watched
from tests.integration.conftest import Server
from tests.paths import ROOT
from tests.rest_client import PASSWORD

pytestmark = pytest.mark.integration

# The same message the socket-level safety test sends; the real classifier scores it critical.
CRISIS_TEXT = "I've taken all my pills tonight, this is goodbye"
# A real model on a shared 2-core machine: a reply (24 tokens) or an argon2 hash can take a while.
SLOW_MS = 180_000
STEP_MS = 60_000


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """One headless Chromium for this module; Playwright's event loop ends with it."""
    with launched_chromium() as browser:
        yield browser


def test_a_person_chats_and_sees_crisis_links_before_the_reply_through_ray_serve(
    chromium: Any, server: Server
) -> None:
    context = chromium.new_context(base_url=server.http, viewport={"width": 1280, "height": 800})
    context.add_init_script(WATCH_SCRIPT)
    page = context.new_page()
    page.set_default_timeout(STEP_MS)
    # Chromium reports a CSP violation as a console error, as it does an uncaught JS error.
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: (
            problems.append(f"console.{message.type}: {message.text}")
            if message.type == "error"
            else None
        ),
    )
    try:
        response = page.goto("/")
        assert response is not None and response.ok
        # The page runs under its strict policy through the proxy, so a violation would show.
        assert "script-src 'self'" in response.headers["content-security-policy"]

        # Register through the form (which signs the person in), then log out and in again.
        username = f"web-{uuid.uuid4().hex[:8]}"
        page.get_by_label("Username").fill(username)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        status = page.locator("#connection-status")
        expect(status).to_have_attribute("data-state", "connected", timeout=STEP_MS)
        page.get_by_role("button", name="Log out").click()
        expect(page.locator("#auth-notice")).to_have_text("You have logged out.")
        log_in(page, username, timeout_ms=STEP_MS)

        # A new conversation of the person's own, made on the server and opened.
        sessions = page.locator("#session-list button")
        expect(sessions).to_have_count(1, timeout=STEP_MS)
        page.get_by_role("button", name="New conversation").click()
        expect(sessions).to_have_count(2, timeout=STEP_MS)
        current = page.locator("#session-list button[aria-current=true]")
        expect(current).to_have_attribute("data-session-id", session_of(page), timeout=STEP_MS)
        session_id, token = session_of(page), token_of(page)

        # An everyday message: the model's reply grows on screen and completes.
        everyday = "I had a long day at work and I can't sleep"
        send(page, everyday)
        reply = replies(page).first
        expect(reply).to_have_attribute("data-state", "complete", timeout=SLOW_MS)
        shown = reply.locator(".text").text_content() or ""
        assert shown.strip(), "the completed reply is empty"
        grown = watched(page)["replyTexts"]
        assert any(text != shown and shown.startswith(text) for text in grown), grown
        stored = server.messages(token, session_id)
        assert [(m["role"], m["text"]) for m in stored] == [
            ("user", everyday),
            ("assistant", shown),
        ]

        # A critical message: call and text links appear before the fixed crisis reply.
        send(page, CRISIS_TEXT)
        panel = page.get_by_role("alert").filter(has_text="You don't have to face this alone")
        expect(panel).to_be_visible(timeout=SLOW_MS)
        expect(page.get_by_role("link", name="Call 988")).to_have_attribute("href", "tel:988")
        expect(page.get_by_role("link", name="Text HOME to 741741")).to_have_attribute(
            "href", "sms:741741?body=HOME"
        )
        expect(page.get_by_role("link", name="Emergency services: call 911")).to_have_attribute(
            "href", "tel:911"
        )
        expect(replies(page)).to_have_count(2, timeout=SLOW_MS)
        crisis_reply = replies(page).nth(1)
        expect(crisis_reply).to_have_attribute("data-state", "complete", timeout=SLOW_MS)
        expect(crisis_reply.locator(".text")).to_contain_text("988")
        seen = watched(page)["seen"]
        assert seen.index("crisis") < seen.index("replies:2"), seen

        artifacts = ROOT / "artifacts"
        artifacts.mkdir(exist_ok=True)
        page.screenshot(path=str(artifacts / "web-client-ray.png"), full_page=True)

        assert problems == [], problems
    finally:
        context.close()
