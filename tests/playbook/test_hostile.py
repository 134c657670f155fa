"""Playbooks and templates that cannot hurt: each hostile one is refused quickly with `file:line: message`
(never a crash, a hang or a traceback), in `check` and when `serve` starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from rollback_bot.checking import check_file, playbook_files
from rollback_bot.playbook.yamlsource import MAX_BYTES

SHIPPED = Path("playbooks/genai-release.yaml")
GUARD_S = 1.0  # against hangs, not a benchmark: each refusal takes milliseconds
UNSET = "ROLLBACK_TEST_UNSET_TOKEN"


def variant(old: str, new: str) -> str:
    text = SHIPPED.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def billion_laughs(levels: int = 9, fan: int = 10) -> str:
    lines = ['l0: &l0 "lol"']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * fan) + "]")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Case:
    id: str
    text: str | bytes  # the playbook file
    message: str  # part of the error's message
    anchor: str | int  # text on the line the error must name (its first occurrence), or the line
    templates: dict[str, str | bytes] = field(default_factory=dict)  # templates/comms/<file> replaced
    template_line: int | None = None  # the error is said at this line of the (one) replaced template (0: any)


BODY = 'body: {service: "{{ service }}", checkpoint: last-stable, percent: "1"}'
CASES = [
    # alias bombs, size, depth
    Case("billion laughs", billion_laughs(), "more than 20000 values once aliases are expanded", "l5: &l5"),
    Case(
        "quadratic blow-up",
        "a: &a [" + ", ".join(["x"] * 1000) + "]\nb: [" + ", ".join(["*a"] * 1000) + "]\n",
        "values once aliases are expanded",
        "b: [",
    ),
    Case("alias inside itself", "name: x\nloop: &a [1, *a]\n", "nested more than 64 levels deep", "loop:"),
    Case("deep flow nesting", "name: x\ndeep: " + "[" * 10_000 + "]" * 10_000 + "\n", "more than 64 levels", "deep:"),
    Case(
        "deep block nesting",
        "".join("  " * i + "k:\n" for i in range(100)) + "  " * 100 + "v\n",
        "nested more than 64 levels deep",
        64,  # the key whose value is the 65th level
    ),
    Case(
        "many values",
        SHIPPED.read_text() + "extra: [" + "0, " * 200_000 + "0]\n",
        "more than 20000 values",
        "extra: [",
    ),
    Case("larger than 1 MiB", "# " + "x" * MAX_BYTES + "\nname: x\n", "the file is larger than 1 MiB", 1),
    Case("larger than 1 MiB, in 1 line", "name: " + "x" * MAX_BYTES + "\n", "larger than 1 MiB", 1),
    # characters and bytes
    Case("NUL byte", variant("window: 2h-4h", "window: 2h-4h\0"), "U+0000 (a control character)", "window: 2h"),
    Case("escape sequence", variant("label: Fatal", "label: \x1b[31mFatal"), "U+001B", "label: \x1b"),
    Case("bidi override", variant("# --- production", "# \u202e--- production"), "RIGHT-TO-LEFT OVERRIDE", "\u202e"),
    Case(
        "not UTF-8",
        variant("label: Fatal error rate", "label: Fatal \udcff rate").encode("utf-8", "surrogateescape"),
        "not UTF-8 text",
        "label: Fatal",
    ),
    # values
    Case(
        "overflowing for", variant("for: 10m ", "for: 99999999999999999999d "), "is too long: at most 3650d", "for: 9"
    ),
    Case("infinite every", variant("every: 30s", "every: 1" + "0" * 400 + "s"), "is too long", "every: 10000"),
    Case("exponent duration", variant("stage_every: 10m", "stage_every: 1e400s"), "bad duration '1e400s'", "1e400s"),
    Case("overflowing window", variant("window: 18h-24h", "window: 18h-99999999999d"), "too long", "window: 18h-9"),
    Case("5000-digit integer", variant("at_least: 2", "at_least: " + "1" * 5000), "too many digits", "at_least: 1"),
    Case(
        "python tag",
        variant("severity: critical", "severity: !!python/object/apply:os.system [echo]"),
        "tag 'tag:yaml.org,2002:python/object/apply:os.system' is not allowed",
        "!!python",
    ),
    Case(
        "impossible date", variant("label: Fatal error rate", "label: 2001-02-30"), "day is out of range", "2001-02-30"
    ),
    Case("list as a key", SHIPPED.read_text() + "? [a, b]\n: c\n", "a key must be a plain name", "? [a, b]"),
    # templates
    Case(
        "comms template divides by zero",
        SHIPPED.read_text(),
        "ZeroDivisionError: division by zero (used at ",
        "comms: [status-update]",
        {"status-update.md.j2": "Status\n{{ 1 / 0 }}\n"},
        template_line=2,
    ),
    Case(
        "comms template recurses",
        SHIPPED.read_text(),
        "RecursionError",
        "comms: [all-clear",
        {"all-clear.md.j2": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}"},
        template_line=1,
    ),
    Case(
        "comms template syntax",
        SHIPPED.read_text(),
        "Expected an expression, got 'end of statement block' (used at ",
        "comms: [checkpoint-status]",
        {"checkpoint-status.md.j2": "ok\n{% for %}\n"},
        template_line=2,
    ),
    Case(
        "comms template not UTF-8",
        SHIPPED.read_text(),
        "UnicodeDecodeError",
        "comms: [rollback-notice",
        {"rollback-notice.md.j2": b"\xff\xfe{{ service }}"},
    ),
    Case(
        "comms template leaves the sandbox",
        SHIPPED.read_text(),
        "unsafe",
        "comms: [internal-alert",
        {"internal-alert.md.j2": "{{ ''.__class__.__mro__[1].__subclasses__() }}"},
        template_line=1,
    ),
    Case(
        "comms template huge range",
        SHIPPED.read_text(),
        "OverflowError",
        "comms: [internal-alert",
        {"internal-alert.md.j2": "{{ range(10 ** 9) | list }}"},
        template_line=1,
    ),
    Case(
        "webhook body raises",
        variant(BODY, BODY.replace('percent: "1"', 'percent: "{{ 1 // 0 }}"')),
        "webhook of 'checkpoint': body.percent does not render: ZeroDivisionError",
        "1 // 0",
    ),
    Case(
        "webhook url raises",
        variant("url: http://deploy.internal/v1/lock", "url: http://deploy.internal/{{ incident.nope }}"),
        "webhook of 'lock': url does not render:",
        "incident.nope",
    ),
    # environment
    Case(
        "unset header variable",
        variant(
            "url: http://deploy.internal/v1/hotfix",
            f'url: http://deploy.internal/v1/hotfix\n          headers: {{Authorization: "Bearer ${{{UNSET}}}"}}',
        ),
        f"webhook of 'hotfix' uses ${{{UNSET}}}, which is not set",
        "Bearer",
    ),
    Case(
        "unset body variable",
        variant(BODY, BODY.replace('percent: "1"', f'token: "${{{UNSET}}}"')),
        f"uses ${{{UNSET}}}, which is not set",
        "token:",
    ),
    Case(
        "header with a line break",
        variant("url: http://deploy.internal/v1/hotfix", 'url: http://x/\n          headers: {X-A: "a\\nb"}'),
        "header 'X-A' has a line break",
        "headers: {X-A",
    ),
]


def playbook_dir(tmp_path: Path, case: Case) -> Path:
    """playbooks/p.yaml beside a copy of templates/, with the case's templates replaced."""
    shutil.copytree("templates", tmp_path / "templates")
    for name, content in case.templates.items():
        target = tmp_path / "templates" / "comms" / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())
    path = tmp_path / "playbooks" / "p.yaml"
    path.parent.mkdir()
    path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode("utf-8", "surrogatepass"))
    return path


