"""docs/protocol.md is generated from the wire models and the typed errors, and stays so."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import get_args

import pytest

from haven import protocol_reference
from haven.errors import RETRYABLE_CLOSE_CODES, CloseCode, HavenError
from haven.protocol import ClientFrame, ServerEvent
from haven.settings import Settings
from tests.paths import ROOT as REPO_ROOT

DOC = REPO_ROOT / "docs" / "protocol.md"


@pytest.fixture(scope="module")
def rendered() -> str:
    return protocol_reference.render()


def _section(markdown: str, heading: str) -> str:
    start = markdown.index(f"\n{heading}\n")
    end = markdown.find("\n## ", start + 1)
    return markdown[start : end if end != -1 else None]


def test_committed_reference_is_what_the_models_render(rendered: str) -> None:
    assert DOC.read_text(encoding="utf-8") == rendered, (
        "docs/protocol.md is out of date: run python -m haven.protocol_reference --write"
    )


def test_every_client_frame_and_server_event_has_its_own_section(rendered: str) -> None:
    client = _section(rendered, "## Client → server")
    server = _section(rendered, "## Server → client")
    client_types = [get_args(m.model_fields["type"].annotation)[0] for m in get_args(ClientFrame)]
    server_models = get_args(get_args(ServerEvent)[0])
    server_types = [get_args(m.model_fields["type"].annotation)[0] for m in server_models]
    assert {"session_message", "ping", "cancel", "auth", "resume"} <= set(client_types)
    assert len(server_types) == 16
    for name in client_types:
        assert f"\n### `{name}`\n" in client
    for name in server_types:
        assert f"\n### `{name}`\n" in server


def test_every_field_of_every_wire_model_is_listed(rendered: str) -> None:
    models = [
        *get_args(ClientFrame),
        *get_args(get_args(ServerEvent)[0]),
        *protocol_reference.OBJECTS,
    ]
    for model in models:
        for name, info in model.model_fields.items():
            assert f"| `{name}` |" in rendered, f"{model.__name__}.{name}"
            if name != "type":
                assert info.description and info.description in rendered


def test_every_close_code_is_in_the_table_as_retryable_or_terminal(rendered: str) -> None:
    table = _section(rendered, "## Close codes")
    constants = {value for name, value in vars(CloseCode).items() if name.isupper()}
    assert constants == set(RETRYABLE_CLOSE_CODES)
    for code, retryable in RETRYABLE_CLOSE_CODES.items():
        rows = [line for line in table.splitlines() if line.startswith(f"| {code} |")]
        assert len(rows) == 1, code
        cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
        assert cells[2] == ("retryable" if retryable else "terminal"), code


def test_close_codes_that_must_not_be_retried_are_terminal(rendered: str) -> None:
    table = _section(rendered, "## Close codes")
    for code in (CloseCode.INVALID_TOKEN, CloseCode.TOO_MANY_CONNECTIONS, CloseCode.LOGGED_OUT):
        row = next(line for line in table.splitlines() if line.startswith(f"| {code} |"))
        assert "| terminal |" in row
    for code in (CloseCode.SERVICE_RESTART, CloseCode.TOKEN_EXPIRED, CloseCode.RATE_LIMITED):
        row = next(line for line in table.splitlines() if line.startswith(f"| {code} |"))
        assert "| retryable |" in row


def _error_classes() -> list[type[HavenError]]:
    found, stack = [], [HavenError]
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return [cls for cls in found if cls.__module__ == "haven.errors"]


def test_every_socket_error_is_in_the_error_table_with_its_close_code(rendered: str) -> None:
    table = _section(rendered, "## Error codes")
    for cls in _error_classes():
        if cls.__name__ in protocol_reference.REST_ONLY:
            continue
        close = str(cls.close_code or "—")
        retryable = "yes" if cls.retryable else "no"
        assert f"| `{cls.code}` | {retryable} | {close} |" in table, cls.__name__


def test_every_error_code_raised_in_the_code_base_is_documented() -> None:
    documented = {code for code, *_ in protocol_reference.error_rows()}
    names = {cls.__name__ for cls in _error_classes()} - set(protocol_reference.REST_ONLY)
    raised: set[tuple[str, str]] = set()
    for folder in ("haven", "actors", "deployments"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id in names
                    and node.args
                    and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)
                ):
                    raised.add((node.args[0].value, f"{path.name}:{node.lineno}"))
    assert raised, "the scan found no error codes at all"
    missing = {where: code for code, where in raised if code not in documented}
    assert not missing


def test_descriptions_name_only_close_codes_errors_and_settings_that_exist() -> None:
    close_names = {name for name in vars(CloseCode) if name.isupper()}
    assert set(protocol_reference.CLOSE_MEANING) == close_names
    classes = {cls.__name__ for cls in _error_classes()}
    codes = {code for code, *_ in protocol_reference.error_rows()}
    assert set(protocol_reference.ERROR_WHEN) <= classes | codes
    assert set(protocol_reference.LIMIT_MEANING) <= set(Settings.model_fields)


def test_check_fails_on_a_stale_file_and_passes_after_write(tmp_path: Path) -> None:
    target = tmp_path / "protocol.md"
    target.write_text("# old\n", encoding="utf-8")
    assert protocol_reference.main(["--check", "--path", str(target)]) == 1
    assert protocol_reference.main(["--write", "--path", str(target)]) == 0
    assert protocol_reference.main(["--check", "--path", str(target)]) == 0
