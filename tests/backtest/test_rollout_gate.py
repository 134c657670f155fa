"""The rollout gate in a backtest: history per version and segment, cut into windows, each judged by the gate the
live bot runs. The live rollout's own readings, written out as a readings file, give the live verdict back."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from rollback_bot.cli import main
from rollback_bot.flows import rollout as flow
from rollback_bot.store import rollouts as store_rollouts
from rollback_bot.store.models import Rollout
from tests.rollout.test_flow import World, world  # noqa: F401  (the live rollout, as its own tests run it)

SHIPPED = Path("playbooks/copilot-rollout.yaml")
NAMES = {"baseline": "current", "candidate": "copilot-v2"}
T0 = datetime(2026, 3, 2, tzinfo=UTC)
HEALTHY = {"resolution_score": 0.80, "sla_hit_rate": 0.95, "override_rate": 0.10, "incident_miss_rate": 0.02}


def _dump(w: World, path: Path) -> tuple[datetime, datetime]:
    """The live rollout's stored readings as a readings file (version names as the playbook gives them);
    (when its stage began, when it last looked)."""
    with w.deps.store.session() as s:
        ro = s.exec(select(Rollout)).one()
        assert ro.id is not None
        points = store_rollouts.points_since(s, rollout_id=ro.id, since=ro.stage_started_at)
        began = ro.stage_started_at
    with path.open("w", newline="") as fp:
        out = csv.writer(fp)
        out.writerow(["time", "signal", "version", "segment", "value"])  # columns in another order: by name
        for p in points:
            version = NAMES[p.version] if p.signal != "drift_psi" else ""
            out.writerow([p.at.isoformat(), p.signal, version, p.segment, repr(p.value)])
    return began, w.clock.now()


@pytest.mark.parametrize(
    "change",
    [
        pytest.param({}, id="go"),
        pytest.param({"candidate": {"high": {"override_rate": 0.31}}}, id="hold"),
        pytest.param({"error_rate": 0.05}, id="rollback"),
    ],
)
def test_the_backtest_gives_the_live_verdict_on_the_same_readings(
    world: World,  # noqa: F811
    change: dict[str, object],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    w = world
    for name, value in change.items():
        setattr(w, name, value)
    assert flow.start(w.deps, w.loaded, "U0RM").ok
    live = w.observe(8)
    assert live == {"go": "GO", "hold": "HOLD", "rollback": "ROLLBACK"}[_id(change)]
    live_why = list(w.why)
    began, now = _dump(w, tmp_path / "readings.csv")
    span = now - began
    args = [
        "backtest",
        str(tmp_path / "playbooks" / "copilot-rollout.yaml"),
        "--readings",
        str(tmp_path / "readings.csv"),
        "--no-prometheus",
    ]
    args += ["--from", began.isoformat(), "--to", now.isoformat(), "--window", f"{int(span.total_seconds())}s"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    [window] = doc["rollout_gate"]["windows"]
    assert (window["verdict"], window["why"]) == (live, live_why)
    assert doc["rollout_gate"]["stage"] == 1


def _id(change: dict[str, object]) -> str:
    return "go" if not change else "hold" if "candidate" in change else "rollback"


def _history(path: Path, days: int) -> None:
    """Days of 10-minute readings of both versions: day 2 the candidate's urgent overrides climb, day 3 its
    error rate; other days it matches the baseline (with the same small wobble)."""
    rows = [["time", "signal", "value", "version", "segment"]]
    served = {"current": 0.0, "copilot-v2": 0.0}
    for k in range(days * 144):
        at = (T0 + timedelta(minutes=10 * k)).isoformat()
        day = k // 144
        wobble = (0.003, -0.002, 0.001, -0.003, 0.002, -0.001)[k % 6]
        for version in ("current", "copilot-v2"):
            served[version] += 300
            rows.append([at, "served", str(served[version]), version, ""])
            bad = version == "copilot-v2"
            rows.append([at, "error_rate", str(0.05 if bad and day == 2 else 0.002), version, ""])
            rows.append([at, "p95_latency_ms", "420", version, ""])
            for sig, healthy in HEALTHY.items():
                for seg in ("high", "normal"):
                    value = (
                        healthy + wobble + (0.2 if bad and day == 1 and seg == "high" and sig == "override_rate" else 0)
                    )
                    rows.append([at, sig, f"{value:.4f}", version, f"urgency={seg}"])
        rows.append([at, "drift_psi", "0.04", "", ""])
        rows.append([at, "fatal_error_rate", "0", "", ""])
    with path.open("w", newline="") as fp:
        csv.writer(fp).writerows(rows)


def test_a_verdict_per_window_as_a_table_json_and_csv(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(tmp_path / "h.csv", 4)
    args = ["backtest", str(SHIPPED), "--readings", str(tmp_path / "h.csv"), "--no-prometheus"]
    args += ["--from", T0.isoformat(), "--to", (T0 + timedelta(days=4)).isoformat(), "--window", "1d"]
    assert main([*args, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    windows = doc["rollout_gate"]["windows"]
    assert [w["verdict"] for w in windows] == ["GO", "HOLD", "ROLLBACK", "GO"]
    assert [w["start"][:10] for w in windows] == ["2026-03-02", "2026-03-03", "2026-03-04", "2026-03-05"]
    assert windows[1]["why"][0].startswith("urgency=high: override_rate 0.299 vs baseline 0.1 (p=")
    assert windows[1]["lowest_kpi"]["segment"] == "urgency=high" and windows[1]["lowest_kpi"]["difference"] < -0.04
    assert windows[2]["why"][0].startswith("error_rate 0.0497 vs baseline 0.002 (p=")  # (day 3, day 4]: as live
    assert windows[0]["sample"] == 143 * 300  # growth of the candidate's counter inside the window
    assert doc["firings"] == []  # the trigger's signal stayed at 0

    assert main([*args, "--stage", "4"]) == 0
    table = capsys.readouterr().out
    assert "Rollout gate, a verdict per 24h window (each judged as stage 4, min sample 5,000, min duration 1h)" in table
    assert "GO 2, HOLD 1, ROLLBACK 1, NOT ENOUGH DATA 0" in table
    assert "2026-03-03 00:00:00  2026-03-04 00:00:00  HOLD" in table

    assert main([*args, "--format", "csv"]) == 0
    rows = [r for r in csv.reader(capsys.readouterr().out.splitlines()) if r[0] == "gate"]
    assert [(r[1], r[5]) for r in rows] == [("rollout", v) for v in ("GO", "HOLD", "ROLLBACK", "GO")]
    assert float(rows[0][4]) == 86400.0


def test_a_window_without_enough_of_the_candidate_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _history(tmp_path / "h.csv", 1)
    args = ["backtest", str(SHIPPED), "--readings", str(tmp_path / "h.csv"), "--no-prometheus", "--format", "json"]
    args += ["--from", T0.isoformat(), "--to", (T0 + timedelta(days=2)).isoformat(), "--window", "1d"]
    assert main(args) == 0
    windows = json.loads(capsys.readouterr().out)["rollout_gate"]["windows"]
    assert [w["verdict"] for w in windows] == ["GO", "NOT ENOUGH DATA"]  # day 2: no readings at all
    assert windows[1]["why"] == ["sample 0 of 500 requests served by the candidate in this stage"]


T = "2026-03-02T00:00:00Z"


@pytest.mark.parametrize(
    ("row", "extra", "said"),
    [
        (
            [T, "override_rate", "0.1", "", "urgency=high"],
            [],
            "h.csv:2: 'override_rate' is read per version: give the version (current or copilot-v2), not none",
        ),
        ([T, "override_rate", "0.1", "v3", "urgency=high"], [], "not 'v3'"),
        ([T, "drift_psi", "0.1", "current", ""], [], "h.csv:2: 'drift_psi' is not read per version"),
        ([T, "error_rate", "0.1", "current", "urgency=high"], [], "h.csv:2: 'error_rate' is not read per segment"),
        ([T, "served", "1", "current", ""], ["--stage", "5"], "--stage 5: the rollout has stages 1 to 4"),
        ([T, "served", "1", "current", ""], ["--window", "0s"], "--window must be longer than zero"),
    ],
)
def test_bad_history_or_options_say_where(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], row: list[str], extra: list[str], said: str
) -> None:
    with (tmp_path / "h.csv").open("w", newline="") as fp:
        csv.writer(fp).writerows([["time", "signal", "value", "version", "segment"], row])
    args = ["backtest", str(SHIPPED), "--readings", str(tmp_path / "h.csv"), "--no-prometheus", *extra]
    args += ["--from", "2026-03-02T00:00:00Z", "--to", "2026-03-03T00:00:00Z"]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err


def test_a_header_naming_an_unknown_column_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "h.csv").write_text("time,signal,value,versoin\n2026-03-02T00:00:00Z,served,1,current\n")
    args = ["backtest", str(SHIPPED), "--readings", str(tmp_path / "h.csv"), "--no-prometheus"]
    assert main([*args, "--from", "2026-03-02T00:00:00Z", "--to", "2026-03-03T00:00:00Z"]) == 2
    assert "h.csv:1: the header names the columns time, signal, value, version, segment" in capsys.readouterr().err
