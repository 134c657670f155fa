"""Benchmark clicks: p50/p99 of signed approve clicks on a real open incident, against a bare Bolt app
served the same way in the same run (same server, same Bolt mode, an empty listener), one at a time and 8
at once, for `rollback-bot serve --no-scheduler` and gunicorn, each with a `serve --scheduler-only` process
working the clicks off, on SQLite and PostgreSQL. Every click of ours must be durable before its 200 (the
inbox rows are counted against the 200s received), and every one must then be done: the audit events are
counted once the inbox is empty, and how long each click took from its 200 to done (its decision recorded and
its answer queued) is printed as "done p50/p99".

    .venv/bin/python bench/clicks.py [--clicks 200] [--rounds 3] [--postgres URL] [--no-gunicorn]

Target: p99 at 8 concurrent <= 2x the bare app's. Prints the load average; run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import itertools
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import requests
import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


from rollback_bot.store import Store  # noqa: E402

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-1234-5678-abcdefghijkl"
APPROVERS = [f"UAPP{i}" for i in range(1, 9)]
PLAYBOOK = """
name: bench
service: svc
channel: "#ops"
roles:
  approver: {{users: [{approvers}]}}
  safety_lead: {{users: [USAFE]}}
  incident_commander: {{users: [UIC]}}
  responder: {{users: [URESP]}}
signals:
  errors: {{http: "{url}/kpi", json: errors, every: 30s}}
triggers:
  fatal: {{when: errors > 0, severity: critical}}
ladder:
  - name: Revert
    window: 0h-24h
    watch: [errors == 0]
    actions:
      - id: rollback
        label: Roll back
        requires: [approver, safety_lead]
        webhook: {{url: "{url}/rollback", body: {{}}}}
"""
BARE = """
import os, re
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.authorization import AuthorizeResult

app = App(
    signing_secret=os.environ["SLACK_SIGNING_SECRET"],
    authorize=lambda enterprise_id, team_id: AuthorizeResult(enterprise_id=None, team_id=team_id, bot_token="xoxb-1"),
    token_verification_enabled=False,
    process_before_response=True,
)

@app.action(re.compile("^approve:"))
def click(ack):
    ack()

application = SlackRequestHandler(app)
"""
SERVE_BARE = """
import sys
from bare_bolt import application
from rollback_bot.slack.http import make_http_server
make_http_server(application, "127.0.0.1", int(sys.argv[1])).serve_forever()
"""
FAKES = """
import sys, time
sys.path.insert(0, sys.argv[1])
from tests.helpers import FakeHTTP
from tests.slack.fake_slack import FakeSlack
http = FakeHTTP()
http.routes["/kpi"] = lambda rec: (200, {"errors": 0.5})
slack = FakeSlack()
print(http.url, slack.api_url, flush=True)
sys.stdin.read()  # until the bench closes our stdin
"""
TRIGGER = itertools.count(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def signed_click(user: str) -> tuple[bytes, dict[str, str]]:
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user},
        "channel": {"id": "COPS"},
        "container": {"type": "message", "message_ts": "1001.000100", "channel_id": "COPS"},
        "trigger_id": f"bench.{next(TRIGGER)}.{uuid.uuid4().hex[:6]}",
        "actions": [{"action_id": "approve:rollback", "value": json.dumps({"i": 1}), "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    ts = str(int(time.time()))
    sig = "v0=" + hmac.new(SECRET.encode(), f"v0:{ts}:".encode() + body, hashlib.sha256).hexdigest()
    headers = {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": sig,
        "Content-Type": "application/x-www-form-urlencoded",
    }
    return body, headers


def run_clicks(url: str, clicks: int, concurrency: int) -> tuple[list[float], int]:
    """Latencies in ms, and how many answered 200."""
    latencies: list[float] = []
    ok = 0
    lock = threading.Lock()
    per = clicks // concurrency

    def worker(n: int) -> None:
        nonlocal ok
        session = requests.Session()
        session.trust_env = False
        mine: list[float] = []
        good = 0
        for i in range(per):
            body, headers = signed_click(APPROVERS[(n + i) % len(APPROVERS)])
            started = time.perf_counter()
            r = session.post(f"{url}/slack/events", data=body, headers=headers, timeout=30)
            mine.append((time.perf_counter() - started) * 1000)
            good += r.status_code == 200
        with lock:
            latencies.extend(mine)
            ok += good

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return latencies, ok


COUNT_CLICKS = "select count(*) from event where kind in ('approval', 'approval.duplicate', 'approval.denied')"
COUNT_TAKEN = "select count(*) from click_inbox"
COUNT_WAITING = "select count(*) from click_inbox where done_at is null"


def _count(store: Store, sql: str) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(sqlalchemy.text(sql)).scalar() or 0)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def wait_ok(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            # any answer from the server will do (the bare app has no /healthz)
            requests.post(f"{url}/slack/events", data=b"", timeout=1, proxies={"http": ""})
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


class Target:
    def __init__(self, name: str, start: Callable[[int], subprocess.Popen[bytes]], store: Store | None = None) -> None:
        self.name, self.start, self.store = name, start, store


def done_lags(store: Store, since: float) -> list[float]:
    """ms from each click's receipt to done, for the clicks received after `since` (epoch seconds)."""
    with store.session() as s:
        rows = s.exec(sqlalchemy.text("select received_at, done_at from click_inbox")).all()  # type: ignore[call-overload]
    out = []
    for received, done in rows:
        received, done = _instant(received), _instant(done)
        if received >= since:
            out.append((done - received) * 1000)
    return out


