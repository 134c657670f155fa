from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.clock import FakeClock
from rollback_bot.directory import StaticDirectory
from rollback_bot.flows import Deps
from rollback_bot.notify import RecordingNotifier
from rollback_bot.playbook import LoadedPlaybook, load_playbook
from rollback_bot.store import Event, Incident, Store
from rollback_bot.store.audit import timeline
from tests.helpers import FakeHTTP, Recorded, loopback_session

TEMPLATES = Path("templates").resolve()
PLAYBOOK = """\
name: test-release
service: svc
channel: "#ops"
templates: {templates}
acknowledge: {{requires: [incident_commander, responder], within: 15m, escalate: [approver, safety_lead]}}
reminders: {{before_step_end: 15m, escalate: [safety_lead]}}
roles:
  incident_commander: {{users: [UIC]}}
  approver: {{groups: [SAPPROVERS]}}
  safety_lead: {{users: [USAFE]}}
  responder: {{groups: [SONCALL]}}
signals:
  errors: {{http: "{url}/kpi", json: errors, every: 30s, lost_after: 2}}
  latency: {{http: "{url}/kpi", json: latency, every: 30s}}
  ack_time: {{builtin: ack_minutes, every: 30s}}
triggers:
  fatal: {{when: errors > 0, severity: critical}}
  slow: {{when: latency > 800, for: 2m, severity: minor}}
ladder:
  - name: Flag
    window: 0h-1h
    watch: [errors == 0, ack_time < 15]
    actions:
      - id: lock
        label: Lock
        requires: [incident_commander]
        webhook: {{url: "{url}/lock", body: {{svc: "{{{{ service }}}}"}}}}
    comms: [internal-alert]
  - name: Revert
    window: 1h-2h
    watch: [errors == 0]
    actions:
      - id: rollback
        label: Roll back
        requires: [approver, safety_lead]
        stages: [10, 100]
        stage_every: 10m
        webhook: {{url: "{url}/rollback", body: {{percent: "{{{{ stage }}}}"}}, retries: 2, timeout: 2s}}
    comms: [status-update]
  - name: Watch
    window: 2h-3h
    watch: [errors == 0]
"""


@dataclass
class Env:
    deps: Deps
    loaded: LoadedPlaybook
    clock: FakeClock
    http: FakeHTTP
    notifier: RecordingNotifier
    path: Path
    metrics: dict[str, Any] = field(default_factory=lambda: {"errors": 0.0, "latency": 300.0})
    restarted: list[Store] = field(default_factory=list)  # the stores restart() opened: closed at teardown

    def poll(self) -> None:
        from rollback_bot import flows

        flows.poll(self.deps, self.loaded, list(self.loaded.playbook.signals))

    def fake_http_reads(self) -> int:
        return sum(1 for r in self.http.requests if r.path == "/kpi")

    def incidents(self) -> list[Incident]:
        from sqlmodel import col, select

        with self.deps.store.session() as s:
            return list(s.exec(select(Incident).order_by(col(Incident.id))))

    def events(self, incident_id: int = 1) -> list[Event]:
        with self.deps.store.session() as s:
            return timeline(s, incident_id)

    def last(self, kind: str, incident_id: int = 1) -> Event:
        return [e for e in self.events(incident_id) if e.kind == kind][-1]

    def kinds(self, incident_id: int = 1) -> list[str]:
        return [e.kind for e in self.events(incident_id)]

    def restart(self) -> Env:
        """A new process: a new engine on the same database, new notifier, nothing in memory."""
        store = Store(self.deps.store.url)
        self.restarted.append(store)
        notifier = RecordingNotifier()
        deps = Deps(store, self.clock, loopback_session(), self.deps.directory, notifier, sleep=lambda s: None)
        loaded = load_playbook(self.path)
        return Env(deps, loaded, self.clock, self.http, notifier, self.path, self.metrics, self.restarted)


def answer_ok(rec: Recorded) -> tuple[int, Any]:
    return 200, {"ok": True}


@pytest.fixture
def env(store: Store, clock: FakeClock, fake_http: FakeHTTP, tmp_path: Path) -> Iterator[Env]:
    path = tmp_path / "test-release.yaml"
    path.write_text(PLAYBOOK.format(url=fake_http.url, templates=TEMPLATES))
    loaded = load_playbook(path)
    directory = StaticDirectory(
        groups={"SAPPROVERS": {"UAPP1", "UAPP2"}, "SONCALL": {"URESP"}},
        names={"UIC": "Ines", "UAPP1": "Ada", "UAPP2": "Ben", "USAFE": "Sam", "URESP": "Rui", "UX": "Xavier"},
    )
    notifier = RecordingNotifier()
    deps = Deps(store, clock, loopback_session(), directory, notifier, sleep=lambda s: None)
    e = Env(deps, loaded, clock, fake_http, notifier, path)
    fake_http.routes["/kpi"] = lambda rec: (200, e.metrics)
    fake_http.routes["/lock"] = answer_ok
    fake_http.routes["/rollback"] = answer_ok
    yield e
    for opened in e.restarted:
        opened.close()
