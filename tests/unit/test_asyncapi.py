"""docs/asyncapi.yaml is generated from the wire models, valid AsyncAPI 3.0, and stays so."""

from __future__ import annotations

import copy
import inspect
import json
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
import yaml
from jsonschema.protocols import Validator
from pydantic import BaseModel

from haven import asyncapi, protocol
from haven.errors import RETRYABLE_CLOSE_CODES
from haven.protocol import ClientFrame, parse_client_frame
from tests.paths import ROOT
from tests.schema_check import asyncapi_3_validator, validator_for

DOC = ROOT / "docs" / "asyncapi.yaml"
ClientModels = get_args(ClientFrame)


@pytest.fixture(scope="module")
def spec() -> Validator:
    return asyncapi_3_validator()


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    return asyncapi.build()


def _errors(spec: Validator, document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message[:200]}" for e in spec.iter_errors(document)]


def _wire_models() -> dict[str, type[BaseModel]]:
    """Every model in haven.protocol that has a literal `type`, found without the unions."""
    found = {}
    for _, model in inspect.getmembers(protocol, inspect.isclass):
        if issubclass(model, BaseModel) and model.__module__ == protocol.__name__:
            field = model.model_fields.get("type")
            if field is not None and get_origin(field.annotation) is Literal:
                found[asyncapi.message_name(model)] = model
    return found


def _payload_pointer(document: dict[str, Any], name: str) -> str:
    ref: str = document["components"]["messages"][name]["payload"]["$ref"]
    return ref


def test_committed_document_is_what_the_models_generate() -> None:
    assert DOC.read_text(encoding="utf-8") == asyncapi.render(), (
        "docs/asyncapi.yaml is out of date: run python -m haven.asyncapi --write"
    )
    assert yaml.safe_load(DOC.read_text(encoding="utf-8")) == asyncapi.build()


def test_generated_document_is_valid_asyncapi_3(spec: Validator, document: dict[str, Any]) -> None:
    assert document["asyncapi"] == "3.0.0"
    assert _errors(spec, document) == []
    assert asyncapi.unresolved_refs(document) == []


@pytest.mark.parametrize(
    ("where", "value"),
    [
        (("asyncapi",), "2.6.0"),
        (("operations", "sendPing", "action"), "publish"),
        (("components", "messages", "ping", "payloads"), {"type": "object"}),
        (("channels", "ws", "bindings", "ws", "method"), "PUT"),
        (("components", "schemas", "Ping", "type"), 5),
        (("components", "correlationIds", "replyId", "location"), "payload.message_id"),
        (("components", "securitySchemes", "queryToken", "in"), "body"),
    ],
)
def test_official_schema_rejects_a_broken_copy(
    spec: Validator, document: dict[str, Any], where: tuple[str, ...], value: object
) -> None:
    broken = copy.deepcopy(document)
    node = broken
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = value
    assert _errors(spec, broken), f"{'.'.join(where)} = {value!r} passed validation"


def test_a_message_reference_that_points_nowhere_is_caught(document: dict[str, Any]) -> None:
    broken = copy.deepcopy(document)
    broken["channels"]["ws"]["messages"]["ping"] = {"$ref": "#/components/messages/pingg"}
    broken["operations"]["sendCancel"]["messages"] = [{"$ref": "#/channels/ws/messages/stop"}]
    assert asyncapi.unresolved_refs(broken) == [
        "#/components/messages/pingg",
        "#/channels/ws/messages/stop",
    ]


def test_every_wire_model_is_a_message_of_the_channel_and_of_one_operation(
    document: dict[str, Any],
) -> None:
    models = _wire_models()
    assert len(models) == 24
    messages = document["components"]["messages"]
    assert set(messages) == set(models)
    assert set(document["channels"]["ws"]["messages"]) == set(models)
    actions: dict[str, list[str]] = {}
    for operation in document["operations"].values():
        for ref in operation["messages"]:
            actions.setdefault(ref["$ref"].rsplit("/", 1)[-1], []).append(operation["action"])
    for name, model in models.items():
        expected = "send" if model in ClientModels else "receive"
        assert actions.get(name) == [expected], name
        schema = asyncapi.resolve(document, _payload_pointer(document, name))
        assert set(schema["properties"]) == set(model.model_fields), name


