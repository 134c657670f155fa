"""A rollout end to end on SQLite and PostgreSQL: the seed's scenario (10% -> 25% -> 50%, overrides climb in
one segment at 50%, HOLD naming it, fix, release, on to 100%), who may advance, and a guardrail's rollback."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import col, select

from rollback_bot.clock import FakeClock
from rollback_bot.directory import StaticDirectory
from rollback_bot.export import export_rollout, export_text
from rollback_bot.flows import Deps
from rollback_bot.flows import rollout as flow
from rollback_bot.notify import RecordingNotifier
from rollback_bot.playbook import LoadedPlaybook, load_playbook
from rollback_bot.store import Event, Incident, Store
from rollback_bot.store.models import Rollout
from tests.helpers import FakeHTTP, Recorded, loopback_session

SHIPPED = Path("playbooks/copilot-rollout.yaml")
HEALTHY = {"resolution_score": 0.80, "sla_hit_rate": 0.95, "override_rate": 0.10, "incident_miss_rate": 0.02}
WOBBLE = [0.003, -0.002, 0.001, -0.003, 0.002, -0.001, 0.0, 0.0]


@dataclass
class World:
    deps: Deps
    loaded: LoadedPlaybook
    clock: FakeClock
    http: FakeHTTP
    served: dict[str, float] = field(default_factory=lambda: {"current": 0.0, "copilot-v2": 0.0})
    candidate: dict[str, dict[str, float]] = field(default_factory=dict)  # urgency -> changed KPI values
    error_rate: float = 0.002
    reads: int = 0
    why: list[str] = field(default_factory=list)

    def document(self, version: str) -> dict[str, Any]:
        self.served[version] += 400
        wobble = WOBBLE[self.reads % len(WOBBLE)]
        self.reads += 1
        doc: dict[str, Any] = {"served": self.served[version], "p95_latency_ms": 420}
        doc["error_rate"] = self.error_rate if version == "copilot-v2" else 0.002
        for sig, healthy in HEALTHY.items():
            doc[sig] = {
                seg: (self.candidate.get(seg, {}).get(sig, healthy) if version == "copilot-v2" else healthy) + wobble
                for seg in ("high", "normal")
            }
        return doc

    def observe(self, times: int = 1, every: timedelta = timedelta(minutes=5)) -> str:
        verdict = ""
        for _ in range(times):
            self.clock.advance(every)
            decision = flow.observe(self.deps, self.loaded)
            assert decision is not None
            verdict, self.why = decision.verdict, decision.why
        return verdict

    def rollout(self) -> Rollout:
        with self.deps.store.session() as s:
            row = s.exec(select(Rollout).order_by(col(Rollout.id).desc())).first()
            assert row is not None
            return row

    def events(self, kind: str) -> list[Event]:
        with self.deps.store.session() as s:
            return list(s.exec(select(Event).where(Event.kind == kind).order_by(col(Event.id))))

    def serve(self) -> None:
        """The monitor (both versions by segment, drift, the fatal-error KPI) and the traffic webhook."""
        routes = self.http.routes
        routes["/rollout/current"] = lambda rec: (200, self.document("current"))
        routes["/rollout/copilot-v2"] = lambda rec: (200, self.document("copilot-v2"))
        routes["/drift"] = lambda rec: (200, {"candidate": {"psi": 0.04}})
        routes["/kpi"] = lambda rec: (200, {"fatal_error_rate": 0})
        routes["/v1/traffic"] = lambda rec: (200, {"ok": True})

    def traffic_calls(self) -> list[Recorded]:
        return [r for r in self.http.requests if r.path == "/v1/traffic"]


@pytest.fixture
def world(store: Store, clock: FakeClock, fake_http: FakeHTTP, tmp_path: Path) -> Iterator[World]:
    text = SHIPPED.read_text().replace("http://monitor.internal", fake_http.url)
    text = text.replace("http://deploy.internal", fake_http.url)
    path = tmp_path / "playbooks" / "copilot-rollout.yaml"
    path.parent.mkdir()
    path.write_text(text)
    (tmp_path / "templates").symlink_to(Path("templates").resolve())
    directory = StaticDirectory(groups={"S0ONCALL": {"URESP"}}, names={"U0RM": "Rita", "U0SAFE": "Sam"})
    deps = Deps(store, clock, loopback_session(), directory, RecordingNotifier(), sleep=lambda s: None)
    w = World(deps, load_playbook(path), clock, fake_http)
    w.serve()
    yield w


def test_the_seeds_scenario_holds_at_50_percent_naming_the_segment(world: World) -> None:
    w = world
    assert flow.start(w.deps, w.loaded, "URESP").message == "Only release_manager may start this rollout."
    assert flow.start(w.deps, w.loaded, "U0RM").ok
    assert [r.body["percent"] for r in w.traffic_calls()] == ["10"]
    assert w.traffic_calls()[0].headers["Idempotency-Key"] == "rollback-bot/copilot-rollout/rollout/1/10"
    rollout_id = w.rollout().id
    assert rollout_id is not None

    # 10%: too early for a go, then GO once the stage has run 30m with its sample
    assert w.observe() == "NOT ENOUGH DATA"
    assert not flow.advance(w.deps, w.loaded, rollout_id, "U0RM").ok  # the gate has not said GO
    assert w.observe(6) == "GO"
    refused = flow.advance(w.deps, w.loaded, rollout_id, "U0SAFE")
    assert refused.message == "Only release_manager may advance this rollout."
    assert [e.actor for e in w.events("rollout.denied")] == ["URESP", "U0SAFE"]
    assert flow.advance(w.deps, w.loaded, rollout_id, "U0RM").ok
    assert (w.rollout().stage, w.rollout().traffic) == (1, 25)

    # 25%: still solid -> GO, advance to 50%
    assert w.observe(7) == "GO"
    assert flow.advance(w.deps, w.loaded, rollout_id, "U0RM").ok
    assert w.rollout().traffic == 50

    # 50%: overrides shoot up for urgent tickets only -> HOLD, naming the segment; the rollout stops
    w.candidate = {"high": {"override_rate": 0.31, "incident_miss_rate": 0.06}}
    assert w.observe(13) == "HOLD"
    ro = w.rollout()
    assert (ro.status, ro.held_by, ro.traffic) == ("held", "gate", 50)
    [verdict] = [e for e in w.events("rollout.verdict") if e.details["verdict"] == "HOLD"]
    assert verdict.summary.startswith("rollout #1 of copilot-v2: HOLD at stage 3: urgency=high: override_rate 0.3")
    assert re.search(r" vs baseline 0\.(1|10\d*|09\d*) \(p=0\.0", verdict.summary), verdict.summary
    assert verdict.summary.endswith("override_rate higher than baseline by more than 0.05")
    assert any(line.startswith("urgency=high: incident_miss_rate") for line in verdict.details["worse"])
    assert not any("urgency=normal" in line for line in verdict.details["worse"])
    assert "release_manager, safety_lead: investigate" in w.events("rollout.held")[-1].summary
    no = flow.advance(w.deps, w.loaded, rollout_id, "U0RM")
    assert no.message == "rollout #1 is held by gate; it does not advance"

    # fixed and retested: released by the safety lead, the stage starts over, GO, on to 100%, complete
    w.candidate = {}
    assert flow.hold(w.deps, w.loaded, rollout_id, "U0SAFE", held=False).ok
    assert w.observe(13) == "GO"
    assert flow.advance(w.deps, w.loaded, rollout_id, "U0RM").ok
    assert w.observe(14) == "GO", w.why
    assert w.observe(13) == "GO"
    assert flow.advance(w.deps, w.loaded, rollout_id, "U0RM").message == "Rollout #1 complete."
    assert w.rollout().status == "complete"
    assert [r.body["percent"] for r in w.traffic_calls()] == ["10", "25", "50", "100"]
    with w.deps.store.session() as s:
        kinds = [e.kind for e in s.exec(select(Event).where(Event.playbook == "copilot-rollout"))]
    assert kinds.count("rollout.advanced") == 3 and kinds[-1] == "rollout.completed"
    assert flow.observe(w.deps, w.loaded) is None  # nothing under way any more

    # the record a review reads: each stage, its verdicts and why, the hold and who released it
    buf = io.StringIO()
    export_rollout(w.deps.store, rollout_id, "json", buf)
    doc = json.loads(buf.getvalue())
    assert [(s["stage"], s["percent"]) for s in doc["stages"]] == [(1, 10), (2, 25), (3, 50), (4, 100)]
    third = doc["stages"][2]
    assert [v["verdict"] for v in third["verdicts"]] == ["NOT ENOUGH DATA", "HOLD", "NOT ENOUGH DATA", "GO"]
    assert third["verdicts"][1]["why"][0].startswith("urgency=high: override_rate 0.3")
    assert third["held"] == [{"at": third["verdicts"][1]["at"], "by": "the gate"}]
    assert third["released"][0]["by"] == "U0SAFE" and third["how"] == "advanced by U0RM (release_manager)"
    assert doc["stages"][3]["how"] == "completed by U0RM (release_manager)"
    assert [r["actor"] for r in doc["refusals"]] == ["U0SAFE"]  # URESP's start was before the rollout existed
    buf = io.StringIO()
    export_rollout(w.deps.store, rollout_id, "md", buf)
    assert "| 3 | 50% | 2026-03-01 " in buf.getvalue() and "**HOLD**: urgency=high: override_rate" in buf.getvalue()


def test_a_guardrail_breach_opens_an_incident_on_the_ladder(world: World) -> None:
    w = world
    assert flow.start(w.deps, w.loaded, "U0RM").ok
    w.error_rate = 0.05
    assert w.observe(7) == "ROLLBACK"
    ro = w.rollout()
    assert ro.incident_id is not None and ro.status == "running"
    with w.deps.store.session() as s:
        incident = s.get(Incident, ro.incident_id)
        assert incident is not None and incident.trigger == "rollout-gate" and incident.status == "open"
    assert w.observe() == "ROLLBACK"  # said once, one incident
    assert len(w.events("incident.opened")) == 1 and len(w.events("rollout.verdict")) == 2
    assert not flow.roll_back(w.deps, w.loaded, ro.id or 0, "U0SAFE").ok  # not a rollback role
    done = flow.roll_back(w.deps, w.loaded, ro.id or 0, "U0IC")
    assert done.ok and w.rollout().status == "rolled_back"
    assert [r.body["percent"] for r in w.traffic_calls()] == ["10", "0"]
    text, _ = export_text(w.deps.store, ro.incident_id or 0, "json")
    record = json.loads(text)["rollout"]  # the incident's export carries the rollout that opened it
    assert record["rollout"]["status"] == "rolled_back"
    assert [v["verdict"] for v in record["stages"][0]["verdicts"]] == ["NOT ENOUGH DATA", "ROLLBACK"]
    md, _ = export_text(w.deps.store, ro.incident_id or 0, "md", with_charts=False)
    assert "## Rollout #1: copilot-v2 against current (copilot-rollout)" in md
    assert "rolled back by U0IC (incident_commander)" in md


def test_one_rollout_at_a_time(world: World) -> None:
    assert flow.start(world.deps, world.loaded, "U0RM").ok
    second = flow.start(world.deps, world.loaded, "U0RM")
    assert not second.ok and "already under way" in second.message
