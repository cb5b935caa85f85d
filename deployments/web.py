"""The web client: `GET /` and its assets under `/static/`, with strict security headers.

The files are package data of `haven.web`, read once at import. Only those files are served,
looked up by exact name, so no path a client sends ever reaches the filesystem. The routes stay
out of the OpenAPI schema, which documents the REST API only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import PurePosixPath

from fastapi import APIRouter, Request, Response
from fastapi.responses import PlainTextResponse

router = APIRouter(include_in_schema=False)

STATIC_PREFIX = "/static"
_CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# A Host header is the requester's own to choose; only a plain host[:port] goes into the CSP.
_PLAIN_HOST = re.compile(r"^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:.]+\](:\d{1,5})?$")


@dataclass(frozen=True)
class Asset:
    body: bytes
    content_type: str


def _load_assets() -> dict[str, Asset]:
    assets: dict[str, Asset] = {}
    for entry in resources.files("haven.web").iterdir():
        suffix = PurePosixPath(entry.name).suffix
        if entry.is_file() and suffix in _CONTENT_TYPES:
            assets[entry.name] = Asset(entry.read_bytes(), _CONTENT_TYPES[suffix])
    return assets


ASSETS = _load_assets()


def content_security_policy(host: str | None) -> str:
    """Everything from this origin only; no inline script or style, no framing.

    `connect-src 'self'` covers the same host's ws/wss in current browsers; the explicit
    entries keep older ones able to open the socket."""
    connect = ["'self'"]
    if host and _PLAIN_HOST.match(host):
        connect += [f"ws://{host}", f"wss://{host}"]
    return "; ".join(
        [
            "default-src 'self'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "object-src 'none'",
            "base-uri 'none'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


def _security_headers(request: Request) -> dict[str, str]:
    return {
        "Content-Security-Policy": content_security_policy(request.headers.get("host")),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        # Revalidated on every load, so a new release of the client is picked up at once.
        "Cache-Control": "no-cache",
    }


def _serve(request: Request, asset: Asset | None) -> Response:
    headers = _security_headers(request)
    if asset is None:
        return PlainTextResponse("Not Found", status_code=404, headers=headers)
    return Response(asset.body, media_type=asset.content_type, headers=headers)


@router.get("/")
async def index(request: Request) -> Response:
    return _serve(request, ASSETS["index.html"])


@router.get("/counsellor")
async def counsellor_console(request: Request) -> Response:
    return _serve(request, ASSETS["counsellor.html"])


# The pages have one address each, `/` and `/counsellor`.
_PAGES = ("index.html", "counsellor.html")


@router.get(STATIC_PREFIX + "/{name}")
async def static_asset(name: str, request: Request) -> Response:
    return _serve(request, None if name in _PAGES else ASSETS.get(name))