def _instant(value: Any) -> float:
    if isinstance(value, str):
        from datetime import datetime

        value = datetime.fromisoformat(value)
    return float(value.timestamp())


def measure(target: Target, clicks: int) -> dict[str, tuple[float, float]]:
    port = free_port()
    proc = target.start(port)
    url = f"http://127.0.0.1:{port}"
    store = target.store
    try:
        wait_ok(url, proc)
        run_clicks(url, 40, 4)  # warm up
        if store is not None:
            wait_done(store, target.name)
        before = (_count(store, COUNT_TAKEN), _count(store, COUNT_CLICKS)) if store is not None else (0, 0)
        out = {}
        sent = 0
        started = time.time()
        for concurrency in (1, 8):
            lat, ok = run_clicks(url, clicks, concurrency)
            sent += ok
            out[f"c{concurrency}"] = (statistics.median(lat), pct(lat, 0.99))
        if store is not None:
            taken = _count(store, COUNT_TAKEN) - before[0]  # counted at once: written before their 200s
            if taken != sent:
                raise SystemExit(f"{target.name}: {sent} clicks answered 200 but {taken} in the inbox")
            wait_done(store, target.name)
            recorded = _count(store, COUNT_CLICKS) - before[1]
            if recorded != sent:
                raise SystemExit(f"{target.name}: {sent} clicks answered 200 but {recorded} recorded")
            lags = done_lags(store, started)
            out["done"] = (statistics.median(lags), pct(lags, 0.99))
        return out
    finally:
        stop(proc)


