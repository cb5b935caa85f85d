"""The connection side of docs/asyncapi.yaml: info, servers, security and the `/ws` channel.

What happens at the handshake (query parameters, headers, subprotocols) and when a socket is
closed (close codes) is not carried by any message, so it is described here: the close codes
from `haven.errors` through the tables of `haven.protocol_reference`.
"""

from __future__ import annotations

from typing import Any

from haven.codec import SUBPROTOCOL_MSGPACK
from haven.errors import RETRYABLE_CLOSE_CODES, CloseCode
from haven.protocol import TOKEN_MAX_LENGTH
from haven.protocol_reference import CLOSE_MEANING, SECTIONS, error_rows

ADDRESS = "/ws"
# `last_seq` longer than this, or not only digits, is ignored (deployments/websocket.py).
LAST_SEQ_MAX_DIGITS = 16

SECURITY_SCHEMES: dict[str, Any] = {
    "queryToken": {
        "type": "httpApiKey",
        "name": "token",
        "in": "query",
        "description": "An access token from `POST /auth/login` in the URL: "
        "`/ws?token=JWT` (the original way; URLs end up in logs).",
    },
    "httpBearerToken": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The access token in an `Authorization: Bearer JWT` header (apps and "
        "servers; browsers cannot set it). Without a token in the URL or a header, the first "
        "frame must be `auth` carrying it.",
    },
}
_SECURITY = [{"$ref": f"#/components/securitySchemes/{name}"} for name in SECURITY_SCHEMES]


def info(package_version: str) -> dict[str, Any]:
    return {
        "title": "Haven WebSocket API",
        "version": package_version,
        "description": (
            "The real-time side of Haven, a mental-health support chat: a person's messages go "
            "up one WebSocket, the assistant's reply streams back, and a person at risk is "
            "shown crisis resources before anything else.\n\n"
            "This document is written from a client's side: `send` operations are frames the "
            "client sends, `receive` operations the events it gets. The message types and "
            "field names of the original specification are a contract: Haven adds fields and "
            "message types and never renames or drops one, so ignore what you do not know.\n\n"
            "The full reference, with the order of a turn, resume and the limits, is "
            "docs/protocol.md; accounts and sessions are REST (docs/openapi.json)."
        ),
    }


def servers() -> dict[str, Any]:
    return {
        "development": {
            "host": "localhost:3000",
            "protocol": "ws",
            "title": "Local development",
            "description": "`make serve`: Haven on a local Ray cluster (`PORT` overrides 3000).",
            "security": _SECURITY,
        },
        "production": {
            "host": "{host}",
            "protocol": "wss",
            "title": "Production",
            "description": "A Ray Serve deployment behind TLS.",
            "variables": {
                "host": {
                    "description": "The deployment's host name, with its port if not 443.",
                    "examples": ["haven.example.org"],
                }
            },
            "security": _SECURITY,
        },
    }


def _bindings() -> dict[str, Any]:
    query = {
        "type": "object",
        "properties": {
            "token": {
                "type": "string",
                "minLength": 1,
                "maxLength": TOKEN_MAX_LENGTH,
                "description": "An access token from `POST /auth/login`.",
            },
            "last_seq": {
                "type": "string",
                "pattern": f"^[0-9]{{1,{LAST_SEQ_MAX_DIGITS}}}$",
                "description": "The highest `seq` this client has received: every kept event "
                "after it is replayed right after `connection`, then `resumed`. Anything but "
                "digits is ignored.",
            },
        },
    }
    headers = {
        "type": "object",
        "properties": {
            "Authorization": {
                "type": "string",
                "pattern": "^Bearer .+$",
                "description": "`Bearer JWT`, when there is no `token` in the URL.",
            },
            "Sec-WebSocket-Protocol": {
                "type": "string",
                "description": f"Offer `{SUBPROTOCOL_MSGPACK}` for MessagePack: every frame, "
                "both ways, is then a binary frame holding one MessagePack map with exactly "
                "the keys and values of the JSON form, and `connection.encoding` says so. "
                "Without it, or with any other subprotocol, frames are JSON text.",
            },
        },
    }
    return {"ws": {"method": "GET", "query": query, "headers": headers, "bindingVersion": "0.1.0"}}


def close_codes() -> list[dict[str, Any]]:
    """The published close codes, as structured data for `x-close-codes`."""
    names = {value: name for name, value in vars(CloseCode).items() if name.isupper()}
    rows = []
    for code, retryable in sorted(RETRYABLE_CLOSE_CODES.items()):
        after = sorted({error for error, _, close, _ in error_rows() if close == code})
        meaning = CLOSE_MEANING[names[code]]
        rows.append(
            {
                "code": code,
                "name": names[code],
                "retryable": retryable,
                "after_error": after,
                "meaning": meaning,
            }
        )
    return rows


def channel(messages: dict[str, Any]) -> dict[str, Any]:
    description = (
        "One socket per device; a user may have several, and every event of a turn reaches "
        "all of them. Authenticate with the `token` query parameter, an `Authorization` "
        "header, or an `auth` first frame; a missing, invalid or expired token gets `error` "
        f"`invalid_token`, then close {CloseCode.INVALID_TOKEN} (or "
        f"{CloseCode.TOKEN_EXPIRED} when it expired). On success the first event is "
        "`connection`.\n\n"
        "Every event after `connection` carries `seq`, strictly increasing per user across "
        "their sockets; reconnect with `?last_seq=` (or send `resume`) to get what was "
        "missed.\n\n"
        "## Close codes\n\n"
        "After a retryable close, reconnect with backoff and `?last_seq=`; after a terminal "
        "one, do not reconnect with the same token. The same table is `x-close-codes`.\n\n"
        f"{SECTIONS['close_codes']()}"
    )
    return {
        "address": ADDRESS,
        "title": "Haven chat socket",
        "summary": "The person's messages up, the assistant's replies and safety events down.",
        "description": description,
        "messages": messages,
        "bindings": _bindings(),
        "x-close-codes": close_codes(),
    }
