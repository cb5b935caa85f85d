"""JSON Schema validation that never goes to the network: every `$ref` resolves inside the
documents given here, and anything else fails instead of being fetched."""

from __future__ import annotations

import json
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator
from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource
from referencing.jsonschema import DRAFT7, DRAFT202012

from tests.paths import ROOT

ASYNCAPI_SPECS = ROOT / "tests" / "js" / "node_modules" / "@asyncapi" / "specs"
DOCUMENT_URI = "urn:haven:document"


def _refuse(uri: str) -> Resource:
    raise NoSuchResource(ref=uri)


def asyncapi_3_validator() -> Validator:
    """The official AsyncAPI 3.0.0 JSON Schema from the `@asyncapi/specs` npm package. Its
    definitions are keyed by their `$id` URLs; they are all registered, so none is fetched."""
    path = ASYNCAPI_SPECS / "schemas" / "3.0.0.json"
    if not path.exists():
        pytest.fail(
            f"{path.relative_to(ROOT)} is missing: run `make setup` (it installs tests/js's npm "
            "packages, @asyncapi/specs among them)"
        )
    schema = json.loads(path.read_text(encoding="utf-8"))
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resources(
        (uri, DRAFT7.create_resource(definition))
        for uri, definition in schema["definitions"].items()
    )
    return Draft7Validator(schema, registry=registry)


def validator_for(document: dict[str, Any], pointer: str, *, draft: str = "2020-12") -> Validator:
    """A validator for the schema at `pointer` (e.g. `#/components/schemas/X`) of `document`,
    whose own `#/...` references resolve within the document."""
    specification, cls = (
        (DRAFT7, Draft7Validator) if draft == "7" else (DRAFT202012, Draft202012Validator)
    )
    resource = specification.create_resource(document)
    registry: Registry[Any] = Registry(retrieve=_refuse).with_resource(DOCUMENT_URI, resource)
    validator: Validator = cls({"$ref": f"{DOCUMENT_URI}{pointer}"}, registry=registry)
    return validator
