"""docs/openapi.json: the REST API's OpenAPI document, exactly as the Gateway serves it at
`/openapi.json` (routes, models and error responses are described in deployments/rest.py).

    python -m haven.openapi           # print
    python -m haven.openapi --write   # write docs/openapi.json
    python -m haven.openapi --check   # exit 1 if docs/openapi.json differs
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, cast

from haven import generated_docs

DOC_PATH = generated_docs.DOCS / "openapi.json"


def build() -> dict[str, Any]:
    """The schema of the app `create_app` builds."""
    # Imported here: the Gateway pulls in Ray Serve, which nothing else in this module needs.
    from deployments.gateway import create_app
    from deployments.services import GatewayServices

    # The schema comes from the routes alone; this app is never started or called, so it
    # needs none of the services a running Gateway has.
    schema: dict[str, Any] = create_app(cast(GatewayServices, None)).openapi()
    return schema


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=False) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    return generated_docs.main(argv, module="haven.openapi", default_path=DOC_PATH, render=render)


if __name__ == "__main__":
    raise SystemExit(main())
