"""`GET /me/export`: every message the person sent and got, in order, with the escalations about
them, in a document that validates against docs/export.schema.json; another person's data never
appears; the export is rate-limited. On SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

from tests.app.conftest import Harness, SettingsFactory, build_harness
from tests.app.wire import connect, send, until
from tests.fakes import CRISIS_WORD, FakeGenerator

SCHEMA = json.loads((Path(__file__).parents[2] / "docs" / "export.schema.json").read_text())


def _auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _talk(harness: Harness, token: str, session_id: str, texts: list[str]) -> None:
    with connect(harness, token) as ws:
        until(ws, "connection")
        for text in texts:
            send(ws, session_id, text)
            until(ws, "assistant_message_complete")


def _export(harness: Harness, token: str) -> dict[str, Any]:
    response = harness.client.get("/me/export", headers=_auth(token))
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    document: dict[str, Any] = response.json()
    jsonschema.validate(document, SCHEMA, format_checker=jsonschema.FormatChecker())
    return document


def test_export_lists_every_message_in_order_and_validates_against_the_schema(
    harness: Harness,
) -> None:
    ana = harness.register("ana_export", locale="GB")
    bob = harness.register("bob_other")
    first, second = harness.new_session(ana), harness.new_session(ana)
    sent = {first: ["hello there", f"{CRISIS_WORD} it is all too much"], second: ["a calmer day"]}
    for session_id, texts in sent.items():
        _talk(harness, ana, session_id, texts)
    _talk(harness, bob, harness.new_session(bob), ["bob's secret words"])

    document = _export(harness, ana)
    assert document["account"]["username"] == "ana_export"
    assert document["account"]["locale"] == "GB"
    assert "password" not in json.dumps(document["account"])
    assert [s["id"] for s in document["sessions"]] == [first, second]
    for session in document["sessions"]:
        stored = harness.messages(ana, session["id"])
        assert [(m["id"], m["role"], m["text"]) for m in session["messages"]] == [
            (m["id"], m["role"], m["text"]) for m in stored
        ]
        users_words = [m["text"] for m in session["messages"] if m["role"] == "user"]
        assert users_words == sent[session["id"]]
        replies = [m for m in session["messages"] if m["role"] == "assistant"]
        assert replies and all(m["intent"] and m["status"] for m in replies)
    crisis = document["sessions"][0]["messages"][2]
    assert crisis["risk_level"] == "high"
    assert [(e["session_id"], e["risk_level"]) for e in document["escalations"]] == [
        (first, "high")
    ]
    assert "bob" not in json.dumps(document)
    assert FakeGenerator.full_text() in json.dumps(document)


def test_an_account_without_conversations_exports_an_empty_history(harness: Harness) -> None:
    document = _export(harness, harness.register("quiet_one"))
    assert document["sessions"] == [] and document["escalations"] == []


def test_exports_are_limited_per_account(app_settings: SettingsFactory) -> None:
    for harness in build_harness(app_settings(exports_per_user_per_hour=2)):
        ana = harness.register("ana")
        codes = [harness.client.get("/me/export", headers=_auth(ana)).status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        bob = harness.register("bob")
        assert harness.client.get("/me/export", headers=_auth(bob)).status_code == 200


def test_export_needs_a_valid_token(harness: Harness) -> None:
    assert harness.client.get("/me/export").status_code == 401
    assert harness.client.get("/me/export", headers=_auth("not-a-token")).status_code == 401
