"""The backtest on a readings file: firing and clearing times, incidents, scores, formats, and bad input."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback_bot.cli import main

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
PLAYBOOK = """\
name: bt
service: svc
channel: "#ops"
roles: {incident_commander: {users: [U1]}, responder: {users: [U2]}}
signals:
  errors: {http: "http://monitor.invalid/kpi", json: errors, every: 30s}
  latency: {http: "http://monitor.invalid/kpi", json: latency, every: 1m}
triggers:
  fatal: {when: errors > 0, severity: critical}
  slow: {when: latency > 800, for: 5m, keep_firing_for: 2m}
ladder:
  - {name: Flag, window: 0h-1h}
"""


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def files(tmp_path: Path) -> Path:
    (tmp_path / "bt.yaml").write_text(PLAYBOOK)
    rows = ["time,signal,value"]
    for k in range(120):  # a reading a minute; errors at 30s: each reading stays current 65s, as live
        errors = 0.02 if 20 <= k < 25 else 0
        latency = "" if 70 <= k < 75 else (900 if 40 <= k < 60 else 300)  # empty: no data
        rows += [f"{at(k).isoformat()},errors,{errors}", f"{at(k).isoformat()},latency,{latency}"]
    (tmp_path / "readings.csv").write_text("\n".join(rows) + "\n")
    (tmp_path / "known.csv").write_text(
        "start,end,label\n2026-03-01T09:18:00Z,2026-03-01T09:30:00Z,errors\n"
        "2026-03-01T10:30:00Z,2026-03-01T10:45:00Z,unseen\n"
    )
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["backtest", *args])
    out, err = capsys.readouterr()
    return code, out, err


def backtest(files: Path, *extra: str) -> list[str]:
    return [
        str(files / "bt.yaml"),
        "--from",
        "2026-03-01T09:00:00Z",
        "--to",
        "2026-03-01T10:59:00Z",
        "--readings",
        str(files / "readings.csv"),
        *extra,
    ]


def test_firing_and_clearing_times_and_incidents(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, *backtest(files, "--format", "json"))
    assert code == 0, err
    doc = json.loads(out)
    firings = [(f["trigger"], f["fired_at"], f["cleared_at"]) for f in doc["firings"]]
    assert firings == [
        ("fatal", at(20).isoformat(), at(25).isoformat()),
        # breached from 09:40; 5m later it fires; healthy from 10:00, it keeps firing 2m more
        ("slow", at(45).isoformat(), at(62).isoformat()),
    ]
    assert [(i["opened_at"], i["resolved_at"], i["triggers"]) for i in doc["incidents"]] == [
        (at(20).isoformat(), at(25).isoformat(), ["fatal"]),
        (at(45).isoformat(), at(62).isoformat(), ["slow"]),
    ]
    assert doc["firings"][1]["pending_since"] == at(40).isoformat()
    assert doc["evaluations"] == 239 + 120  # every poll of each group (30s and 1m), as live


def test_known_incidents_give_delay_false_alarms_and_misses(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *backtest(files, "--incidents", str(files / "known.csv"), "--format", "json"))
    assert code == 0
    scores = {s["trigger"]: s for s in json.loads(out)["scores"]}
    assert [d["delay_seconds"] for d in scores["fatal"]["detected"]] == [120.0]
    assert [m["label"] for m in scores["fatal"]["misses"]] == ["unseen"]
    assert scores["slow"]["false_alarms"] == [at(45).isoformat()]
    assert len(scores["slow"]["misses"]) == 2


def test_table_csv_and_charts(files: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, *backtest(files, "--incidents", str(files / "known.csv")))
    assert code == 0
    assert "fatal    critical  2026-03-01 09:20:00  2026-03-01 09:25:00  5m" in out
    assert "median delay" in out
    code, out, _ = run(capsys, *backtest(files, "--format", "csv", "--charts", str(files / "charts")))
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["record"], r["trigger"], r["start"]) for r in rows][:2] == [
        ("firing", "fatal", at(20).isoformat()),
        ("firing", "slow", at(45).isoformat()),
    ]
    assert sorted(p.name for p in (files / "charts").iterdir()) == ["fatal.png", "slow.png"]
    assert (files / "charts" / "slow.png").read_bytes()[:4] == b"\x89PNG"


def test_json_readings_and_a_gap_that_is_no_data(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bt.yaml").write_text(PLAYBOOK)
    pairs = [[at(k).timestamp(), 900 if k < 20 else None] for k in range(30)]  # Unix seconds; null: no data
    (tmp_path / "r.json").write_text(json.dumps({"latency": pairs}))
    code, out, _ = run(
        capsys, str(tmp_path / "bt.yaml"), "--from", at(0).isoformat(), "--to", at(29).isoformat(),
        "--readings", str(tmp_path / "r.json"), "--format", "json",
    )  # fmt: skip
    assert code == 0
    firings = json.loads(out)["firings"]
    # fired at 5m; no data from 20m never clears it (nor does it fire anything by itself)
    assert [(f["trigger"], f["fired_at"], f["cleared_at"]) for f in firings] == [("slow", at(5).isoformat(), None)]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ("time,signal,value\n2026-03-01T09:00:00Z,nope,1\n", (), "readings.csv:2: unknown signal 'nope'"),
        ("time,signal,value\nyesterday,errors,1\n", (), "readings.csv:2: not a time: 'yesterday'"),
        ("time,signal,value\n2026-03-01T09:00:00Z,errors,lots\n", (), "readings.csv:2: value 'lots' is not a number"),
        ("", ("--from", "2026-03-02T00:00:00Z"), "--from 2026-03-02T00:00:00+00:00 is not before --to"),
        ("", ("--to", "soon"), "--from/--to: not a time: 'soon'"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, args: tuple[str, ...], message: str
) -> None:
    (tmp_path / "bt.yaml").write_text(PLAYBOOK)
    (tmp_path / "readings.csv").write_text(content)
    base = {"--from": "2026-03-01T09:00:00Z", "--to": "2026-03-01T10:00:00Z"}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    argv = [
        str(tmp_path / "bt.yaml"),
        *(x for kv in base.items() for x in kv),
        "--readings",
        str(tmp_path / "readings.csv"),
    ]
    code, out, err = run(capsys, *argv)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1 and message in err, err


def test_unreachable_prometheus_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    (tmp_path / "p.yaml").write_text(
        PLAYBOOK.replace(
            '{http: "http://monitor.invalid/kpi", json: errors, every: 30s}', '{prometheus: "up"}'
        ).replace("roles:", f"sources: {{prometheus: 'http://127.0.0.1:{port}'}}\nroles:")
    )
    code, out, err = run(
        capsys, str(tmp_path / "p.yaml"), "--from", "2026-03-01T09:00:00Z", "--to", "2026-03-01T10:00:00Z"
    )
    assert code == 2 and out == ""
    assert err.startswith("backtest: errors: prometheus unreachable: ") and len(err.strip().splitlines()) == 1, err


def test_json_list_of_readings_and_json_known_incidents(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bt.yaml").write_text(PLAYBOOK)
    items = [{"time": at(k).isoformat(), "signal": "errors", "value": 1 if k == 3 else 0} for k in range(10)]
    (tmp_path / "r.json").write_text(json.dumps(items))
    (tmp_path / "k.json").write_text(json.dumps([{"start": at(2).isoformat(), "end": at(4).isoformat()}]))
    code, out, _ = run(
        capsys, str(tmp_path / "bt.yaml"), "--from", at(0).isoformat(), "--to", at(9).isoformat(),
        "--readings", str(tmp_path / "r.json"), "--incidents", str(tmp_path / "k.json"), "--format", "json",
    )  # fmt: skip
    assert code == 0
    doc = json.loads(out)
    assert [(f["trigger"], f["fired_at"], f["cleared_at"]) for f in doc["firings"]] == [
        ("fatal", at(3).isoformat(), at(4).isoformat())
    ]
    fatal = next(s for s in doc["scores"] if s["trigger"] == "fatal")
    assert (fatal["median_delay_seconds"], fatal["false_alarms"], fatal["misses"]) == (60.0, [], [])
