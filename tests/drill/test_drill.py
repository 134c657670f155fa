"""The drill end to end: real scheduler, sources, engine and store against the sandboxed model."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.drill import run_drill
from rollback_bot.drill.sandbox import ModelState, Sandbox
from rollback_bot.metrics import JsonSource, PrometheusSource
from rollback_bot.playbook import load_playbook
from tests.helpers import loopback_session


@pytest.mark.slow
def test_shipped_playbook_drill_meets_every_target(tmp_path: Path) -> None:
    lines: list[str] = []
    code = run_drill(
        "playbooks/genai-release.yaml",
        speed=2880,  # the 24h ladder in 30 s; faster, a loaded machine starves the scripted people
        min_real_interval=0.1,
        database_url=f"sqlite:///{tmp_path}/drill.db",
        out=lines.append,
    )
    text = "\n".join(lines)
    assert code == 0, text
    assert "All targets met." in text
    for n, name in enumerate(
        [
            "Flag and lock",
            "Last stable checkpoint on a 1% slice",
            "Revert traffic and push hotfix",
            "Monitor logs and run regression tests",
            "Verify fixes on a larger slice",
            "Full redeploy",
        ],
        1,
    ):
        assert f"==== step {n}/6 entered: {name}" in text
        assert re.search(rf"step {n}: {re.escape(name)}\s+\+\S+\s+\+\S+ \(late by \S+\)\s+ok", text), name
    assert "FAULT      drill: fault injected" in text
    assert "OPENED     incident #1 opened on support-copilot" in text
    assert "Ivan (no role) approves 'rollback' -> refused: You cannot approve 'Roll back traffic'" in text
    assert "approves 'rollback' -> refused: You already approved as approver" in text
    assert [
        m for m in ("stage 1%", "stage 10%", "stage 50%", "stage 100%") if f"Roll back traffic {m}: succeeded" in text
    ] == ["stage 1%", "stage 10%", "stage 50%", "stage 100%"]
    assert "--- comms draft: internal-alert ---" in text and "--- comms draft: all-clear ---" in text
    assert re.search(r"fault -> detection\s+<= 15m\s+\S+\s+ok", text)
    assert re.search(r"rollback executed -> metrics recovered\s+<= 2h\s+\S+\s+ok", text)
    assert "RESOLVED   resolved by Ana (incident commander)" in text
    assert "(UNEXPECTED)" not in text


SHORT = """\
name: short-drill
service: sandbox
channel: "#drills"
templates: {templates}
sources: {{prometheus: "http://prometheus.invalid:9090"}}
roles:
  incident_commander: {{users: [U0IC]}}
  approver: {{users: [U0A, U0B]}}
  responder: {{users: [U0R]}}
signals:
  fatal_error_rate: {{prometheus: "sum(rate(fatal[5m]))", every: 30s}}
  p95_latency_ms: {{http: "http://monitor.invalid/kpi", json: p95_latency_ms, every: 30s}}
triggers:
  fatal: {{when: fatal_error_rate > 0, severity: critical}}
ladder:
  - name: Lock
    window: 0h-30m
    watch: [fatal_error_rate == 0]
  - name: Roll back
    window: 30m-1h
    watch: [p95_latency_ms < 500]
    actions:
      - id: rollback
        label: Roll back
        requires: [approver, approver]
        stages: [50, 100]
        stage_every: 5m
        webhook: {{url: "http://deploy.invalid/rollback", body: {{percent: "{{{{ stage }}}}"}}}}
drill:
  detect_within: 1s