def expected_line(case: Case) -> int:
    if isinstance(case.anchor, int):
        return case.anchor
    text = case.text.decode("utf-8", "surrogateescape") if isinstance(case.text, bytes) else case.text
    return next(i for i, line in enumerate(text.splitlines(), 1) if case.anchor in line)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_playbook_is_refused_quickly_with_file_and_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: Case
) -> None:
    monkeypatch.delenv(UNSET, raising=False)
    path = playbook_dir(tmp_path, case)
    started = time.perf_counter()
    _, errors = check_file(path)
    elapsed = time.perf_counter() - started
    assert elapsed < GUARD_S, f"took {elapsed:.2f}s"
    match = [e for e in errors if case.message in e.message]
    assert match, [str(e) for e in errors]
    if case.template_line is not None:  # at the template's line, saying where the playbook uses it
        [name] = case.templates
        assert match[0].file == str(tmp_path / "templates" / "comms" / name)
        assert match[0].line == case.template_line or not case.template_line, str(match[0])
        assert f"{path}:{expected_line(case)}" in match[0].message
        return
    assert match[0].file == str(path)
    assert match[0].line == expected_line(case), str(match[0])
    assert len(str(match[0])) < 600  # one readable line, not the document echoed back


def test_shipped_playbooks_check_clean() -> None:
    for path in playbook_files(["playbooks"]):
        started = time.perf_counter()
        assert check_file(path)[1] == [], path
        assert time.perf_counter() - started < GUARD_S


def test_a_set_variable_or_check_outside_production_is_clean(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    [case] = [c for c in CASES if c.id == "unset header variable"]
    path = playbook_dir(tmp_path, case)
    monkeypatch.delenv(UNSET, raising=False)
    assert check_file(path, env=False)[1] == []
    monkeypatch.setenv(UNSET, "a-real-token")
    assert check_file(path)[1] == []


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


def test_check_and_serve_refuse_without_a_traceback(tmp_path: Path) -> None:
    case = Case(
        "both",
        variant(
            "url: http://deploy.internal/v1/hotfix",
            f'url: http://deploy.internal/v1/hotfix\n          headers: {{Authorization: "Bearer ${{{UNSET}}}"}}',
        ),
        "",
        "",
        {"status-update.md.j2": "Status\n{{ 1 / 0 }}\n"},
    )
    path = playbook_dir(tmp_path, case)
    text = path.read_text()
    unset = f"{path}:{expected_line(Case('', text, '', 'Bearer'))}: webhook of 'hotfix' uses ${{{UNSET}}}"
    used = f"{path}:{expected_line(Case('', text, '', 'comms: [status-update]'))}"
    template = f"{tmp_path}/templates/comms/status-update.md.j2:2: ZeroDivisionError: division by zero (used at {used}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", UNSET))}
    env |= {
        "SLACK_BOT_TOKEN": "xoxb-1-test",
        "SLACK_SIGNING_SECRET": "0123456789abcdef0123456789abcdef",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # never reached: the playbooks are refused first
        "DATABASE_URL": f"sqlite:///{tmp_path}/db.sqlite",
        "ROLLBACK_PLAYBOOKS": str(path.parent),
    }
    checked = cli("check", str(path), env=env)
    assert checked.returncode == 1 and unset in checked.stderr and template in checked.stderr
    lenient = cli("check", "--no-env", str(path), env=env)
    assert lenient.returncode == 1 and unset not in lenient.stderr and template in lenient.stderr
    served = cli("serve", env=env)
    assert served.returncode == 1, served.stderr
    assert unset in served.stderr and template in served.stderr
    assert "Traceback" not in served.stderr + checked.stderr
