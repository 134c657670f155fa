"""Playbooks: the shipped one is valid; broken ones give file:line errors that say what to do."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from rollback_bot.checking import check_file
from rollback_bot.playbook import PlaybookInvalid, load_playbook, parse_playbook
from rollback_bot.playbook.conditions import AllOf, AtLeast, Compare, Jump

SHIPPED = Path("playbooks/genai-release.yaml")


def test_shipped_playbook_is_valid_with_six_steps_covering_24h() -> None:
    loaded, errors = check_file(SHIPPED)
    assert errors == []
    assert loaded is not None
    pb = loaded.playbook
    assert [s.window_text() for s in pb.ladder] == ["0h-2h", "2h-4h", "4h-6h", "6h-12h", "12h-18h", "18h-24h"]
    assert isinstance(pb.triggers["degradation"].condition, AllOf)
    assert isinstance(pb.triggers["error-jump"].condition, Jump)
    assert isinstance(pb.triggers["user-impact"].condition, AtLeast)
    assert pb.triggers["fatal-errors"].condition == Compare("fatal_error_rate", ">", 0.0)
    assert pb.action("rollback")[1].stages == [1, 10, 50, 100]
    assert pb.action("rollback")[1].requires == ["approver", "safety_lead"]
    for step in pb.ladder:
        assert step.watch and step.comms, f"{step.name} needs metrics to watch and comms"


def variant(old: str, new: str) -> str:
    text = SHIPPED.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


def line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if needle in line)


BROKEN = [
    # (replace, with, expected message part, line anchor in the new text)
    (
        "when: fatal_error_rate > 0 ",
        "when: fatal_errr_rate > 0 ",
        "unknown signal 'fatal_errr_rate'",
        "fatal_errr_rate",
    ),
    ("window: 2h-4h", "window: 3h-4h", "leaves a gap after the previous step", "window: 3h-4h"),
    ("window: 2h-4h", "window: 1h-4h", "overlaps the previous step", "window: 1h-4h"),
    ("requires: [responder]", "requires: [sre]", "role 'sre' is used but not defined", "requires: [sre]"),
    ("for: 10m ", "for: 10 ", "bad duration '10'", "for: 10 "),
    ("stage_every: 10m", "stage_every: 10x", "bad duration '10x'", "stage_every: 10x"),
    (
        "comms: [checkpoint-status]",
        "comms: [no-such-template]",
        "no-such-template.md.j2 does not exist",
        "comms: [no-such-template]",
    ),
    ("severity: critical", "severity: urgent", "severity", "severity: urgent"),
    ("    every: 30s\n    label: Fatal", "    every: 30s\n    evry: 1m\n    label: Fatal", "unknown field", "evry: 1m"),
    (
        "all: [anomaly_score > 3, p95_latency_ms > 800]",
        "all: [anomaly_score >> 3]",
        "cannot read 'anomaly_score >> 3'",
        "all: [anomaly_score >> 3]",
    ),
    ("error_rate jumps 200% within 15m by", "error_rate jumps 200% within by", "cannot read", "jumps 200% within"),
    ("by at least 0.01", "by at least -1", "'by at least' needs a positive amount", "by at least -1"),
    ("breaches: 3 of 5", "breaches: 5 of 3", "need 1 <= N <= M", "breaches: 5 of 3"),
    ("breaches: 3 of 5", "breaches: three", "write breaches as '<N> of <M>'", "breaches: three"),
    ("no_data_for: 5m", "no_data_for: 5", "bad duration '5'", "no_data_for: 5"),
    ("no_data: hold ", "no_data: panic ", "no_data", "no_data: panic"),
    ("max_missing: 0.3", "max_missing: 0.5", "max_missing", "max_missing: 0.5"),
    ("fail_fast: p95_latency_ms > 5000", "fail_fast: p95_latncy > 5000", "unknown signal 'p95_latncy'", "p95_latncy"),
    ("    for: 10m ", "    breaches: 2 of 3\n    for: 10m ", "either 'for'", "degradation:"),
    ("hold_below: 0.65", "hold_below: 0.55", "hold_below must be at least 'below'", "kpi-gate:"),
    ("stages: [1, 10, 50, 100]", "stages: [1, 50, 10]", "stages must increase", "stages: [1, 50, 10]"),
    (
        "  prometheus: http://prometheus.internal:9090",
        "  prometheus:\n    url: http://prometheus.internal:9090\n    tls: {verify: maybe}",
        "sources.prometheus.tls.verify: expected true or false, got 'maybe'",
        "tls: {verify: maybe}",
    ),
    (
        "  prometheus: http://prometheus.internal:9090",
        "  prometheus:\n    url: http://prometheus.internal:9090\n    basic_auth: {username: grafana}",
        "sources.prometheus.basic_auth.password: required field is missing",
        "basic_auth: {username: grafana}",
    ),
    (
        "    every: 30s\n    label: Fatal",
        "    every: 30s\n    headers: {X-Scope-OrgID: team}\n    label: Fatal",
        "'headers' only applies to an http signal; for Prometheus, set it under sources.prometheus",
        "fatal_error_rate:",
    ),
    (
        "json: anomaly_score, every: 1m}",
        "json: anomaly_score, every: 1m, max_age: 5m}",
        "'max_age' only applies to a prometheus signal",
        "anomaly_score:",
    ),
    (
        "json: anomaly_score, every: 1m}",
        'json: anomaly_score, every: 1m, headers: {Authorization: "Bearer ${kpi_token}"}}',
        "'${kpi_token}' is not expanded: write environment variables as ${UPPER_CASE}",
        "anomaly_score:",
    ),
    (
        "  prometheus: http://prometheus.internal:9090",
        '  prometheus:\n    url: http://prometheus.internal:9090\n    basic_auth: {username: u, password: "${Pw}"}',
        "sources.prometheus.basic_auth.password: '${Pw}' is not expanded",
        "basic_auth: {username: u",
    ),
    (
        "json: anomaly_score, every: 1m}",
        'json: anomaly_score, every: 1m, numeric_strings: "yes"}',
        "signals.anomaly_score.numeric_strings: expected true or false, got 'yes'",
        "anomaly_score:",
    ),
]


@pytest.mark.parametrize(("old", "new", "message", "anchor"), BROKEN, ids=[b[2][:40] for b in BROKEN])
def test_broken_playbook_reports_file_and_line(tmp_path: Path, old: str, new: str, message: str, anchor: str) -> None:
    text = variant(old, new)
    path = tmp_path / "playbooks" / "broken.yaml"
    path.parent.mkdir()
    path.write_text(text)
    (tmp_path / "templates").symlink_to(Path("templates").resolve())
    _, errors = check_file(path)
    assert errors, "expected an error"
    match = [e for e in errors if message in e.message]
    assert match, [str(e) for e in errors]
    assert match[0].file == str(path)
    assert match[0].line == line_of(text, anchor), str(match[0])


def test_template_that_does_not_render_is_reported(tmp_path: Path) -> None:
    (tmp_path / "templates" / "comms").mkdir(parents=True)
    for t in Path("templates/comms").glob("*.j2"):
        (tmp_path / "templates" / "comms" / t.name).write_text(t.read_text())
    (tmp_path / "templates" / "comms" / "status-update.md.j2").write_text("{{ incident.nonexistent_field }}\n")
    (tmp_path / "playbooks").mkdir()
    pb = tmp_path / "playbooks" / "p.yaml"
    pb.write_text(SHIPPED.read_text())
    _, errors = check_file(pb)
    [error] = errors  # said once at the template's line, with every place the playbook uses it
    assert error.file == str(tmp_path / "templates" / "comms" / "status-update.md.j2") and error.line == 1
    assert "'dict object' has no attribute 'nonexistent_field'" in error.message, error.message
    assert f"(used at {pb}:{line_of(SHIPPED.read_text(), 'comms: [status-update]')}, " in error.message


def test_yaml_syntax_and_duplicate_keys_have_lines() -> None:
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook("name: a\nservice: [oops\n", "x.yaml")
    assert str(exc.value.errors[0]).startswith("x.yaml:")
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook("name: a\nservice: s\nname: b\n", "x.yaml")
    assert str(exc.value.errors[0]) == "x.yaml:3: duplicate key 'name' (first at line 1); keep only one"


def test_missing_fields_are_all_reported_at_once() -> None:
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook("name: a\n", "x.yaml")
    messages = [e.message for e in exc.value.errors]
    for field in ("service", "channel", "roles", "signals", "triggers", "ladder"):
        assert f"{field}: required field is missing" in messages


def test_cli_check_exit_codes(tmp_path: Path) -> None:
    good = subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", "check", "playbooks/"], capture_output=True, text=True
    )
    assert good.returncode == 0, good.stderr
    assert "genai-release.yaml: ok" in good.stdout
    bad = tmp_path / "bad.yaml"
    bad.write_text(variant("window: 2h-4h", "window: 3h-4h"))
    out = subprocess.run([sys.executable, "-m", "rollback_bot.cli", "check", str(bad)], capture_output=True, text=True)
    assert out.returncode == 1
    assert f"{bad}:{line_of(bad.read_text(), 'window: 3h-4h')}: ladder" not in out.stderr  # semantic, not pydantic
    assert f"{bad}:{line_of(bad.read_text(), 'window: 3h-4h')}: window 3h-4h leaves a gap" in out.stderr


def test_version_pins_the_text() -> None:
    a = load_playbook(SHIPPED)
    b = parse_playbook(SHIPPED.read_text() + "\n# edited\n", str(SHIPPED))
    assert a.version != b.version and len(a.version) == 12


def test_connection_settings_load_and_ca_file_is_relative_to_the_playbook(tmp_path: Path) -> None:
    text = variant(
        "  prometheus: http://prometheus.internal:9090",
        "  prometheus:\n    url: https://mimir.internal/prometheus\n"
        '    headers: {X-Scope-OrgID: "${TENANT}"}\n'
        '    basic_auth: {username: "1234", password: "${PROM_PASSWORD}"}\n'
        "    tls: {ca_file: certs/ca.pem}",
    ).replace(
        "json: anomaly_score, every: 1m}",
        'json: anomaly_score, every: 1m, numeric_strings: true, tls: {verify: false}, headers: {A: "b"}}',
    )
    pb = parse_playbook(text, str(tmp_path / "p.yaml")).playbook
    prom = pb.sources.prometheus
    assert prom is not None and prom.url == "https://mimir.internal/prometheus"
    assert prom.tls.ca_file == str(tmp_path / "certs" / "ca.pem") and prom.tls.verify is True
    assert prom.basic_auth is not None and prom.basic_auth.password == "${PROM_PASSWORD}"
    anomaly = pb.signals["anomaly_score"]
    assert anomaly.numeric_strings and anomaly.tls.verify is False and anomaly.headers == {"A": "b"}
    assert pb.signals["fatal_error_rate"].sample_max_age.total_seconds() == 65
    assert load_playbook(SHIPPED).playbook.sources.prometheus == type(prom)(url="http://prometheus.internal:9090")
