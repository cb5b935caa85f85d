"""The web client's routes: the page, its assets, their security headers, nothing else."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from haven.errors import RETRYABLE_CLOSE_CODES
from tests.app.conftest import Harness
from tests.conftest import SQLITE_ONLY

WEB = Path(__file__).resolve().parents[2] / "haven" / "web"


def _csp(harness: Harness, path: str) -> dict[str, str]:
    response = harness.client.get(path)
    assert response.status_code == 200, path
    directives = {}
    for part in response.headers["content-security-policy"].split(";"):
        name, _, value = part.strip().partition(" ")
        directives[name] = value
    return directives


@SQLITE_ONLY
def test_root_serves_the_client_with_strict_security_headers(harness: Harness) -> None:
    response = harness.client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert '<html lang="en">' in response.text
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    csp = _csp(harness, "/")
    assert csp["default-src"] == "'self'"
    assert csp["script-src"] == "'self'"
    assert csp["connect-src"].split() == ["'self'", "ws://testserver", "wss://testserver"]
    assert csp["frame-ancestors"] == "'none'"
    assert "unsafe" not in " ".join(csp.values())


@SQLITE_ONLY
def test_a_host_header_that_is_not_a_plain_host_stays_out_of_the_policy(harness: Harness) -> None:
    response = harness.client.get("/", headers={"host": "evil.example; script-src *"})
    policy = response.headers["content-security-policy"]
    assert "evil" not in policy and "connect-src 'self';" in policy


@SQLITE_ONLY
def test_the_page_has_no_inline_script_and_loads_nothing_from_elsewhere(
    harness: Harness,
) -> None:
    html = harness.client.get("/").text
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all('src="/static/' in tag for tag in scripts)
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handlers need unsafe-inline"
    assert not re.search(r"\sstyle\s*=", html)
    assert not re.search(r'(src|href)="(https?:)?//', html)


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("app.js", "text/javascript; charset=utf-8"),
        ("app.css", "text/css; charset=utf-8"),
    ],
)
def test_assets_are_served_with_their_content_type(
    harness: Harness, name: str, content_type: str
) -> None:
    response = harness.client.get(f"/static/{name}")
    assert response.status_code == 200
    assert response.headers["content-type"] == content_type
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.content == (WEB / name).read_bytes()


@SQLITE_ONLY
def test_every_module_the_client_imports_is_served(harness: Harness) -> None:
    pending, seen = ["app.js"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        response = harness.client.get(f"/static/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"].startswith("text/javascript")
        imported = re.findall(r'from "\./([\w-]+\.js)"', response.text)
        pending += [module for module in imported if module not in seen]
    assert {"app.js", "socket.js", "protocol.js"} <= seen


@SQLITE_ONLY
@pytest.mark.parametrize(
    "path",
    [
        "/static/../pyproject.toml",
        "/static/%2e%2e/pyproject.toml",
        "/static/..%2fpyproject.toml",
        "/static/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/static/__init__.py",
        "/static/index.html",
        "/static/",
        "/static/missing.js",
    ],
)
def test_anything_but_a_client_file_under_the_static_prefix_is_not_found(
    harness: Harness, path: str
) -> None:
    response = harness.client.get(path)
    assert response.status_code == 404
    assert "[project]" not in response.text and "root:" not in response.text


@SQLITE_ONLY
def test_openapi_documents_the_rest_api_only(harness: Harness) -> None:
    paths = harness.client.get("/openapi.json").json()["paths"]
    assert "/" not in paths
    assert not [path for path in paths if path.startswith("/static")]
    assert "/auth/login" in paths and "/sessions" in paths


def test_the_client_retries_exactly_the_close_codes_the_server_publishes_as_retryable() -> None:
    source = (WEB / "protocol.js").read_text()
    table = re.search(r"RETRYABLE_CLOSE_CODES = \{(.*?)\};", source, re.S)
    assert table is not None
    client = {
        int(code): flag == "true" for code, flag in re.findall(r"(\d+): (true|false)", table[1])
    }
    assert client == RETRYABLE_CLOSE_CODES
