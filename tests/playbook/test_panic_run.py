"""`panic_run:` in a playbook: read as a time, a zone and checks; `rollback-bot check` says file:line of what
is wrong (a bad time, an unknown zone, an unknown signal or role, a signal a check cannot test)."""

from __future__ import annotations

import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest

from rollback_bot.playbook import PlaybookInvalid, parse_playbook
from tests.flows.conftest import PLAYBOOK

BASE = PLAYBOOK.format(url="http://127.0.0.1:9", templates="templates")
GOOD = """\
panic_run:
  at: "09:00"
  zone: Europe/Paris
  checks:
    - errors < 0.01
    - latency <= 800
  acknowledge: [responder]
"""


def line_of(text: str, needle: str) -> int:
    return text[: text.index(needle)].count("\n") + 1


def test_a_panic_run_is_read() -> None:
    spec = parse_playbook(BASE + GOOD).playbook.panic_run
    assert spec is not None
    assert (spec.at, spec.zone, [str(c) for c in spec.checks], spec.acknowledge) == (
        time(9, 0), "Europe/Paris", ["errors < 0.01", "latency <= 800"], ["responder"],
    )  # fmt: skip
    assert spec.signals == ["errors", "latency"]
    assert parse_playbook(BASE).playbook.panic_run is None  # optional


@pytest.mark.parametrize(
    ("old", "new", "needle", "message"),
    [
        ('"09:00"', '"9h"', "at:", "panic_run.at: bad time '9h': write the time of day as HH:MM"),
        ('"09:00"', '"24:00"', "at:", "panic_run.at: bad time '24:00'"),
        ('"09:00"', "10:30", "at:", 'panic_run.at: bad time 630: quote the time of day, e.g. "10:30"'),
        ("Europe/Paris", "Europe/Pariss", "zone:", "panic_run.zone: unknown time zone 'Europe/Pariss'"),
        ("errors < 0.01", "errorz < 0.01", "errorz", "panic run check uses unknown signal 'errorz'"),
        ("errors < 0.01", "ack_time < 5", "- ack_time < 5", "reads 'ack_time', a builtin signal"),
        ("errors < 0.01", "errors jumps 50% within 5m", "jumps", "panic_run.checks.0: cannot read"),
        ("[responder]", "[nightwatch]", "[nightwatch]", "role 'nightwatch' is used but not defined under roles"),
        ("[responder]", "[responder]\n  remind_every: 0s", "remind_every", "remind_every must be positive"),
    ],
)
def test_mistakes_are_reported_with_their_line(old: str, new: str, needle: str, message: str) -> None:
    text = BASE + GOOD.replace(old, new)
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook(text, "p.yaml")
    [error] = exc.value.errors
    assert (error.file, error.line) == ("p.yaml", line_of(text, needle))
    assert message in error.message


def test_rollback_bot_check_validates_the_panic_run(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BASE + GOOD.replace("Europe/Paris", "Mars/Olympus").replace("latency <=", "latencyy <="))
    out = subprocess.run([sys.executable, "-m", "rollback_bot.cli", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    text = bad.read_text()
    assert f"{bad}:{line_of(text, 'zone:')}: panic_run.zone: unknown time zone 'Mars/Olympus'" in out.stderr
    good = tmp_path / "good.yaml"
    good.write_text(BASE.replace("templates: templates", f"templates: {Path('templates').resolve()}") + GOOD)
    ok = subprocess.run([sys.executable, "-m", "rollback_bot.cli", "check", str(good)], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
