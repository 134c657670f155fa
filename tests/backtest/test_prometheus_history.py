"""The backtest against a real Prometheus (Debian's `prometheus`) loaded with past samples by
`promtool tsdb create-blocks-from openmetrics`, started on loopback: range queries, chunking, firing times."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback_bot.cli import main
from rollback_bot.metrics import history
from rollback_bot.metrics.endpoint import Endpoint
from tests import prometheus as prom
from tests.helpers import loopback_session

pytestmark = pytest.mark.prometheus
# two days back, on the minute: older than Prometheus' head block, well inside its retention
T0 = (datetime.now(UTC) - timedelta(days=2)).replace(second=0, microsecond=0)
MINUTES = 90
PLAYBOOK = """\
name: prom-bt
service: svc
channel: "#ops"
sources: {{prometheus: "{url}"}}
roles: {{incident_commander: {{users: [U1]}}, responder: {{users: [U2]}}}}
signals:
  errors: {{prometheus: max(copilot_error_ratio), every: 30s}}
  latency: {{prometheus: max(copilot_latency_ms), every: 1m}}
triggers:
  fatal: {{when: errors > 0, severity: critical}}
  slow: {{when: latency > 800, for: 5m}}
ladder:
  - {{name: Flag, window: 0h-1h}}
"""


ROLLOUT = """\
name: prom-rollout
service: svc
channel: "#ops"
sources: {{prometheus: "{url}"}}
roles: {{incident_commander: {{users: [U1]}}, responder: {{users: [U2]}}}}
signals:
  served: {{prometheus: 'sum(copilot_served_total{{version="{{version}}"}})', every: 1m}}
  overrides:
    prometheus: 'sum by (urgency) (copilot_override_ratio{{version="{{version}}"}})'
    segments: [urgency]
    every: 1m
  errors: {{prometheus: max(copilot_error_ratio), every: 30s}}
rollout:
  baseline: current
  candidate: v2
  sample: served
  stages: [{{percent: 10, min_duration: 10m, min_sample: 100}}, {{percent: 100, min_duration: 1h, min_sample: 100}}]
  advance: {{requires: [incident_commander]}}
  webhook: {{url: "http://127.0.0.1:9/traffic", body: {{percent: "{{{{ percent }}}}"}}}}
  gate: {{kpi: {{overrides: -1.0}}, hold_below: -0.02, rollback_below: -0.5}}
  holds: [{{signal: overrides, worse: higher, by: 0.05}}]
triggers:
  fatal: {{when: errors > 0, severity: critical}}
ladder:
  - {{name: Flag, window: 0h-1h}}
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def openmetrics() -> str:
    """A sample every 30s: errors from 20m to 25m, latency high from 40m to 60m, then no samples for 10m."""
    lines = ["# TYPE copilot_error_ratio gauge"]
    for k in range(MINUTES * 2 + 1):
        m = k / 2
        lines.append(f"copilot_error_ratio {0.02 if 20 <= m < 25 else 0} {at(m).timestamp():.0f}")
    lines.append("# TYPE copilot_latency_ms gauge")
    for k in range(MINUTES * 2 + 1):
        m = k / 2
        if not 70 <= m < 80:  # a gap longer than Prometheus' 5m lookback: an empty result, no data
            lines.append(f'copilot_latency_ms{{pod="a"}} {900 if 40 <= m < 60 else 300} {at(m).timestamp():.0f}')
    lines += rollout_metrics()
    return "\n".join([*lines, "# EOF", ""])


def rollout_metrics() -> list[str]:
    """Both versions of a rollout, per urgency, a sample a minute: from 30m to 60m the candidate's urgent
    overrides climb; the candidate's request counter grows 20 a minute."""
    lines = ["# TYPE copilot_override_ratio gauge"]
    for m in range(MINUTES + 1):
        wobble = (0.003, -0.002, 0.001, -0.003, 0.002, -0.001)[m % 6]
        for version in ("current", "v2"):
            for urgency in ("high", "normal"):
                bad = version == "v2" and urgency == "high" and 30 < m <= 60
                value = 0.1 + wobble + (0.2 if bad else 0)
                stamp = f"{at(m).timestamp():.0f}"
                lines.append(f'copilot_override_ratio{{version="{version}",urgency="{urgency}"}} {value:.4f} {stamp}')
    lines.append("# TYPE copilot_served counter")
    for m in range(MINUTES + 1):
        for version in ("current", "v2"):
            lines.append(f'copilot_served_total{{version="{version}"}} {20 * m} {at(m).timestamp():.0f}')
    return lines


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    promtool = prom.binary("promtool")
    prom.binary()
    work = tmp_path_factory.mktemp("prometheus-history")
    (work / "history.om").write_text(openmetrics())
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", str(work / "history.om"), str(work / "data")],
        check=True,
        capture_output=True,
        timeout=120,
    )
    ready = {"query": "max(copilot_latency_ms)", "time": f"{at(1).timestamp():.0f}"}  # the history is loaded
    with prom.running(work, "global: {scrape_interval: 1m}\nscrape_configs: []\n", ready) as url:
        yield url


