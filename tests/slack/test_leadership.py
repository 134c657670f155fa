"""Several `serve --scheduler-only` processes on one database: exactly one polls and acts; the others stand by,
say so on their own /healthz, and take over when the leader is killed (kill -9) or frozen (SIGSTOP); a frozen
leader that wakes up (SIGCONT) acts no more. Counted: the metric endpoint's reads, the incidents and the
alerts posted."""

from __future__ import annotations

import contextlib
import itertools
import json
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import make_url
from sqlmodel import select

from rollback_bot.drill.sandbox import ModelState, Sandbox
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store import Event, Incident, Store
from rollback_bot.store.audit import UNPOSTED
from rollback_bot.store.models import ActionRun
from tests.helpers import loopback_session
from tests.slack.conftest import ROOT, free_port, start, wait_until
from tests.slack.test_production import _ok, client

pytestmark = pytest.mark.slow  # several scheduler processes, killed and frozen

EVERY = 2.0  # s between polls (the playbook's `every`)
LEASE = 2.0  # s (SCHEDULER_LEASE in the deployment's environment)


def _health(port: int) -> dict[str, Any]:
    try:
        answer = loopback_session().get(f"http://127.0.0.1:{port}/healthz", timeout=2)
        doc: dict[str, Any] = answer.json()
        return doc
    except Exception:
        return {}


def _leaders(ports: dict[int, subprocess.Popen[str]]) -> list[int]:
    return [port for port in ports if _health(port).get("role") == "leader"]


def _reads(http: Any) -> list[float]:
    return [at for at, r in zip(http.times, http.requests, strict=False) if r.path == "/kpi"]


def _rate(reads: list[float], since: float, until: float) -> float:
    """Reads per second between the first and the last read of the window (edges do not count)."""
    inside = [at for at in reads if since <= at <= until]
    assert len(inside) >= 3, inside
    return (len(inside) - 1) / (inside[-1] - inside[0])


@pytest.fixture
def faster(deployment: dict[str, Any]) -> dict[str, Any]:
    """The deployment's playbook polling every 2 s; a clock of when the metric endpoint was read."""
    env = deployment["env"]
    path = Path(env["ROLLBACK_PLAYBOOKS"])
    path.write_text(path.read_text().replace("every: 30s", f"every: {EVERY:g}s, timeout: 1s"))
    http = deployment["http"]
    http.times = []
    route = http.routes["/kpi"]

    def timed(rec: Any) -> Any:
        http.times.append(time.monotonic())
        return route(rec)

    http.routes["/kpi"] = timed
    return deployment


