"""docs/asyncapi.yaml: the WebSocket protocol as an AsyncAPI 3.0 document, from the wire models.

Every client frame and server event of `haven.protocol` becomes a message whose payload schema is
the model's own JSON schema (definitions hoisted into `components/schemas`), with examples from
`haven.protocol_examples`; error and close codes come from `haven.errors` through the tables of
`haven.protocol_reference`. The document is written from a client's side: `send` operations are
the frames a client sends, `receive` operations the events it gets.

    python -m haven.asyncapi           # print
    python -m haven.asyncapi --write   # write docs/asyncapi.yaml
    python -m haven.asyncapi --check   # exit 1 if docs/asyncapi.yaml differs
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from importlib.metadata import version
from typing import Any, Literal

import yaml
from pydantic import BaseModel

from haven import asyncapi_channel, generated_docs, protocol
from haven.protocol_examples import examples_of
from haven.protocol_reference import (
    CLIENT_FRAMES,
    SECTIONS,
    SERVER_EVENTS,
    error_rows,
    model_doc,
    wire_type,
)

DOC_PATH = generated_docs.DOCS / "asyncapi.yaml"
CHANNEL = "ws"
SCHEMA_REF = "#/components/schemas/{model}"

# Direct answers to a frame, on the socket that sent it (an `error` can answer any frame).
REPLIES: dict[type[BaseModel], tuple[type[BaseModel], ...]] = {
    protocol.SessionMessage: (protocol.UserMessageEvent,),
    protocol.Ping: (protocol.Pong,),
    protocol.Auth: (protocol.Connection, protocol.Authenticated),
    protocol.Resume: (protocol.Resumed,),
}
# The field that ties a message to others, by the first of these fields the payload has.
CORRELATIONS: dict[str, tuple[str, str]] = {
    "client_message_id": (
        "clientMessageId",
        "The client's id of a `session_message`, echoed in the `user_message` that confirms it "
        "(also when a resend is answered with `duplicate: true`).",
    ),
    "message_id": (
        "replyId",
        "The reply's id: the same in its `assistant_message_start`, every "
        "`assistant_message_chunk` and `assistant_message_complete`; `cancel` can name it.",
    ),
}


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _summary(text: str) -> str:
    return re.split(r"(?<=[.!?])\s", text, maxsplit=1)[0]


def _linked(text: str) -> str:
    # The models' descriptions link to sections of docs/protocol.md, which sits beside this file.
    return text.replace("](#", "](protocol.md#")


def _walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _as_sent(schema: dict[str, Any]) -> dict[str, Any]:
    """Events are written with `exclude_none`: a nullable field is absent rather than null, and
    every other field is always present."""
    required = []
    for name, prop in schema.get("properties", {}).items():
        variants = prop.get("anyOf", [])
        if {"type": "null"} in variants:
            rest = [v for v in variants if v != {"type": "null"}]
            del prop["anyOf"]
            prop.pop("default", None)
            prop.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        else:
            required.append(name)
    return {**schema, "required": required}


def _schemas() -> dict[str, dict[str, Any]]:
    """Every model's schema and the definitions inside it, side by side under their names."""
    found: dict[str, dict[str, Any]] = {}
    sides: tuple[tuple[Sequence[type[BaseModel]], Literal["validation", "serialization"]], ...]
    sides = ((CLIENT_FRAMES, "validation"), (SERVER_EVENTS, "serialization"))
    for models, mode in sides:
        for model in models:
            schema = model.model_json_schema(mode=mode, ref_template=SCHEMA_REF)
            hoisted = {model.__name__: schema, **schema.pop("$defs", {})}
            for name, definition in hoisted.items():
                shaped = definition if mode == "validation" else _as_sent(definition)
                if found.setdefault(name, shaped) != shaped:
                    raise ValueError(f"two different schemas are both named {name}")
    for node in _walk(found):
        if isinstance(node.get("description"), str):
            node["description"] = _linked(node["description"])
    return found


def message_name(model: type[BaseModel]) -> str:
    """The message's key in the document: its `type`, but a client frame whose `type` a server
    event also has (`counsellor_message`) gets `_frame` after it, so both have a key."""
    name = wire_type(model)
    if model in CLIENT_FRAMES and name in {wire_type(event) for event in SERVER_EVENTS}:
        return f"{name}_frame"
    return name