def backtest(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    (tmp_path / "p.yaml").write_text(PLAYBOOK.format(url=url))
    code = main(["backtest", str(tmp_path / "p.yaml"), "--from", at(0).isoformat(), "--to", at(MINUTES).isoformat(),
                 "--format", "json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc: dict[str, object] = json.loads(out)
    return doc


def test_firing_times_from_prometheus_history(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = backtest(tmp_path, prometheus, capsys)
    firings = [(f["trigger"], f["fired_at"], f["cleared_at"]) for f in doc["firings"]]  # type: ignore[attr-defined]
    assert firings == [
        ("fatal", at(20).isoformat(), at(25).isoformat()),
        ("slow", at(45).isoformat(), at(60).isoformat()),
    ]
    assert doc["notes"] == []


def test_chunked_range_queries_give_the_same_answer(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    whole = backtest(tmp_path, prometheus, capsys)
    monkeypatch.setattr(history, "CHUNK_POINTS", 7)  # 181 steps of errors in 26 queries
    assert backtest(tmp_path, prometheus, capsys)["firings"] == whole["firings"]


def test_the_gap_is_no_data_and_a_bad_query_is_exit_2(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    readings = history.query_range(
        loopback_session(), Endpoint(prometheus), "latency", "max(copilot_latency_ms)",
        at(60), at(90), timedelta(minutes=1), 10,
    )  # fmt: skip
    assert [r.status for r in readings].count("nodata") == 5  # 75m..79m: more than 5m after the last sample
    assert readings[0].value == 300 and readings[0].at == at(60)
    (tmp_path / "bad.yaml").write_text(PLAYBOOK.format(url=prometheus).replace("max(copilot_error_ratio)", "'sum('"))
    code = main(["backtest", str(tmp_path / "bad.yaml"), "--from", at(0).isoformat(), "--to", at(10).isoformat()])
    out, err = capsys.readouterr()
    assert code == 2 and out == ""
    assert err.startswith("backtest: errors: prometheus bad_data: ") and len(err.strip().splitlines()) == 1


def test_the_rollout_gate_per_window_from_prometheus_history(
    prometheus: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each version read with {version} put in the query, each segment from its series' labels, as live."""
    (tmp_path / "r.yaml").write_text(ROLLOUT.format(url=prometheus))
    args = ["backtest", str(tmp_path / "r.yaml"), "--from", at(0).isoformat(), "--to", at(90).isoformat()]
    assert main([*args, "--window", "30m", "--format", "json"]) == 0, capsys.readouterr().err
    doc = json.loads(capsys.readouterr().out)
    windows = doc["rollout_gate"]["windows"]
    assert [w["verdict"] for w in windows] == ["GO", "HOLD", "GO"]
    assert windows[1]["why"][0].startswith("urgency=high: overrides 0.3")
    assert windows[1]["lowest_kpi"]["segment"] == "urgency=high"
    assert [w["sample"] for w in windows] == [580, 580, 580]  # 20 a minute over the 29 minutes between its readings
    assert [(f["trigger"], f["fired_at"]) for f in doc["firings"]] == [("fatal", at(20).isoformat())]
    # judged as the last stage, a 30m window is shorter than its minimum duration: no GO yet
    assert main([*args, "--window", "30m", "--stage", "2", "--format", "json"]) == 0
    later = json.loads(capsys.readouterr().out)["rollout_gate"]["windows"]
    assert [w["verdict"] for w in later] == ["NOT ENOUGH DATA", "HOLD", "NOT ENOUGH DATA"]
    assert later[0]["why"] == ["stage running 30m of its 1h"]


def test_segments_from_a_range_query_are_keyed_as_live(prometheus: str) -> None:
    by = history.query_range_segments(
        loopback_session(), Endpoint(prometheus), "overrides",
        'sum by (urgency) (copilot_override_ratio{version="v2"})', ["urgency"], at(0), at(10),
        timedelta(minutes=1), 10,
    )  # fmt: skip
    assert list(by) == ["urgency=high", "urgency=normal"]
    assert [len(r) for r in by.values()] == [11, 11] and by["urgency=high"][0].value == 0.103
    with pytest.raises(history.HistoryError, match="two series for segment urgency=high"):
        history.query_range_segments(
            loopback_session(), Endpoint(prometheus), "overrides", "copilot_override_ratio", ["urgency"],
            at(0), at(10), timedelta(minutes=1), 10,
        )  # fmt: skip