def test_one_of_three_schedulers_acts_and_another_takes_over(faster: dict[str, Any], store: Store) -> None:
    if not store.url.startswith("postgresql"):
        pytest.skip("several machines share PostgreSQL; on SQLite the same code runs on one machine (test_leader.py)")
    env, procs, http, slack = faster["env"], faster["procs"], faster["http"], faster["slack"]
    ports: dict[int, subprocess.Popen[str]] = {}

    def scheduler() -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"]
        ports[port] = start(cmd, {**env, "ROLLBACK_SCHEDULER_PORT": str(port)}, procs)

    # the reference: one scheduler alone
    scheduler()
    [first] = wait_until(lambda: _leaders(ports) or None, 60, "a leader", procs)
    wait_until(lambda: slack.parents(), 30, "the alert", procs)
    began = time.monotonic()
    time.sleep(6 * EVERY)
    alone = _rate(_reads(http), began, time.monotonic())

    # two more: one process still polls, at one scheduler's rate (within 10%), not three times it
    scheduler()
    scheduler()
    wait_until(lambda: all(_health(p).get("role") for p in ports), 60, "three scheduler processes", procs)
    assert sorted(_health(p)["role"] for p in ports) == ["leader", "standby", "standby"]
    assert all(_health(p)["leader"] == _health(first)["me"] for p in ports)
    began = time.monotonic()
    time.sleep(6 * EVERY)
    three = _rate(_reads(http), began, time.monotonic())
    assert abs(three / alone - 1) <= 0.10, (alone, three)

    # kill -9 the leader: another takes over within the lease and one poll
    ports[first].send_signal(signal.SIGKILL)
    ports[first].wait()
    killed = time.monotonic()
    procs.remove(ports.pop(first))
    [second] = wait_until(lambda: _leaders(ports) or None, 15, "a new leader", procs)
    wait_until(lambda: _reads(http)[-1] > killed, 15, "a poll by the new leader", procs)
    took = _reads(http)[-1] - killed
    assert took < LEASE + EVERY + 2.0, took

    # freeze the new leader: the last one takes over; thawed, the frozen one stands by and acts no more
    ports[second].send_signal(signal.SIGSTOP)
    try:
        [third] = wait_until(lambda: [p for p in _leaders(ports) if p != second] or None, 15, "a third leader", procs)
    finally:
        ports[second].send_signal(signal.SIGCONT)
    wait_until(lambda: _health(second).get("role") == "standby", 15, "the thawed one standing by", procs)
    began = time.monotonic()
    time.sleep(6 * EVERY)
    thawed = _rate(_reads(http), began, time.monotonic())
    assert abs(thawed / alone - 1) <= 0.10, (alone, thawed)  # the thawed one does not poll as well
    assert _leaders(ports) == [third]

    # nothing doubled across the takeovers: one incident, opened once, one alert
    check = Store(store.url)
    try:
        with check.session() as s:
            assert len(s.exec(select(Incident)).all()) == 1
            opened = s.exec(select(Event).where(Event.kind == "incident.opened")).all()
            assert len(opened) == 1
    finally:
        check.close()
    assert len(slack.parents()) == 1