"""


@pytest.mark.slow
def test_a_missed_target_makes_the_drill_fail(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT.format(templates=Path("templates").resolve()))
    out = subprocess.run(
        [sys.executable, "-m", "rollback_bot.cli", "drill", str(path), "--speed", "1440", "--fault-after", "5m"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert re.search(r"fault -> detection\s+<= 1s\s+\S+\s+MISSED", out.stdout), out.stdout
    assert re.search(r"detection -> rollback executed\s+<= 1h\s+\S+\s+ok", out.stdout), out.stdout
    assert "1 target(s) missed: fault -> detection" in out.stdout


@pytest.mark.slow
def test_a_kept_database_holds_successive_drills_and_an_open_incident_blocks_the_next(tmp_path: Path) -> None:
    path = tmp_path / "short.yaml"
    path.write_text(SHORT.format(templates=Path("templates").resolve()))
    db = f"sqlite:///{tmp_path}/kept.db"
    cmd = [sys.executable, "-m", "rollback_bot.cli", "drill", str(path), "--speed", "2880", "--database", db]
    for n in (1, 2):
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        assert f"OPENED     incident #{n} opened" in out.stdout, out.stdout + out.stderr
        assert f"incident #{n} resolved" in out.stdout
    from rollback_bot.store import Incident, Store

    store = Store(db)
    with store.session() as s:
        s.add(
            Incident(
                playbook="short-drill",
                playbook_version="v",
                playbook_path="p",
                playbook_text="x",
                service="s",
                channel="#c",
                severity="major",
                trigger="t",
                summary="left open",
                opened_at=datetime(2026, 1, 1, tzinfo=UTC),
            )
        )
        s.commit()
    store.close()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "has an open incident for playbook short-drill; resolve it or give the drill another database" in out.stderr


def test_drill_refuses_a_broken_playbook_with_file_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text(SHORT.format(templates=Path("templates").resolve()).replace("window: 30m-1h", "window: 40m-1h"))
    out = subprocess.run([sys.executable, "-m", "rollback_bot.cli", "drill", str(path)], capture_output=True, text=True)
    assert out.returncode == 1
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "window: 40m-1h" in text)
    assert f"{path}:{line}: window 40m-1h leaves a gap after the previous step (0h-30m)" in out.stderr


@pytest.fixture
def sandbox():
    pb = load_playbook("playbooks/genai-release.yaml").playbook
    from datetime import UTC, datetime

    state = ModelState(lambda: datetime(2026, 1, 1, tzinfo=UTC))
    box = Sandbox(pb, state).start()
    yield pb, state, box
    box.stop()


def test_sandbox_serves_prometheus_api_and_json_and_recovers_after_rollback(sandbox: Any) -> None:
    pb, state, box = sandbox
    from datetime import UTC, datetime

    now = datetime(2026, 1, 1, tzinfo=UTC)
    session = loopback_session()
    fatal = PrometheusSource("fatal_error_rate", box.url, pb.signals["fatal_error_rate"].prometheus or "", 2)
    accuracy = JsonSource("accuracy", f"{box.url}/kpi", "quality.accuracy", 2)
    assert fatal.read(session, now).value == 0.0
    unknown = PrometheusSource("x", box.url, "up", 2).read(session, now)
    assert unknown.status == "error" and "bad_data" in unknown.detail
    state.fault_at = now
    assert fatal.read(session, now).value == 0.02
    assert (accuracy.read(session, now).value or 1) < 0.75
    hook = f"{box.url}/v1/rollback"
    for percent in ("50", "100"):
        r = session.post(hook, json={"percent": percent}, headers={"Idempotency-Key": f"k{percent}"}, timeout=2)
        assert r.json()["ok"]
    replay = session.post(hook, json={"percent": "0"}, headers={"Idempotency-Key": "k50"}, timeout=2).json()
    assert replay["replayed"] is True and state.reverted_pct == 100  # a replayed key is not applied again
    assert fatal.read(session, now).value == 0.0


def test_sandbox_answers_every_signal_of_the_playbook_read_at_once(sandbox: Any) -> None:
    """The bot reads all signals concurrently: the sandbox must take every connection at once (a listen
    backlog of 5 dropped some, and each retry cost a second, i.e. 24 drill minutes at 1440x)."""
    from datetime import UTC, datetime

    from rollback_bot.drill.run import redirect
    from rollback_bot.metrics import Reader
    from rollback_bot.metrics.build import build_source

    _pb, _state, box = sandbox
    drilled = redirect(load_playbook("playbooks/genai-release.yaml"), box.url).playbook  # as the drill reads it
    sources = [build_source(n, s, drilled) for n, s in drilled.signals.items() if s.builtin is None]
    sources += [JsonSource(f"kpi{i}", f"{box.url}/kpi?copy={i}", "quality.accuracy", 2) for i in range(40)]
    reader = Reader(loopback_session(), max_workers=64)
    try:
        slowest = 0.0
        for _ in range(3):
            started = time.monotonic()
            readings = reader.read_all(sources, lambda: datetime(2026, 1, 1, tzinfo=UTC))
            slowest = max(slowest, time.monotonic() - started)
            assert [(r.signal, r.detail) for r in readings if r.status == "error"] == []
        assert slowest < 0.9, f"a connection waited for a retry: {slowest:.2f}s"
    finally:
        reader.close()
