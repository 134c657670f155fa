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
    return "\n".join([*lines, "# EOF", ""])


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
