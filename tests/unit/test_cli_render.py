"""`haven chat`'s crisis frame at any terminal width, and its status line."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import struct
import subprocess
import sys
import termios

import pytest

from haven.cli_render import Screen, crisis_box
from haven.protocol import EmergencyResources
from haven.settings import Settings
from tests.paths import ROOT

RESOURCES = EmergencyResources(
    crisis_hotline="988", crisis_text="741741", message=Settings().crisis_message
)
WHOLE_WORDS = ("741741", "HOME", "988", "Crisis", "911")


def _words(text: str) -> list[str]:
    return text.replace("!!", " ").split()


@pytest.mark.parametrize("width", [30, 40, 60, 80, 100, 160])
def test_the_crisis_frame_wraps_at_spaces_to_the_width_with_the_prefix_on_every_line(
    width: int,
) -> None:
    box = crisis_box(RESOURCES, min(width, 100))
    lines = box.strip("\n").split("\n")
    assert lines[0] == lines[-1] == "!" * min(width, 100)
    inner = lines[1:-1]
    assert all(line.startswith("!! ") and len(line) <= min(width, 100) for line in inner)
    # No word is cut: the words of the frame are exactly the words of the resources.
    expected = _words(
        f"You are not alone. Please reach out now: Call 988 | Text 741741 {RESOURCES.message}"
    )
    assert _words("\n".join(inner)) == expected
    for word in WHOLE_WORDS:
        assert any(word in line for line in inner)


def test_a_status_off_a_terminal_is_written_once_as_a_line() -> None:
    out = io.StringIO()
    screen = Screen(out)
    screen.write("you wrote this\n")
    screen.status("…")
    screen.status("…")
    screen.write("haven> hello\n")
    assert out.getvalue() == "you wrote this\n[…]\nhaven> hello\n"


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_status_on_a_terminal_is_erased_by_the_next_output_and_never_cuts_a_line() -> None:
    out = _Tty()
    screen = Screen(out)
    screen.status("reconnecting…")
    screen.write("[reconnected]\n")
    assert out.getvalue().endswith("\r\x1b[K[reconnected]\n")
    screen.write("haven> half a rep")
    before = out.getvalue()
    screen.status("…")  # the reply's line is still being written: no status over it
    assert out.getvalue() == before


def test_in_a_terminal_of_fixed_width_the_frame_fits_it() -> None:
    """As in tmux: a real pseudo-terminal, 52 columns wide, and no COLUMNS variable."""
    script = (
        "import sys\n"
        "from haven.cli_render import Renderer, terminal_width\n"
        "from haven.protocol import SafetyEscalation\n"
        "from tests.unit.test_cli_render import RESOURCES\n"
        "renderer = Renderer(terminal_width(sys.stdout))\n"
        "event = SafetyEscalation(risk_level='high', emergency_resources=RESOURCES, session_id='s')\n"
        "sys.stdout.write(renderer.render(event))\n"
    )
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 52, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    child = subprocess.run(
        [sys.executable, "-c", script],
        stdout=follower,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env=env,
        timeout=60,
        check=False,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert child.returncode == 0, child.stderr.decode()
    lines = [line for line in output.decode().replace("\r\n", "\n").split("\n") if line]
    assert lines[0] == "!" * 52 and lines[-1] == "!" * 52
    assert all(line.startswith("!! ") and len(line) <= 52 for line in lines[1:-1])
    assert any("741741" in line for line in lines)
