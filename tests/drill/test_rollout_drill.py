"""The rollout drill: the seed's scenario on the sandboxed pair of versions (HOLD at 50% naming urgency=high,
fix, release, on to 100%), a gate too loose to hold failing the drill, the sandbox itself and the report's
checks."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.drill.rollout import run_rollout_drill
from rollback_bot.drill.rollout_report import check, stages_of
from rollback_bot.drill.rollout_sandbox import RolloutModel, RolloutSandbox, plan
from rollback_bot.drill.run import DrillRefused, redirect, run_drill
from rollback_bot.metrics import Reader
from rollback_bot.metrics.compared import read_rollout
from rollback_bot.playbook import LoadedPlaybook, load_playbook
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store import Event, Store
from rollback_bot.store.audit import playbook_events
from tests.helpers import loopback_session

SHIPPED = Path("playbooks/copilot-rollout.yaml")


def _copy(tmp_path: Path, text: str) -> Path:
    """A playbook beside a link to the shipped templates, as `templates: ../templates` expects."""
    path = tmp_path / "playbooks" / "variant.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text)
    if not (tmp_path / "templates").exists():
        (tmp_path / "templates").symlink_to(Path("templates").resolve())
    return path


@pytest.mark.slow
def test_the_shipped_rollout_drill_holds_at_50_percent_naming_the_segment_and_completes(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path}/drill.db"
    cmd = [sys.executable, "-m", "rollback_bot.cli", "drill", str(SHIPPED), "--database", db]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=150)
    text = run.stdout
    assert run.returncode == 0, text + run.stderr
    assert "Rollout drill: copilot-rollout on a sandboxed support-copilot" in text
    assert "fault at stage 3 (50%): copilot-v2's override_rate for urgency=high goes 0.12 -> 0.31" in text
    # as it happens
    gates = "\n".join(line for line in text.splitlines() if "GATE" in line)
    hold_line = re.search(r"GATE       HOLD at stage 3: (.*)", text)
    assert hold_line, gates
    assert re.search(r"urgency=high: override_rate 0\.3\d* vs baseline 0\.1\d* \(p=", hold_line.group(1)), gates
    assert "HELD       held by the gate; release_manager, safety_lead: investigate, then release" in text
    assert "Ivan (no role) releases the hold -> refused: Only release_manager or safety_lead may release" in text
    assert "PERSON     Bo (safety lead) releases the hold -> ok: Rollout #1 released." in text
    assert "COMPLETED  complete at 100% (U0RM as release_manager)" in text
    assert "(UNEXPECTED)" not in text
    # the report: every stage's timing and verdicts in order, the checks
    report = text[text.index("Rollout drill report: copilot-rollout") :]
    for n, pct in enumerate((10, 25), 1):
        assert re.search(rf"stage {n} \({pct}%\): entered T\+\S+, first GO after \S+, advanced T\+\S+", report)
    assert re.search(
        r"stage 3 \(50%\): entered T\+\S+, HOLD after \S+, held T\+\S+, released T\+\S+, "
        r"first GO 1h\S* after the release, advanced T\+",
        report,
    ), report
    assert re.search(r"stage 4 \(100%\): entered T\+\S+, first GO after 1h\S*, complete T\+", report)
    stage3 = report[report.index("stage 3 (50%)") : report.index("stage 4 (100%)")]
    verdicts = re.findall(r"T\+\d\d:\d\d  (NOT ENOUGH DATA|GO|HOLD|ROLLBACK) ", stage3)
    assert verdicts[verdicts.index("HOLD") :] == ["HOLD", "NOT ENOUGH DATA", "GO"], stage3
    assert re.search(r"HOLD\s+urgency=high: override_rate", stage3)
    assert re.search(r"ok\s+HOLD at stage 3 \(50%\) naming urgency=high: HOLD at T\+\S+, \S+ after the fault", report)
    assert "ok      no HOLD or ROLLBACK at a healthy stage: none" in report
    assert re.search(r"ok\s+rollout complete by the deadline \(T\+06:00\): complete at T\+0[34]:", report)
    assert report.rstrip().endswith("All checks passed.")
    real = float(re.search(r"clock x600, ([\d.]+) s real time", report).group(1))  # type: ignore[union-attr]
    assert real < 40

    store = Store(db)
    with store.session() as s:
        events = playbook_events(s, playbook="copilot-rollout")
    store.close()
    kinds = [e.kind for e in events]
    [hold] = [e for e in events if e.kind == "rollout.verdict" and e.details["verdict"] == "HOLD"]
    assert hold.details["stage"] == 2 and hold.details["why"][0].startswith("urgency=high: override_rate")
    assert not any("urgency=low" in line for line in hold.details["worse"])
    held, released = kinds.index("rollout.held"), kinds.index("rollout.released")
    order = ["drill.fault", "rollout.held", "drill.investigating", "drill.fixed", "drill.recovered"]
    assert [kinds.index(k) for k in order] == sorted(kinds.index(k) for k in order)
    assert held < kinds.index("drill.fixed") < released < kinds.index("rollout.completed")
    assert kinds.count("rollout.advanced") == 3 and kinds[-1] == "rollout.completed"
    assert [e.details["percent"] for e in events if e.kind == "rollout.traffic"] == [10, 25, 50, 100]
    assert next(e for e in events if e.kind == "rollout.released").actor == "U0SAFE"


def _loose(tmp_path: Path) -> Path:
    """The shipped playbook with holds too loose for the fault, and shorter stages (so the test is quick)."""
    text = SHIPPED.read_text()
    for old, new in [
        ("{signal: override_rate, worse: higher, by: 0.05}", "{signal: override_rate, worse: higher, by: 0.3}"),
        ("hold_below: -0.02", "hold_below: -0.06"),
        ("min_duration: 30m", "min_duration: 10m"),
        ("min_duration: 1h", "min_duration: 15m"),
    ]:
        assert old in text
        text = text.replace(old, new)
    return _copy(tmp_path, text)


@pytest.mark.slow
def test_a_gate_too_loose_to_hold_fails_the_drill_and_says_why(tmp_path: Path) -> None:
    lines: list[str] = []
    code = run_rollout_drill(_loose(tmp_path), database_url=f"sqlite:///{tmp_path}/loose.db", out=lines.append)
    text = "\n".join(lines)
    assert code == 1, text
    assert re.search(
        r"FAILED  HOLD at stage 3 \(50%\) naming urgency=high: no HOLD with the fault on; the gate said "
        r"(NOT ENOUGH DATA, )?GO",
        text,
    ), text
    assert "ok      rollout complete by the deadline" in text  # it went all the way, fault and all
    assert text.rstrip().endswith("1 check(s) failed: HOLD at stage 3 (50%) naming urgency=high")
    assert "INSPECT" not in text and "RELEASED" not in text


def test_the_drill_refuses_a_rollout_it_cannot_play(tmp_path: Path) -> None:
    text = SHIPPED.read_text()
    text = text.replace("    - {signal: override_rate, worse: higher, by: 0.05}\n", "")
    text = text.replace("    - {signal: incident_miss_rate, worse: higher, by: 0.02}\n", "")
    with pytest.raises(DrillRefused, match="has no hold rule against the baseline"):
        run_drill(_copy(tmp_path, text))


# --- the sandbox -------------------------------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.at


@pytest.fixture
def box() -> Iterator[tuple[LoadedPlaybook, RolloutModel, RolloutSandbox, Clock]]:
    original = load_playbook(SHIPPED)
    clock = Clock()
    assert original.playbook.rollout is not None
    model = RolloutModel(plan(original.playbook), original.playbook.rollout, clock.now)
    sandbox = RolloutSandbox(model).start()
    loaded = redirect(original, sandbox.url)
    sandbox.route(loaded.playbook)
    yield loaded, model, sandbox, clock
    sandbox.stop()


def _read(loaded: LoadedPlaybook, clock: Clock) -> dict[tuple[str, str, str], float | None]:
    reader = Reader(loopback_session())
    try:
        readings = read_rollout(reader, loaded.playbook, clock.now)
    finally:
        reader.close()
    assert [(r.signal, r.detail) for r in readings if r.status != "ok"] == []
    return {(r.signal, r.version, r.segment): r.value for r in readings}


def _traffic(sandbox: RolloutSandbox, percent: str, key: str) -> dict[str, Any]:
    body = {"service": "support-copilot", "version": "copilot-v2", "percent": percent}
    answer = loopback_session().post(f"{sandbox.url}/v1/traffic", json=body, headers={"Idempotency-Key": key})
    return dict(answer.json())


def test_the_sandbox_serves_both_versions_by_segment_and_the_fault_in_one(box: Any) -> None:
    loaded, model, sandbox, clock = box
    first = _read(loaded, clock)
    assert {k[2] for k in first if k[0] == "override_rate"} == {"urgency=low", "urgency=high"}
    assert first[("drift_psi", "candidate", "")] == pytest.approx(0.05, abs=0.006)
    assert _traffic(sandbox, "10", "k10")["ok"]
    clock.at += timedelta(minutes=10)
    after = _read(loaded, clock)
    grown = {v: (after[("served", v, "")] or 0) - (first[("served", v, "")] or 0) for v in ("baseline", "candidate")}
    assert grown == {"baseline": 5400, "candidate": 600}  # 600 a minute, 10% of it to the candidate
    assert _traffic(sandbox, "50", "k50")["ok"] and model.faulty
    assert _traffic(sandbox, "25", "k50")["replayed"] is True and model.percent == 50  # a replayed key
    faulty = _read(loaded, clock)
    assert faulty[("override_rate", "candidate", "urgency=high")] == pytest.approx(0.31, abs=0.005)
    assert faulty[("override_rate", "candidate", "urgency=low")] == pytest.approx(0.12, abs=0.005)
    assert faulty[("override_rate", "baseline", "urgency=high")] == pytest.approx(0.12, abs=0.005)
    assert model.fix() and not model.fix()
    assert _read(loaded, clock)[("override_rate", "candidate", "urgency=high")] == pytest.approx(0.12, abs=0.005)


def _prometheus_variant(tmp_path: Path) -> Path:
    text = SHIPPED.read_text().replace(
        'override_rate:      {http: "http://monitor.internal/rollout/{version}", json: override_rate, '
        "segments: [urgency], every: 1m}",
        "override_rate: {prometheus: 'sum by (urgency) (overrides{version=\"{version}\"})', segments: [urgency], "
        "every: 1m}",
    )
    text = text.replace("templates: ../templates", f"templates: {Path('templates').resolve()}")
    text = text.replace("roles:", 'sources: {prometheus: "http://prometheus.internal:9090"}\nroles:', 1)
    path = tmp_path / "prom.yaml"
    path.write_text(text)
    return path


def test_the_sandbox_answers_prometheus_queries_per_version_and_segment(tmp_path: Path) -> None:
    original = load_playbook(_prometheus_variant(tmp_path))
    assert original.playbook.signals["override_rate"].prometheus
    clock = Clock()
    assert original.playbook.rollout is not None
    model = RolloutModel(plan(original.playbook), original.playbook.rollout, clock.now)
    sandbox = RolloutSandbox(model).start()
    try:
        loaded = redirect(original, sandbox.url)
        sandbox.route(loaded.playbook)
        model.set_traffic(50)
        read = _read(loaded, clock)
    finally:
        sandbox.stop()
    assert read[("override_rate", "candidate", "urgency=high")] == pytest.approx(0.31, abs=0.005)
    assert read[("override_rate", "baseline", "urgency=high")] == pytest.approx(0.12, abs=0.005)


def test_redirect_moves_the_rollout_webhook_and_a_host_per_version() -> None:
    text = SHIPPED.read_text().replace(
        "http://monitor.internal/rollout/{version}", "https://{version}.models.internal/m"
    )
    moved = redirect(parse_playbook(text, str(SHIPPED)), "http://127.0.0.1:9")
    pb = moved.playbook
    assert pb.rollout is not None and pb.rollout.webhook.url == "http://127.0.0.1:9/v1/traffic"
    assert pb.signals["served"].http == "http://127.0.0.1:9/{version}.models.internal/m"
    assert pb.signals["drift_psi"].http == "http://127.0.0.1:9/drift"


# --- the report's checks --------------------------------------------------------------------------------------
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def _ev(kind: str, minutes: int, stage: int = 0, **details: Any) -> Event:
    return Event(
        playbook="copilot-rollout",
        kind=kind,
        at=T0 + timedelta(minutes=minutes),
        summary=kind,
        details={"stage": stage, **details},
    )


def _verdict(minutes: int, stage: int, verdict: str, why: str = "fine") -> Event:
    return _ev("rollout.verdict", minutes, stage, verdict=verdict, why=[why])


HAPPY = [
    _ev("rollout.started", 0),
    _verdict(30, 0, "GO"),
    _ev("rollout.advanced", 32, 1),
    _verdict(62, 1, "GO"),
    _ev("rollout.advanced", 64, 2),
    _ev("drill.fault", 65),
    _verdict(74, 2, "HOLD", "urgency=high: override_rate 0.31 vs baseline 0.12"),
    _ev("rollout.held", 74, 2),
    _ev("rollout.released", 95, 2),
    _verdict(155, 2, "GO"),
    _ev("rollout.advanced", 157, 3),
    _verdict(217, 3, "GO"),
    _ev("rollout.completed", 219, 3),
]


@pytest.mark.parametrize(
    ("events", "failed", "seen"),
    [
        (HAPPY, [], ""),
        (
            [*HAPPY[:6], _verdict(74, 2, "HOLD", "urgency=low: override_rate 0.2 vs baseline 0.1"), *HAPPY[7:]],
            [0],
            "HOLD at T+01:14 without naming urgency=high: urgency=low: override_rate",
        ),
        ([*HAPPY[:3], _verdict(40, 1, "HOLD", "urgency=low: KPI"), *HAPPY[3:]], [1], "HOLD at stage 2 (25%), T+00:40"),
        ([*HAPPY[:9], _verdict(120, 2, "HOLD", "urgency=high: x"), *HAPPY[9:]], [1], "HOLD at stage 3 (50%), T+02:00"),
        ([*HAPPY[:6], _verdict(70, 2, "ROLLBACK", "error_rate 0.05")], [0, 2], "ROLLBACK at T+01:10 instead"),
        (HAPPY[:5], [0, 2], "the rollout never reached stage 3"),
        (HAPPY[:-1], [2], "not complete: running at stage 4 (100%)"),
    ],
)
def test_the_report_checks_the_gate_held_where_it_should_and_nowhere_else(
    events: list[Event], failed: list[int], seen: str
) -> None:
    pb = load_playbook(SHIPPED).playbook
    checks = check(plan(pb), stages_of(pb, events), events, T0, T0 + timedelta(hours=6))
    assert [i for i, c in enumerate(checks) if not c.ok] == failed
    assert seen in " | ".join(c.seen for c in checks)