class _Proxy:
    """A TCP proxy to PostgreSQL the test controls: `cut` holds every byte in both directions (a network that
    silently drops packets, the worst kind: nothing fails, everything waits) until `cut` is cleared."""

    def __init__(self, port: int) -> None:
        self.upstream = port
        self.cut = threading.Event()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(("127.0.0.1", self.upstream))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                while self.cut.is_set():
                    time.sleep(0.05)
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def test_a_leader_cut_off_from_the_database_is_replaced_and_then_stands_by(
    faster: dict[str, Any], store: Store
) -> None:
    if not store.url.startswith("postgresql"):
        pytest.skip("the network between machines and PostgreSQL; SQLite has none")
    env, procs, http, slack = faster["env"], faster["procs"], faster["http"], faster["slack"]
    url = make_url(store.url)
    proxy = _Proxy(url.port or 5432)
    cmd = [sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"]
    try:
        cut_port, other_port = free_port(), free_port()
        behind = url.set(port=proxy.port).render_as_string(hide_password=False)
        cut_off = start(cmd, {**env, "DATABASE_URL": behind, "ROLLBACK_SCHEDULER_PORT": str(cut_port)}, procs)
        wait_until(lambda: _health(cut_port).get("role") == "leader", 60, "the first leader", procs)
        start(cmd, {**env, "ROLLBACK_SCHEDULER_PORT": str(other_port)}, procs)
        wait_until(lambda: _health(other_port).get("role") == "standby", 60, "a standby", procs)
        wait_until(lambda: slack.parents(), 30, "the alert", procs)

        proxy.cut.set()  # its database goes silent: it must stop acting, the standby takes over
        cut_at = time.monotonic()
        wait_until(lambda: _health(other_port).get("role") == "leader", 15, "the standby taking over", procs)
        wait_until(lambda: _reads(http)[-1] > cut_at + LEASE, 15, "a poll by the new leader", procs)
        time.sleep(1)
        began = len(_reads(http))
        time.sleep(5 * EVERY)
        assert len(_reads(http)) - began <= 6  # one poller: the cut-off one does not poll blind

        proxy.cut.clear()  # back: its renewal finds another leader; it stands by
        wait_until(lambda: _health(cut_port).get("role") == "standby", 30, "the cut-off one standing by", procs)
        assert _health(other_port).get("role") == "leader"
        assert cut_off.poll() is None  # it lived through it
    finally:
        proxy.cut.clear()
        proxy.close()
    check = Store(store.url)
    try:
        with check.session() as s:
            assert len(s.exec(select(Incident)).all()) == 1
            assert len(s.exec(select(Event).where(Event.kind == "incident.opened")).all()) == 1
    finally:
        check.close()
    assert len(slack.parents()) == 1


CHAOS = """
name: chaos
service: svc
channel: "#ops"
roles:
  incident_commander: {{users: [UIC]}}
  responder: {{users: [URESP]}}
signals:
  errors: {{http: "{url}/kpi", json: fatal_error_rate, every: 1s, timeout: 500ms}}
triggers:
  fatal: {{when: errors > 0, severity: critical}}
ladder:
  - name: Revert
    window: 0s-25s
    actions:
      - id: revert
        label: Revert traffic
        requires: [incident_commander, responder]
        stages: [10, 50, 100]
        stage_every: 4s
        webhook: {{url: "{url}/revert", body: {{percent: "{{{{ stage }}}}"}}}}
  - {{name: Verify, window: 25s-40s}}
  - {{name: Monitor, window: 40s-55s}}
"""


class _CountedModel(ModelState):
    """The drill's sandboxed model, with the time of every read of its metrics."""

    def __init__(self) -> None:
        super().__init__(lambda: datetime.now(UTC))
        self.reads: list[float] = []

    def metrics(self) -> dict[str, Any]:
        self.reads.append(time.monotonic())
        return super().metrics()


@pytest.fixture
def model() -> Iterator[tuple[Sandbox, _CountedModel]]:
    """The drill's sandbox serving CHAOS's signal and taking its action, with a fault injected."""
    state = _CountedModel()
    sandbox = Sandbox(parse_playbook(CHAOS.format(url="http://127.0.0.1:9")).playbook, state)
    sandbox.start()
    state.reads.clear()  # the sandbox looked at the model when it was made: not a read by the bot
    state.fault_at = datetime.now(UTC)
    yield sandbox, state
    sandbox.stop()


def test_ten_kills_of_the_leader_during_an_incident_double_nothing(
    faster: dict[str, Any], store: Store, model: tuple[Sandbox, _CountedModel]
) -> None:
    """Three scheduler processes and two web workers through a real incident on the drill's sandboxed model (a
    fault, two approvals by click, a staged action reverting its traffic, three ladder steps), the leader killed
    ten times: the model read at one scheduler's rate while led, every step entered once, every stage sent under
    one key, every event posted to Slack once and soon after the last takeover."""
    if not store.url.startswith("postgresql"):
        pytest.skip("several machines share PostgreSQL; on SQLite the same code runs on one machine (test_leader.py)")
    env, procs, slack = faster["env"], faster["procs"], faster["slack"]
    sandbox, state = model
    path = Path(env["ROLLBACK_PLAYBOOKS"])
    path.write_text(CHAOS.format(url=sandbox.url))

    def sent() -> list[tuple[str, str]]:  # (percent, Idempotency-Key) of each call of the action's webhook
        return [(str(body["percent"]), key) for _, key, body in list(sandbox.requests)]

    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn
    web_port = free_port()
    cmd = [gunicorn, "-c", str(ROOT / "bot" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{web_port}", "--workers", "2"]
    start(cmd, env, procs)
    ports: dict[int, subprocess.Popen[str]] = {}

    def scheduler() -> None:
        port = free_port()
        serve = [sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"]
        ports[port] = start(serve, {**env, "ROLLBACK_SCHEDULER_PORT": str(port)}, procs)

    for _ in range(3):
        scheduler()
    wait_until(lambda: slack.parents(), 60, "the alert", procs)
    web = client(f"http://127.0.0.1:{web_port}", slack)
    wait_until(lambda: _ok(loopback_session(), f"http://127.0.0.1:{web_port}/healthz"), 30, "gunicorn", procs)
    assert web.click("approve:revert", "UIC").status_code == 200
    assert web.click("approve:revert", "URESP").status_code == 200
    kills: list[float] = []
    for _ in range(10):  # a kill every 4 s: across the stages and the steps
        time.sleep(2.0)
        [leader] = wait_until(lambda: _leaders(ports) or None, 20, "a leader", procs)
        ports[leader].send_signal(signal.SIGKILL)
        ports[leader].wait()
        kills.append(time.monotonic())
        procs.remove(ports.pop(leader))
        scheduler()
    last_kill = kills[-1]
    try:
        wait_until(lambda: {p for p, _ in sent()} == {"10", "50", "100"}, 60, "every stage", procs)
    except AssertionError:
        check = Store(store.url)
        with check.session() as s:
            runs = [(r.stage, r.status, r.started_at, r.finished_at) for r in s.exec(select(ActionRun))]
            kinds = [(e.kind, e.at, e.summary) for e in s.exec(select(Event))]
        check.close()
        raise AssertionError(f"sent {sent()}; runs {runs}; events {kinds}") from None

    def entered() -> list[str]:
        check = Store(store.url)
        try:
            with check.session() as s:
                return [e.summary for e in s.exec(select(Event).where(Event.kind == "step.entered"))]
        finally:
            check.close()

    wait_until(lambda: len(entered()) >= 3, 60, "the third step", procs)
    time.sleep(3)  # anything doubled would show by now
    steps = entered()
    assert len(steps) == 3 and len(set(steps)) == 3, steps  # each entered once, none skipped
    keys: dict[str, set[str]] = {}
    for percent, key in sent():
        keys.setdefault(percent, set()).add(key)
    assert all(len(k) == 1 for k in keys.values()), keys  # a resend carries the same key
    assert len(set(keys["10"]) | set(keys["50"]) | set(keys["100"])) == 3
    assert len(slack.parents()) == 1

    def posted() -> list[int]:
        marks = [c.params.get("metadata") for c in slack.thread()]
        return [(json.loads(m) if isinstance(m, str) else m)["event_payload"]["event_id"] for m in marks if m]

    def missing() -> set[int]:
        check = Store(store.url)
        try:
            with check.session() as s:
                events = s.exec(select(Event).where(Event.incident_id == 1))
                ids = {e.id for e in events if e.kind not in UNPOSTED and e.kind != "incident.opened"}  # the parent
        finally:
            check.close()
        return {i for i in ids if i is not None} - set(posted())

    # a leader killed mid-post left the incident's Slack lease behind: the next leader took it over at once
    try:
        wait_until(
            lambda: not missing(), max(5.0, last_kill + 20 - time.monotonic()), "every event in the thread", procs
        )
    except AssertionError:
        check = Store(store.url)
        with check.session() as s:
            left = [(e.id, e.kind, e.at) for e in s.exec(select(Event)) if e.id in missing()]
        check.close()
        raise AssertionError(f"missing {left}; posted {posted()}") from None
    assert len(posted()) >= 12  # the steps, the approvals, the stages...
    assert len(posted()) == len(set(posted())), "an event posted twice"

    # the model was read at the playbook's rate whenever a leader led (between one's first read after a
    # takeover and the next kill), within 10%, and by one process at a time: never two reads close together
    reads = list(state.reads)
    gaps = [b - a for a, b in itertools.pairwise(reads)]
    assert min(gaps) > 0.5, sorted(gaps)[:5]
    spans = [(a, b) for a, b in zip([reads[0], *kills], [*kills, reads[-1]], strict=False)]
    counted = [[at for at in reads if a < at < b] for a, b in spans]
    rate = sum(len(r) - 1 for r in counted if len(r) > 1) / sum(r[-1] - r[0] for r in counted if len(r) > 1)
    assert abs(rate - 1.0) <= 0.10, rate  # `every: 1s`: one read a second
    assert state.faulty_share == 0.0  # the action's last stage reverted all traffic: the model recovered
