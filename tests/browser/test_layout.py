"""The client on a phone: nothing wider than the screen, every control within reach."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import LiveServer, PageFactory
from tests.browser.pages import PHONE, log_in, replies, send
from tests.fakes import FakeGenerator


def _overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the screen (0: no sideways scrolling)."""
    width: int = page.evaluate(
        "Math.max(document.documentElement.scrollWidth, document.body.scrollWidth)"
        " - document.documentElement.clientWidth"
    )
    return width


def _within_screen(page: Page, name: str, role: str = "button") -> None:
    control = page.get_by_role(role, name=name)  # type: ignore[arg-type]
    control.scroll_into_view_if_needed()
    expect(control).to_be_in_viewport()
    box = control.bounding_box()
    size = page.viewport_size
    assert box is not None and size is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= size["width"], (name, box)
    assert box["y"] >= 0 and box["y"] + box["height"] <= size["height"], (name, box)
    assert box["height"] >= 40, f"{name} is too small to tap: {box}"


@pytest.mark.parametrize("width", [360, PHONE["width"]])
def test_phone_layout_has_no_sideways_scrolling_and_controls_within_reach(
    open_page: PageFactory, live_server: LiveServer, artifacts: object, width: int
) -> None:
    live_server.register("ivy")
    page = open_page({"width": width, "height": PHONE["height"]})
    assert _overflow(page) <= 0
    _within_screen(page, "Log in")
    _within_screen(page, "Create account")

    log_in(page, "ivy")
    send(page, "a word longer than the screen: " + "unbroken" * 30)
    expect(replies(page).first).to_have_attribute("data-state", "complete")
    expect(replies(page).first.locator(".text")).to_have_text(FakeGenerator.full_text())

    assert _overflow(page) <= 0
    for name in ("Send", "New conversation", "Log out"):
        _within_screen(page, name)
    _within_screen(page, "Your message", role="textbox")
    if width == PHONE["width"]:
        path = f"{artifacts}/phone-streamed-reply.png"
        page.screenshot(path=path)
        print(f"screenshot: {path}")
