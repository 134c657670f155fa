"""`check` says every problem in one run: mistakes of structure, of names and roles, and of templates, each at
its own line (a template's at the template's line); nothing that only follows from another mistake."""

from __future__ import annotations

from pathlib import Path

from rollback_bot.checking import check_file

PLAYBOOK = """\
name: My Service
service: svc
channel: "#ops"
templates: templates
roles:
  commander: {users: [U1]}
  responder: {users: [U2], grups: [S1]}
signals:
  errors: {http: "http://x/kpi", json: errors, every: 30s}
  latency: {http: "http://x/kpi", json: latency, evry: 30s}
  cost: {http: "http://x/kpi", json: cost, every: banana}
triggers:
  high_errors: {when: errors > 0.05, for: 5m, severity: critical}
  slow: {when: latency > 900, severity: major}
  pricey: {when: cost > 10}
  bad: {when: nonsense > 1}
acknowledge: {requires: [commander]}
resolve: {requires: [commander]}
hold: {requires: [commander]}
ladder:
  - name: Flag and lock
    window: 0h-2h
    comms: [internal-alert, missing-one]
    actions:
      - id: Lock Traffic
        label: Lock
        requires: [commander]
        webhook: {url: "http://x/lock"}
      - id: page
        label: Page
        requires: [approver]
        webhook: {url: "http://x/page"}
  - name: Revert
    window: 2h-5h
    watch:
      - ghost < 1
  - name: Verify
    window: 4h-6h
"""


def test_every_mistake_in_one_run(tmp_path: Path) -> None:
    (tmp_path / "templates" / "comms").mkdir(parents=True)
    (tmp_path / "templates" / "comms" / "internal-alert.md.j2").write_text("Incident {{ incident.id }}\n{% if %}\n")
    path = tmp_path / "pb.yaml"
    path.write_text(PLAYBOOK)
    loaded, errors = check_file(path, env=False)
    assert loaded is None
    said = [(Path(e.file).name, e.line, e.message) for e in errors]
    expected = [
        ("pb.yaml", 1, "name: 'My Service' is not allowed here: use lowercase letters, digits, '-' and '_'"),
        ("pb.yaml", 7, "roles.responder.grups: unknown field"),
        ("pb.yaml", 10, "signals.latency.evry: unknown field"),
        ("pb.yaml", 11, "signals.cost.every: bad duration 'banana'"),
        ("pb.yaml", 16, "trigger 'bad' uses unknown signal 'nonsense'"),
        ("pb.yaml", 23, "missing-one.md.j2 does not exist"),
        ("pb.yaml", 25, "ladder.0.actions.0.id: 'Lock Traffic' is not allowed here"),
        ("pb.yaml", 31, "role 'approver' is used but not defined under roles"),
        ("pb.yaml", 36, "watch uses unknown signal 'ghost'"),
        ("pb.yaml", 38, "window 4h-6h overlaps the previous step (2h-5h)"),
        ("internal-alert.md.j2", 2, f"Expected an expression, got 'end of statement block' (used at {path}:23)"),
    ]
    for file, line, part in expected:
        assert any(f == file and n == line and part in m for f, n, m in said), (file, line, part, said)
    assert len(said) == len(expected), said  # nothing more: not 'pricey' for the cut signal 'cost'


WORSE = """\
name: svc
service: svc
channel: "#ops"
sources:
  prometheus: not-a-url
acknowledge:
  requires: [ghost_role]
  within: 15 minutes
roles:
  commander: {users: [U1, not-a-user-id]}
resolve: {requires: [commander]}
hold: {requires: [commander]}
signals:
  err: {prometheus: "sum(rate(x[5m]))", every: 30s, unit: 12}
triggers:
  t1: {when: err > 1e400, severity: catastrophic}
  t2: {all: [], severity: major}
  t3: {when: err > 0.5}
ladder:
  - name: Step one
    window: 2h-1h
    actions:
      - id: a1
        label: Do
        requires: [nobody]
        stages: [50, 10, 200]
        webhook: {url: "ftp://x", body: {p: "{{ stage "}}
  - name: Step one
    window: 1h-3h
"""