def test_every_example_is_valid_against_its_payload_schema(document: dict[str, Any]) -> None:
    for name, message in document["components"]["messages"].items():
        validator = validator_for(document, _payload_pointer(document, name), draft="7")
        assert message["examples"], name
        for example in message["examples"]:
            payload = example["payload"]
            validator.validate(payload)
            # The schema is not vacuous: an unknown field or a missing `type` is refused.
            assert not validator.is_valid({**payload, "unexpected": 1}), name
            assert not validator.is_valid({k: v for k, v in payload.items() if k != "type"}), name


def test_client_frame_examples_are_what_the_server_parses(document: dict[str, Any]) -> None:
    for model in ClientModels:
        name = asyncapi.message_name(model)
        for example in document["components"]["messages"][name]["examples"]:
            raw = json.dumps(example["payload"])
            assert type(parse_client_frame(raw, max_message_chars=4000)) is model


def test_server_event_schemas_describe_frames_as_sent(document: dict[str, Any]) -> None:
    """A field that is null is left out on the wire, so the schema has no null; the rest is
    always there, so it is required."""
    pointer = _payload_pointer(document, "user_message")
    validator = validator_for(document, pointer, draft="7")
    event = protocol.UserMessageEvent(text="hi", session_id="s", message_id="m")
    sent = json.loads(event.to_json())
    validator.validate(sent)
    assert "seq" not in sent and "client_message_id" not in sent
    assert not validator.is_valid({**sent, "seq": None})
    assert not validator.is_valid({k: v for k, v in sent.items() if k != "timestamp"})
    required = asyncapi.resolve(document, pointer)["required"]
    assert required == ["timestamp", "type", "text", "session_id", "message_id"]


def test_client_message_id_correlates_a_message_with_its_confirmation(
    document: dict[str, Any],
) -> None:
    messages = document["components"]["messages"]
    for name in ("session_message", "user_message"):
        ref = messages[name]["correlationId"]["$ref"]
        location = asyncapi.resolve(document, ref)["location"]
        assert location == "$message.payload#/client_message_id"
        schema = asyncapi.resolve(document, _payload_pointer(document, name))
        assert "client_message_id" in schema["properties"]
    sent = messages["session_message"]["examples"][0]["payload"]["client_message_id"]
    echoed = messages["user_message"]["examples"][0]["payload"]["client_message_id"]
    assert sent == echoed


def test_close_codes_are_listed_with_whether_to_reconnect(document: dict[str, Any]) -> None:
    channel = document["channels"]["ws"]
    listed = {row["code"]: row["retryable"] for row in channel["x-close-codes"]}
    assert listed == RETRYABLE_CLOSE_CODES
    for code in RETRYABLE_CLOSE_CODES:
        assert f"\n| {code} |" in channel["description"]


def test_handshake_query_parameters_and_security_are_documented(
    document: dict[str, Any],
) -> None:
    binding = document["channels"]["ws"]["bindings"]["ws"]
    assert set(binding["query"]["properties"]) == {"token", "last_seq"}
    assert (
        "haven.msgpack.v1"
        in binding["headers"]["properties"]["Sec-WebSocket-Protocol"]["description"]
    )
    schemes = document["components"]["securitySchemes"]
    assert (schemes["httpBearerToken"]["type"], schemes["httpBearerToken"]["scheme"]) == (
        "http",
        "bearer",
    )
    assert (schemes["queryToken"]["in"], schemes["queryToken"]["name"]) == ("query", "token")
    protocols = {server["protocol"] for server in document["servers"].values()}
    assert protocols == {"ws", "wss"}


def test_check_fails_on_a_stale_file_and_passes_after_write(tmp_path: Path) -> None:
    target = tmp_path / "asyncapi.yaml"
    target.write_text("asyncapi: 3.0.0\n", encoding="utf-8")
    assert asyncapi.main(["--check", "--path", str(target)]) == 1
    assert asyncapi.main(["--write", "--path", str(target)]) == 0
    assert asyncapi.main(["--check", "--path", str(target)]) == 0