def wait_done(store: Store, name: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _count(store, COUNT_WAITING):
        if time.monotonic() > deadline:
            raise SystemExit(f"{name}: clicks still not done after {timeout} s")
        time.sleep(0.05)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    parser.add_argument("--no-gunicorn", action="store_true")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-clicks-"))
    (work / "bare_bolt.py").write_text(BARE)
    (work / "serve_bare.py").write_text(SERVE_BARE)
    # the fake Slack and the metric endpoint in their own process: their work must not take the clients' GIL
    fakes = subprocess.Popen([sys.executable, "-c", FAKES, str(ROOT)], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert fakes.stdout is not None and fakes.stdin is not None
    http_url, slack_api_url = fakes.stdout.readline().decode().split()
    playbook = work / "bench.yaml"
    playbook.write_text(PLAYBOOK.format(url=http_url, approvers=", ".join(APPROVERS)))
    bin_dir = Path(sys.executable).parent
    gunicorn = shutil.which("gunicorn", path=str(bin_dir))
    base_env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLLBACK_", "HTTP", "http"))}
    base_env |= {
        "SLACK_BOT_TOKEN": TOKEN,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack_api_url,
        "ROLLBACK_PLAYBOOKS": str(playbook),
        "PYTHONPATH": os.pathsep.join([str(work), str(ROOT / "src")]),
    }
    quiet: dict[str, Any] = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    gun_args = ["-c", str(ROOT / "bot" / "gunicorn.conf.py"), "--access-logfile", "/dev/null"]

    def bare_serve(port: int) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, str(work / "serve_bare.py"), str(port)], env=base_env, **quiet)

    def bare_gunicorn(port: int) -> subprocess.Popen[bytes]:
        assert gunicorn
        cmd = [gunicorn, *gun_args, "--bind", f"127.0.0.1:{port}", "bare_bolt:application"]
        return subprocess.Popen(cmd, env=base_env, cwd=work, **quiet)

    databases: list[tuple[str, str]] = [("sqlite", f"sqlite:///{work}/bench.db")]
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(args.postgres)
    try:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'create schema "{schema}"'))
        databases.append(("postgres", f"{args.postgres}?options=-csearch_path%3D{schema}"))
    except Exception as exc:
        print(f"PostgreSQL skipped: {type(exc).__name__}: {str(exc).splitlines()[0]}")
    targets = [Target("bare/serve", bare_serve)]
    if gunicorn and not args.no_gunicorn:
        targets.append(Target("bare/gunicorn", bare_gunicorn))
    schedulers: list[subprocess.Popen[bytes]] = []
    for db_name, db_url in databases:
        env = {**base_env, "DATABASE_URL": db_url}
        cli = [sys.executable, "-m", "rollback_bot.cli", "serve"]
        opener = subprocess.Popen([*cli, "--scheduler-only"], env={**env, "ROLLBACK_SCHEDULER_PORT": "0"}, **quiet)
        schedulers.append(opener)
        store = Store(db_url)
        deadline = time.monotonic() + 60
        while not _count(store, "select count(*) from incident"):
            if time.monotonic() > deadline:
                raise SystemExit("the incident did not open")
            time.sleep(0.2)
        # the incident is open; the scheduler process keeps running: it works off what the web side takes

        def ours_serve(port: int, env: dict[str, str] = env, cli: list[str] = cli) -> subprocess.Popen[bytes]:
            return subprocess.Popen([*cli, "--no-scheduler"], env={**env, "ROLLBACK_PORT": str(port)}, **quiet)

        def ours_gunicorn(port: int, env: dict[str, str] = env) -> subprocess.Popen[bytes]:
            assert gunicorn
            return subprocess.Popen([gunicorn, *gun_args, "--bind", f"127.0.0.1:{port}"], env=env, cwd=work, **quiet)

        targets.append(Target(f"ours/serve/{db_name}", ours_serve, store))
        if gunicorn and not args.no_gunicorn:
            targets.append(Target(f"ours/gunicorn/{db_name}", ours_gunicorn, store))
    results: dict[str, list[dict[str, tuple[float, float]]]] = {t.name: [] for t in targets}
    for _ in range(args.rounds):
        for t in targets:
            results[t.name].append(measure(t, args.clicks))
    for proc in schedulers:
        stop(proc)
    load = os.getloadavg()
    print(f"clicks: {args.clicks} per mode, median of {args.rounds} rounds; load average {load[0]:.2f} {load[1]:.2f}")
    head = ["p50 c1", "p99 c1", "p50 c8", "p99 c8", "p99 c8 / bare", "done p50", "done p99"]
    print(f"{'target':<24} " + " ".join(f"{h:>{max(8, len(h))}}" for h in head))

    def med(name: str, mode: str, i: int) -> float:
        return statistics.median(r[mode][i] for r in results[name])

    failed = False
    for t in targets:
        server = t.name.split("/")[1]
        bare = f"bare/{server}"
        ratio = med(t.name, "c8", 1) / med(bare, "c8", 1)
        cells = [med(t.name, m, i) for m in ("c1", "c8") for i in (0, 1)]
        done = " ".join(f"{med(t.name, 'done', i):8.1f}" for i in (0, 1)) if t.store is not None else ""
        print(f"{t.name:<24} " + " ".join(f"{c:8.1f}" for c in cells) + f" {ratio:13.2f} {done}")
        failed |= t.name.startswith("ours") and ratio > 2.0
    print("ms; every click of ours was in the inbox before its 200, and then done (its audit event recorded)")
    fakes.stdin.close()
    fakes.wait(timeout=10)
    if len(databases) > 1:
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'drop schema "{schema}" cascade'))
    shutil.rmtree(work, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