def test_a_broken_field_does_not_hide_what_holds_it(tmp_path: Path) -> None:
    """A failing field is cut alone (its default or a stand-in takes its place), so the roles its section names,
    the rest of its step's action and the step names are still checked in the same run; pydantic's own words
    are said in ours; a number too large for a float is refused, not read as infinity."""
    path = tmp_path / "pb.yaml"
    path.write_text(WORSE)
    loaded, errors = check_file(path, env=False)
    assert loaded is None
    said = [(e.line, e.message) for e in errors]
    expected = [
        (5, "sources.prometheus.url: 'not-a-url' is not an http:// or https:// URL"),
        (7, "role 'ghost_role' is used but not defined under roles"),
        (8, "acknowledge.within: bad duration '15 minutes'"),
        (10, "roles.commander.users.1: 'not-a-user-id' is not allowed here: use a Slack user ID"),
        (14, "signals.err.unit: expected text (put it in quotes where YAML reads it as a number"),
        (16, "triggers.t1.when: 'err > 1e400': 1e400 is too large a number (it would read as infinity)"),
        (16, "triggers.t1.severity: 'catastrophic' is not one of: critical, major, minor"),
        (17, "triggers.t2: 'all' needs a non-empty list of conditions"),
        (21, "ladder.0.window: window '2h-1h' ends before it starts"),
        (25, "role 'nobody' is used but not defined under roles"),
        (26, "stages must increase, e.g. [1, 10, 50, 100]; stages are percentages of traffic between 0 and 100"),
        (27, "ladder.0.actions.0.webhook.url: 'ftp://x' is not an http:// or https:// URL"),
        (27, "webhook of 'a1': body.p does not render"),
        (28, "step name 'Step one' is used twice"),
    ]
    for line, part in expected:
        assert any(n == line and part in m for n, m in said), (line, part, said)
    assert len(said) == len(expected), said
    assert not any("Input should" in m for _, m in said)


def _check_variant(tmp_path: Path, source: str, *edits: tuple[str, str]) -> list[tuple[int, str]]:
    text = Path(source).read_text()
    for old, new in edits:
        assert old in text, old
        text = text.replace(old, new)
    path = tmp_path / "playbooks" / "variant.yaml"
    path.parent.mkdir(parents=True)
    path.write_text(text)
    (tmp_path / "templates").symlink_to(Path("templates").resolve())
    return [(e.line, e.message) for e in check_file(path, env=False)[1]]


def test_no_nan_or_infinity_in_any_number(tmp_path: Path) -> None:
    said = _check_variant(
        tmp_path,
        "playbooks/copilot-rollout.yaml",
        (
            "    - {signal: override_rate, worse: higher, by: 0.05}",
            "    - {signal: override_rate, worse: higher, by: .inf}",
        ),
        ("  rollback: {requires: [release_manager, incident_commander]}", "  rollback: {requires: [nobody]}"),
        ("  diagnostics: [p95_latency_ms]", "  diagnostics: [nosuch]"),
    )
    # the rest of the rollout is still checked: the hold is cut alone, not the whole section
    assert said == [
        (42, "role 'nobody' is used but not defined under roles"),
        (53, "rollout.holds.0.by: expected a finite number (not .nan or .inf), got inf"),
        (56, "diagnostic uses unknown signal 'nosuch'; define it under signals"),
    ]
    gate = _check_variant(
        tmp_path / "gate", "playbooks/copilot-rollout.yaml", ("    hold_below: -0.02", "    hold_below: .nan")
    )
    assert gate == [(48, "rollout.gate.hold_below: expected a finite number (not .nan or .inf), got nan")]
    weight = _check_variant(tmp_path / "weight", "playbooks/genai-release.yaml", ("accuracy: 0.40", "accuracy: .inf"))
    assert weight and "expected a finite number (not .nan or .inf), got inf" in weight[0][1], weight


def test_a_source_written_as_its_url_alone_is_one_message(tmp_path: Path) -> None:
    """`prometheus: URL` that is no http(s) URL: that, and not 'sources.prometheus is not set' for each of its
    signals; an http signal's URL is checked too."""
    said = _check_variant(
        tmp_path,
        "playbooks/genai-release.yaml",
        ("  prometheus: http://prometheus.internal:9090", "  prometheus: ftp://prometheus.internal:9090"),
        (
            '{http: "http://monitor.internal/kpi", json: anomaly_score',
            '{http: "ftp://monitor.internal/kpi", json: anomaly_score',
        ),
    )
    assert said[0][1] == (
        "sources.prometheus.url: 'ftp://prometheus.internal:9090' is not an http:// or https:// URL (e.g. http://host:9090)"
    )
    assert not any("is not set" in m for _, m in said), said
    assert any("'ftp://monitor.internal/kpi' is not an http:// or https:// URL" in m for _, m in said), said
    assert len(said) == 2, said
