"""A worker node is lost while people are mid-conversation: they reconnect, resume, and nothing
they wrote or were answered is lost; Serve recovers on the nodes that are left."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import pytest
from sqlalchemy import text

from haven.storage import Store
from haven.storage.master_key import configured_master_keys
from tests.multinode.chat_client import ResilientChat
from tests.multinode.cluster import (
    GATEWAY_CLASS,
    HOST_CLASS,
    MODEL_CLASSES,
    alive_actors,
    app_running,
    host_stats,
)
from tests.multinode.conftest import REPLY, Deployed, new_person

pytestmark = pytest.mark.multinode

PEOPLE = 4
MESSAGES = 8
T = TypeVar("T")


def wait_for(check: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise TimeoutError(f"not within {timeout_s:.0f} s: {what}")
        time.sleep(0.5)


def stored_messages(database_url: str, session_id: str) -> list[dict[str, Any]]:
    """The session's rows, in conversation order, read from PostgreSQL through the store (the
    texts are sealed at rest, so only the store with the cluster's master key can open them)."""

    async def read() -> list[dict[str, Any]]:
        async with Store.from_url(database_url, configured_master_keys()) as store:
            async with store.engine.connect() as conn:
                owner = (
                    await conn.execute(
                        text("SELECT user_id FROM chat_sessions WHERE id = :session"),
                        {"session": session_id},
                    )
                ).scalar_one()
            records = await store.list_messages(owner, session_id)
            return [record.model_dump(mode="json") for record in records]

    with ThreadPoolExecutor(max_workers=1) as executor:
        return executor.submit(asyncio.run, read()).result()


def placement() -> dict[str, list[str]]:
    return alive_actors([GATEWAY_CLASS, HOST_CLASS, *MODEL_CLASSES])


def placement_with_two_gateways() -> dict[str, list[str]] | None:
    placed = placement()
    return placed if len(placed[GATEWAY_CLASS]) == 2 and app_running() else None


def test_lost_node_mid_conversation_loses_no_message_and_no_reply(haven: Deployed) -> None:
    cluster, server = haven.cluster, haven.server
    workers = {cluster.node_id("node_a"), cluster.node_id("node_b")}

    # Both Gateway replicas and both hosts exist, one of each on each worker; models on the head.
    before = wait_for(placement_with_two_gateways, 60, "two Gateway replicas")
    assert sorted(before[GATEWAY_CLASS]) == sorted(workers)
    assert sorted(before[HOST_CLASS]) == sorted(workers)
    for model in MODEL_CLASSES:
        assert before[model] == [cluster.head_id]
    # A host stops with the Gateway replica that created it, wherever it runs (docs/deploy.md):
    # losing the worker whose replica owns no host shows what spreading the hosts is for.
    hosts = cluster.hosts()
    owners = {host.owner_node_id for host in hosts}
    lost = next((n for n in sorted(workers) if n not in owners), sorted(workers)[0])
    kept = workers - {lost}
    survivors = {h.actor_id for h in hosts if h.node_id != lost and h.owner_node_id != lost}

    people = [new_person(server, f"mn{n}") for n in range(PEOPLE)]
    chats = [
        ResilientChat(server, f"mn{n}", token, session_id, MESSAGES)
        for n, (token, session_id) in enumerate(people)
    ]
    for chat in chats:
        chat.start()
    wait_for(
        lambda: True if all(c.answered >= 2 or c.error for c in chats) else None,
        120,
        "two replies each",
    )
    in_flight = [c.name for c in chats if c.in_flight and not c.replies[c.in_flight]]
    lost_at = time.perf_counter()
    cluster.remove(cluster.worker_named(lost))
    for chat in chats:
        chat.join(timeout=max(1.0, 240 - (time.perf_counter() - lost_at)))
    recovered_s = time.perf_counter() - lost_at

    assert in_flight, "no turn was in flight when the node went"
    assert [c.name for c in chats if c.is_alive()] == []
    assert [(c.name, c.error) for c in chats if c.error] == []
    closes = [code for c in chats for code in c.closes]
    # Everyone on the lost node's Gateway replica or host was told to reconnect, with a
    # retryable code; nobody waited on a silent socket.
    assert closes and set(closes) <= {1006, 1012}, closes
    assert [c.stalls for c in chats] == [0] * PEOPLE

    for chat, (token, session_id) in zip(chats, people, strict=True):
        seqs = [seen.seq for seen in chat.seen]
        assert seqs == sorted(set(seqs)), f"{chat.name}: seq not strictly increasing"
        rows = stored_messages(haven.database_url, session_id)
        # Every message stored once, in the order sent, each followed by its one reply.
        assert [r["role"] for r in rows] == ["user", "assistant"] * MESSAGES
        users, replies = rows[0::2], rows[1::2]
        assert [(r["client_message_id"], r["text"]) for r in users] == chat.outgoing
        assert {r["status"] for r in replies} == {"complete"}
        assert {r["text"] for r in replies} == {"".join(REPLY.pieces).strip()}
        # The client saw exactly that reply complete for each message (live or replayed).
        for (cmid, _), reply in zip(chat.outgoing, replies, strict=True):
            assert chat.replies[cmid] == {reply["id"]}, f"{chat.name}: {cmid}"
        over_rest = server.messages(token, session_id)
        assert [m["id"] for m in over_rest] == [r["id"] for r in rows]

    # Serve put the lost Gateway replica back on the worker that is left; hosts live there too,
    # and the hosts that neither ran on the lost node nor belonged to its replica never stopped.
    after = wait_for(placement_with_two_gateways, 120, "Serve running, two Gateways again")
    assert set(after[GATEWAY_CLASS]) == kept
    assert set(after[HOST_CLASS]) == kept
    assert survivors <= {host.actor_id for host in cluster.hosts()}

    # A new socket works end to end.
    token, session_id = new_person(server, "mn-after")
    fresh = ResilientChat(server, "mn-after", token, session_id, 1)
    fresh.run()
    assert fresh.error is None and fresh.closes == [] and fresh.answered == 1

    # Everyone has closed: no host still holds a socket, not even one whose reader was the
    # replica on the lost node (hosts check for dead replicas every `gateway_check_s`).
    def hosts_empty() -> dict[str, dict[str, int]] | None:
        stats = host_stats()
        return (
            stats
            if stats and all(s == {"users": 0, "sockets": 0} for s in stats.values())
            else None
        )

    try:
        wait_for(hosts_empty, 30, "every host lets go of every socket")
    except TimeoutError:
        pytest.fail(f"hosts still hold users or sockets: {host_stats()}")

    timings = {**haven.timings_s, "node_lost_until_all_done": recovered_s}
    print(
        "multinode:",
        {name: round(seconds, 1) for name, seconds in timings.items()},
        "closes:",
        closes,
        "hosts kept:",
        len(survivors),
        "resends:",
        sum(c.resends for c in chats),
        "failed reconnects:",
        sum(c.failed_attempts for c in chats),
    )
