"""The Serve proxy answers /readyz "starting" and /healthz "ok" before the Gateway can."""

from __future__ import annotations

import asyncio

import httpx
from starlette.types import Receive, Scope, Send

from deployments.proxy_health import HealthBeforeStart


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    # What Serve's proxy answers for a path no application has claimed yet.
    body = f"Path '{scope['path']}' not found. Ping http://.../-/routes".encode()
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _never(scope: Scope, receive: Receive, send: Send) -> None:
    await asyncio.Event().wait()  # the request waits for a replica that is still starting


async def _gateway(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b'{"status":"ready"}'})


def _get(app: HealthBeforeStart, path: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://proxy") as client:
            return await client.get(path)

    return asyncio.run(call())


def test_readyz_is_503_starting_while_no_route_exists() -> None:
    response = _get(HealthBeforeStart(_not_found), "/readyz")
    assert response.status_code == 503 and response.json() == {"status": "starting"}


def test_healthz_is_200_while_no_route_exists() -> None:
    response = _get(HealthBeforeStart(_not_found), "/healthz")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_readyz_is_503_starting_when_the_replica_does_not_answer_in_time() -> None:
    response = _get(HealthBeforeStart(_never, answer_within_s=0.1), "/readyz")
    assert response.status_code == 503 and response.json() == {"status": "starting"}


def test_the_gateways_own_answer_passes_through() -> None:
    response = _get(HealthBeforeStart(_gateway), "/readyz")
    assert response.status_code == 200 and response.json() == {"status": "ready"}


def test_other_paths_keep_the_proxys_404() -> None:
    response = _get(HealthBeforeStart(_not_found), "/nope")
    assert response.status_code == 404 and "not found" in response.text


async def _answers_when_cancelled(scope: Scope, receive: Receive, send: Send) -> None:
    # Serve's proxy answers 500 for a request it sees cancelled (or its client gone).
    try:
        await receive()  # the proxy watches for the client leaving
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        await send({"type": "http.response.start", "status": 500, "headers": []})
        await send({"type": "http.response.body", "body": b"Internal Server Error"})


def test_readyz_is_starting_and_a_late_answer_from_the_proxy_is_dropped() -> None:
    response = _get(HealthBeforeStart(_answers_when_cancelled, answer_within_s=0.1), "/readyz")
    assert response.status_code == 503 and response.json() == {"status": "starting"}
