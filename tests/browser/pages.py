"""What a person does in the web client, and what a test watches while they do it."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.rest_client import PASSWORD

PHONE = {"width": 390, "height": 844}

# Records, in the page, what a person would have seen in between two checks of a test: every
# connection state shown, every text an assistant reply had while it grew, and the order in
# which the crisis panel and the first reply of a turn appeared.
WATCH_SCRIPT = """
window.__watch = { states: [], replyTexts: [], seen: [] };
const record = () => {
  const w = window.__watch;
  const status = document.getElementById("connection-status");
  const state = status && status.dataset.state;
  if (state && w.states[w.states.length - 1] !== state) w.states.push(state);
  for (const node of document.querySelectorAll(".message.assistant .text")) {
    const text = node.textContent;
    if (text && !w.replyTexts.includes(text)) w.replyTexts.push(text);
  }
  const panel = document.getElementById("crisis-panel");
  if (panel && !panel.hidden && !w.seen.includes("crisis")) w.seen.push("crisis");
  const replies = document.querySelectorAll(".message.assistant").length;
  const mark = "replies:" + replies;
  if (replies && !w.seen.includes(mark)) w.seen.push(mark);
};
new MutationObserver(record).observe(document, {
  subtree: true, childList: true, attributes: true, characterData: true,
});
"""


def log_in(
    page: Page, username: str, password: str = PASSWORD, timeout_ms: float | None = None
) -> None:
    """`timeout_ms` is for a server slower than Playwright's default wait (argon2 on a busy
    machine)."""
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#chat-view")).to_be_visible(timeout=timeout_ms)
    status = page.locator("#connection-status")
    expect(status).to_have_attribute("data-state", "connected", timeout=timeout_ms)


def send(page: Page, text: str) -> None:
    box = page.get_by_label("Your message")
    box.fill(text)
    box.press("Enter")


def replies(page: Page) -> Any:
    return page.locator(".message.assistant")


def watched(page: Page) -> dict[str, list[str]]:
    result: dict[str, list[str]] = page.evaluate("window.__watch")
    return result


def token_of(page: Page) -> str:
    token: str = page.evaluate("sessionStorage.getItem('haven.token')")
    return token


def session_of(page: Page) -> str:
    session: str = page.evaluate("sessionStorage.getItem('haven.session')")
    return session
