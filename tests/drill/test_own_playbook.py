"""A drill of a team's own playbook: the sandbox serves whatever signals it declares (healthy values derived from
its thresholds, the fault on one trigger's signals), refuses clearly what it cannot simulate, and the drill
ends with a report."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_bot.drill import run_drill
from rollback_bot.drill.sandbox import ModelState, Sandbox
from rollback_bot.drill.synthetic import CannotSimulate, derive
from rollback_bot.playbook import load_playbook
from rollback_bot.playbook.loader import parse_playbook

ROOT = Path(__file__).resolve().parents[2]
OWN = """\
name: payments-api
service: payments-api
channel: "#payments-ops"
templates: {templates}
sources:
  prometheus: {{url: "http://prometheus.internal:9090"}}
roles:
  incident_commander: {{users: [U1]}}
  responder: {{users: [U2]}}
  approver: {{users: [U3]}}
signals:
  http_5xx_ratio: {{prometheus: 'sum(rate(http_requests_total{{code=~"5.."}}[5m]))', every: 30s}}
  p99_ms: {{http: "http://metrics.internal/api/stats", json: latency.p99, every: 30s, label: P99 latency}}
  settled_ratio: {{http: "http://metrics.internal/api/stats", json: "business.rates[1]", every: 1m}}
  queue: {{http: "http://metrics.internal/api/queue", json: depth, every: 30s}}
triggers:
  errors_up: {{when: http_5xx_ratio > 0.02, for: 2m, severity: critical}}
  slow_and_failing: {{all: [p99_ms > 1500, settled_ratio < 0.97], severity: major}}
  backlog: {{when: queue jumps 200% within 10m, severity: minor}}
  health: {{kpi: {{settled_ratio: 1.0, http_5xx_ratio: -10}}, below: 0.5}}
ladder:
  - name: Freeze
    window: 0h-1h
    watch: [http_5xx_ratio < 0.01, p99_ms < 900]
    actions:
      - id: revert
        label: Revert to last release
        requires: [incident_commander, approver]
        stages: [25, 100]
        stage_every: 10m
        webhook: {{url: "http://deploy.internal/revert", body: {{note: drill}}}}
    comms: [internal-alert]
  - name: Verify
    window: 1h-3h
    watch: [settled_ratio >= 0.99]
"""


def own(tmp_path: Path) -> Path:
    path = tmp_path / "payments.yaml"
    path.write_text(OWN.format(templates=ROOT / "templates"))
    return path


def test_the_derived_model_is_healthy_everywhere_and_faults_the_trigger_asked_for(tmp_path: Path) -> None:
    pb = load_playbook(own(tmp_path)).playbook
    model = derive(pb)
    assert model.target == "errors_up" and model.notes == []  # the first critical trigger
    h = model.healthy
    assert h["http_5xx_ratio"] < 0.01 and h["p99_ms"] < 900 and 0.99 <= h["settled_ratio"] <= 1 and h["queue"] == 1
    assert model.value("http_5xx_ratio", 1.0) == model.faulty["http_5xx_ratio"] > 0.02
    assert model.value("http_5xx_ratio", 0.5) == pytest.approx(
        (h["http_5xx_ratio"] + model.faulty["http_5xx_ratio"]) / 2
    )
    both = derive(pb, "slow_and_failing").faulty
    assert both["p99_ms"] > 1500 and both["settled_ratio"] < 0.97
    assert derive(pb, "backlog").faulty["queue"] >= 3 * h["queue"]  # a jump of 200% and more
    kpi = derive(pb, "health").faulty
    assert 1.0 * kpi["settled_ratio"] - 10 * kpi["http_5xx_ratio"] < 0.5
    with pytest.raises(CannotSimulate, match="no trigger 'nope'"):
        derive(pb, "nope")


def test_what_cannot_be_simulated_is_said() -> None:
    text = OWN.format(templates=ROOT / "templates").replace(
        "  http_5xx_ratio: {prometheus:", "  ack: {builtin: ack_minutes}\n  http_5xx_ratio: {prometheus:"
    )
    text = text.replace("errors_up: {when: http_5xx_ratio > 0.02", "errors_up: {when: ack > 5")
    contradicting = text.replace("watch: [settled_ratio >= 0.99]", "watch: [settled_ratio >= 0.99, p99_ms > 2000]")
    pb = parse_playbook(contradicting).playbook
    model = derive(pb)
    assert model.target != "errors_up"  # read from a built-in signal: the sandbox cannot serve it
    assert model.notes == ["no value of p99_ms is healthy everywhere (e.g. 'p99_ms > 2000' fails at 1450)"]
    with pytest.raises(CannotSimulate, match="'errors_up' reads ack, which the sandbox cannot serve"):
        derive(pb, "errors_up")


def test_the_sandbox_serves_every_declared_signal_and_builds_its_json(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    pb = load_playbook(own(tmp_path)).playbook
    sandbox = Sandbox(pb, ModelState(lambda: datetime(2026, 1, 1, tzinfo=UTC)))
    assert sandbox.synthetic is not None
    stats = sandbox.document("/api/stats")
    assert stats["latency"]["p99"] == sandbox.synthetic.healthy["p99_ms"]
    assert stats["business"]["rates"][1] == sandbox.synthetic.healthy["settled_ratio"]
    assert sandbox.document("/api/queue") == {"depth": 1.0}
    status, answer = sandbox.query('sum(rate(http_requests_total{code=~"5.."}[5m]))')
    assert status == 200 and answer["data"]["result"][0]["value"][1] == repr(
        sandbox.synthetic.healthy["http_5xx_ratio"]
    )
    shipped = load_playbook(ROOT / "playbooks" / "genai-release.yaml").playbook
    assert Sandbox(shipped, ModelState(lambda: datetime(2026, 1, 1, tzinfo=UTC))).synthetic is None  # built-in


@pytest.mark.slow
def test_an_own_playbook_drill_runs_the_whole_ladder_and_recovers(tmp_path: Path) -> None:
    lines: list[str] = []
    code = run_drill(
        own(tmp_path),
        speed=2880,
        min_real_interval=0.1,
        database_url=f"sqlite:///{tmp_path}/drill.db",
        out=lines.append,
    )
    text = "\n".join(lines)
    assert "model: derived from the playbook's thresholds; the fault makes 'errors_up' fire" in text
    assert "the stages of revert move traffic back" in text
    assert "FIRED      errors_up fired (critical)" in text
    assert "Revert to last release stage 100%: succeeded" in text and "RECOVERED" in text
    assert code == 0 and "All targets met." in text, text