def _message(model: type[BaseModel]) -> dict[str, Any]:
    name, doc = wire_type(model), _linked(model_doc(model))
    message: dict[str, Any] = {
        "name": name,
        "title": name.replace("_", " ").capitalize(),
        "summary": _summary(doc),
    }
    if model is protocol.ErrorEvent:
        doc += f"\n\n## Error codes\n\n{SECTIONS['error_codes']()}"
    if doc != message["summary"]:
        message["description"] = doc
    message["payload"] = {"$ref": SCHEMA_REF.format(model=model.__name__)}
    for field, (key, _) in CORRELATIONS.items():
        if field in model.model_fields:
            message["correlationId"] = {"$ref": f"#/components/correlationIds/{key}"}
            break
    if model is protocol.ErrorEvent:
        message["x-error-codes"] = [
            {"code": code, "retryable": retryable, "when": when}
            | ({"close_code": close} if close else {})
            for code, retryable, close, when in error_rows()
        ]
    examples = examples_of(model)
    if not examples:
        raise ValueError(f"{model.__name__} has no example in haven.protocol_examples")
    message["examples"] = [
        {"name": e.name, "summary": e.summary, "payload": e.payload()} for e in examples
    ]
    return message


def _operations() -> dict[str, Any]:
    channel = {"$ref": f"#/channels/{CHANNEL}"}

    def ref(model: type[BaseModel]) -> dict[str, str]:
        return {"$ref": f"#/channels/{CHANNEL}/messages/{message_name(model)}"}

    operations: dict[str, Any] = {}
    for action, models in (("send", CLIENT_FRAMES), ("receive", SERVER_EVENTS)):
        for model in models:
            operation: dict[str, Any] = {
                "action": action,
                "channel": channel,
                "summary": _summary(_linked(model_doc(model))),
                "messages": [ref(model)],
            }
            if model in REPLIES:
                operation["reply"] = {
                    "channel": channel,
                    "messages": list(map(ref, REPLIES[model])),
                }
            operations[f"{action}{_camel(wire_type(model))}"] = operation
    return operations


def build() -> dict[str, Any]:
    """The AsyncAPI document as plain data; raises when one of its `$ref`s points nowhere."""
    models = (*CLIENT_FRAMES, *SERVER_EVENTS)
    messages = {message_name(model): _message(model) for model in models}
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": asyncapi_channel.info(version("haven")),
        "servers": asyncapi_channel.servers(),
        "defaultContentType": "application/json",
        "channels": {
            CHANNEL: asyncapi_channel.channel(
                {name: {"$ref": f"#/components/messages/{name}"} for name in messages}
            )
        },
        "operations": _operations(),
        "components": {
            "schemas": _schemas(),
            "messages": messages,
            "correlationIds": {
                key: {"description": text, "location": f"$message.payload#/{field}"}
                for field, (key, text) in CORRELATIONS.items()
            },
            "securitySchemes": asyncapi_channel.SECURITY_SCHEMES,
        },
    }
    if broken := unresolved_refs(document):
        raise ValueError(f"$refs that point nowhere: {broken}")
    return document


def resolve(document: dict[str, Any], ref: str) -> Any:
    """The node a local `$ref` (`#/a/b`) names; KeyError when there is none."""
    if not ref.startswith("#/"):
        raise KeyError(ref)
    node: Any = document
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, dict) or part not in node:
            raise KeyError(ref)
        node = node[part]
    return node


def unresolved_refs(document: dict[str, Any]) -> list[str]:
    """Every `$ref` in the document that does not name a node of the document."""
    broken = []
    for node in _walk(document):
        ref = node.get("$ref")
        if isinstance(ref, str):
            try:
                resolve(document, ref)
            except KeyError:
                broken.append(ref)
    return broken


class _Dumper(yaml.SafeDumper):
    """Block style for multi-line text, and no `&id` anchors for objects used twice."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(str, _text)


def render() -> str:
    """The YAML of docs/asyncapi.yaml."""
    header = (
        "# Generated by `python -m haven.asyncapi --write` from haven/protocol.py and\n"
        "# haven/protocol_examples.py. Do not edit by hand: tests/unit/test_asyncapi.py fails\n"
        "# when it is out of date.\n"
    )
    body = yaml.dump(build(), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    return header + body


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(argv, module="haven.asyncapi", default_path=DOC_PATH, render=render)


if __name__ == "__main__":
    raise SystemExit(main())
