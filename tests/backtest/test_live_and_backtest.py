"""The live engine and the backtest on one recorded series: the same decision at every evaluation, so the same
firing and clearing times. The live side is `flows.poll` on a FakeClock against a fake JSON endpoint, polling
each group as the scheduler does; the backtest replays the readings the live side stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from rollback_bot import flows
from rollback_bot.backtest.inputs import read_readings
from rollback_bot.backtest.replay import replay
from rollback_bot.cli import main
from rollback_bot.clock import FakeClock
from rollback_bot.directory import StaticDirectory
from rollback_bot.flows import Deps
from rollback_bot.flows import watch as live_watch
from rollback_bot.playbook import load_playbook
from rollback_bot.rules.polling import poll_groups
from rollback_bot.store import Store
from rollback_bot.store.models import Event, ReadingRow
from tests.helpers import FakeHTTP, loopback_session

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MINUTES = 40
PLAYBOOK = """\
name: twin
service: svc
channel: "#ops"
roles: {{incident_commander: {{users: [U1]}}, responder: {{users: [U2]}}}}
signals:
  errors: {{http: "{url}/kpi", json: errors, every: 30s}}
  latency: {{http: "{url}/kpi", json: latency, every: 30s}}
  quality: {{http: "{url}/quality", json: q, every: 1m}}
triggers:
  fatal: {{when: errors > 0.5, severity: critical}}
  slow: {{when: latency > 800, for: 2m, keep_firing_for: 1m, no_data: reset}}
  jumpy: {{when: latency jumps 50% within 5m, severity: minor}}
  quality: {{when: quality < 0.8, breaches: 2 of 3}}
ladder:
  - {{name: Flag, window: 0h-1h}}
"""


def series(t: timedelta) -> dict[str, Any]:
    """The recorded series: what the endpoints answer `t` after T0 (None: a null, no data)."""
    m = t.total_seconds() / 60
    errors = 1.0 if 5 <= m < 6.5 else 0.0
    latency: float | None = 900.0 if 10 <= m < 16 else 300.0
    if 20 <= m < 21.5 or 30 <= m < 31:
        latency = None
    if 28 <= m < 33:
        latency = 1000.0 if m < 30 or m >= 31 else latency  # breached, interrupted by no data (reset)
    quality = 0.7 if m in (24, 25, 27) else 0.9
    return {"kpi": {"errors": errors, "latency": latency}, "quality": {"q": quality}}


@pytest.fixture
def live(tmp_path: Path, fake_http: FakeHTTP) -> Iterator[tuple[Deps, Path, FakeClock]]:
    clock = FakeClock(T0)
    path = tmp_path / "twin.yaml"
    path.write_text(PLAYBOOK.format(url=fake_http.url))
    fake_http.routes["/kpi"] = lambda rec: (200, series(clock.now() - T0)["kpi"])
    fake_http.routes["/quality"] = lambda rec: (200, series(clock.now() - T0)["quality"])
    store = Store(f"sqlite:///{tmp_path}/live.db")
    deps = Deps(store, clock, loopback_session(), StaticDirectory(), sleep=lambda s: None)
    yield deps, path, clock
    store.close()


def test_live_and_backtest_decide_the_same(
    live: tuple[Deps, Path, FakeClock],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    deps, path, clock = live
    loaded = load_playbook(path)
    seen: list[tuple[datetime, str, str, bool, bool]] = []
    real = live_watch.step_triggers  # type: ignore[attr-defined]  # patched where the module looks it up

    def spy(*args: Any) -> Any:  # records what the live path decided, changes nothing
        out = real(*args)
        seen.extend((args[4], d.trigger, d.status, d.fired, d.cleared) for d, _ in out)
        return out

    monkeypatch.setattr(live_watch, "step_triggers", spy)
    groups = poll_groups(loaded.playbook)
    step = timedelta(seconds=30)
    for k in range(MINUTES * 2 + 1):  # as the scheduler: each group from T0 at its interval, shortest first
        now = T0 + k * step
        clock.advance(now - clock.now())
        for group in groups:
            if (now - T0) % group.interval == timedelta(0):
                flows.poll(deps, loaded, list(group.signals))

    with deps.store.session() as s:
        rows = s.exec(select(ReadingRow).order_by(col(ReadingRow.at), col(ReadingRow.id))).all()
        events = s.exec(select(Event).order_by(col(Event.id))).all()
        recorded = [[r.at.replace(tzinfo=UTC).isoformat(), r.signal, "" if r.value is None else r.value] for r in rows]
        live_changes = [
            (e.details.get("trigger"), e.kind, e.at.replace(tzinfo=UTC).isoformat())
            for e in events
            if e.kind in ("signal.fired", "trigger.attached", "signal.cleared")
        ]
    readings = tmp_path / "recorded.csv"
    readings.write_text("time,signal,value\n" + "".join(f"{t},{s},{v}\n" for t, s, v in recorded))

    result = replay(
        loaded.playbook, read_readings(readings, loaded.playbook), T0, T0 + MINUTES * timedelta(minutes=1),
        keep_decisions=True,
    )  # fmt: skip
    replayed = [(at, d.trigger, d.status, d.fired, d.cleared) for at, d in result.decisions]
    assert replayed == seen  # every evaluation, every trigger

    code = main(["backtest", str(path), "--from", T0.isoformat(), "--to", (T0 + timedelta(minutes=MINUTES)).isoformat(),
                 "--readings", str(readings), "--format", "json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 0, err
    doc = json.loads(out)
    changes = [(f["trigger"], "fired", f["fired_at"]) for f in doc["firings"]]
    changes += [(f["trigger"], "cleared", f["cleared_at"]) for f in doc["firings"] if f["cleared_at"]]
    live_fired = [(t, "fired", at) for t, kind, at in live_changes if kind != "signal.cleared"]
    live_cleared = [(t, "cleared", at) for t, kind, at in live_changes if kind == "signal.cleared"]
    assert sorted(changes) == sorted(live_fired + live_cleared)
    fired = {t for t, kind, _ in changes if kind == "fired"}
    assert fired == {"fatal", "slow", "jumpy", "quality"}  # the series exercises every trigger
