"""What if: `rollback-bot backtest PLAYBOOK --incident N` replays the readings stored around a past incident
under the playbook as it was (the incident's stored text) and as edited, and says what would have changed."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback_bot.backtest.whatif import what_if, write
from rollback_bot.cli import main
from rollback_bot.playbook.loader import load_playbook, parse_playbook
from rollback_bot.store import Incident, Store
from rollback_bot.store.readings import insert_readings

T0 = datetime(2026, 3, 1, 0, 0, tzinfo=UTC)
THEN = """\
name: bt
service: svc
channel: "#ops"
roles: {incident_commander: {users: [U1]}, responder: {users: [U2]}}
signals:
  errors: {http: "http://monitor.invalid/kpi", json: errors, every: 1m}
triggers:
  fatal: {when: errors > 0.02, for: 2m, severity: critical}
ladder:
  - {name: Flag, window: 0h-1h}
"""
# edited after the incident: a lower threshold without `for`, and a new trigger on a new signal
NOW = (
    THEN.replace("  fatal: {when: errors > 0.02, for: 2m, severity: critical}\n", "")
    .replace(
        "triggers:\n", "triggers:\n  fatal: {when: errors > 0.015, severity: critical}\n  slow: {when: latency > 800}\n"
    )
    .replace(
        "every: 1m}\n", 'every: 1m}\n  latency: {http: "http://monitor.invalid/kpi", json: latency, every: 1m}\n', 1
    )
)


def errors_at(minute: int) -> float:
    """Four days a minute apart. Day 1 12:00: a one-minute spike to 0.018. Day 3 10:00: errors climb 0.001 a
    minute from 0.01 (0.016 at 10:06, 0.021 at 10:11) to 0.05 and stay until 11:00."""
    day1_spike = 24 * 60 + 12 * 60
    climb = 2 * 24 * 60 + 10 * 60
    if minute == day1_spike:
        return 0.018
    if climb <= minute < climb + 60:
        return min(0.01 + 0.001 * (minute - climb), 0.05)
    return 0.01


def test_what_if_says_earlier_new_triggers_and_false_alarms(
    store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [
        {
            "playbook": "bt",
            "signal": "errors",
            "at": T0 + timedelta(minutes=m),
            "value": errors_at(m),
            "status": "ok",
            "detail": "",
        }
        for m in range(4 * 24 * 60)
    ]
    opened = T0 + timedelta(days=2, hours=10, minutes=13)  # 0.021 at 10:11, two minutes sustained
    with store.session() as s:
        insert_readings(s, rows)
        s.add(
            Incident(
                playbook="bt",
                playbook_version="v1",
                playbook_path="bt.yaml",
                playbook_text=THEN,
                service="svc",
                channel="#ops",
                severity="critical",
                status="resolved",
                trigger="fatal",
                summary="errors high",
                opened_at=opened,
                resolved_at=opened + timedelta(hours=1),
            )
        )
        s.commit()
    edited = parse_playbook(NOW, "bt.yaml").playbook
    result = what_if(store, 1, edited, days=3)
    assert result.opened(result.then) == opened  # the version in force replays as it happened
    assert result.opened(result.now) == T0 + timedelta(days=2, hours=10, minutes=6)
    changes = {c.trigger: c.what for c in result.changes}
    assert changes == {"fatal": "fires 7m earlier", "slow": "new: would not fire"}
    assert result.false_alarms(result.then) == []
    assert result.false_alarms(result.now) == [T0 + timedelta(days=1, hours=12)]  # the spike, under the new one
    out = io.StringIO()
    write("table", result, out)
    text = out.getvalue()
    assert "As it was: the replay opens it at 2026-03-03 10:13:00 (as it happened)" in text
    assert "As it is now: it would open at 2026-03-03 10:06:00, 7m earlier" in text
    assert "False alarms in the surrounding days: 0 as it was, 1 as it is now" in text
    assert "  now: an incident would open at 2026-03-02 12:00:00" in text
    assert "note: no stored readings for latency (replayed as no data)" in text
    # the CLI, as a post-mortem author runs it
    path = tmp_path / "bt.yaml"
    path.write_text(NOW)
    cmd = ["backtest", str(path), "--incident", "1"]
    capsys.readouterr()
    assert main([*cmd, "--database", store.url, "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["replayed_now"]["opened_at"] == "2026-03-03T10:06:00+00:00"
    assert doc["triggers"][0] == {
        "trigger": "fatal",
        "then": "2026-03-03T10:13:00+00:00",
        "now": "2026-03-03T10:06:00+00:00",
        "change": "fires 7m earlier",
    }
    assert main([*cmd[:-1], "9", "--database", store.url]) == 2
    assert capsys.readouterr().err.strip() == "backtest: no incident #9 in the database"
    assert main(cmd[:2]) == 2
    assert "give --from and --to (or --incident N" in capsys.readouterr().err
    assert set(load_playbook(path).playbook.triggers) == {"fatal", "slow"}
