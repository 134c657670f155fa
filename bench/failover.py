"""Benchmark failover: three `rollback-bot serve --scheduler-only` processes on one PostgreSQL, polling a metric
endpoint; the leader is killed (kill -9) `--kills` times (a new process replaces it each time, so three run).
Prints, from the endpoint's own log of reads: the time from each kill to the first read by the new leader, and
the longest gap between reads over the run, each against the poll interval (the reference, measured in the same
run as the median gap between reads while nobody is killed) and against the target; exits 1 over target.

    .venv/bin/python bench/failover.py [--kills 10] [--lease 10] [--every 2] [--postgres URL]

Target: failover under lease + one poll interval; the longest gap in readings under 2x that.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from itertools import pairwise
from pathlib import Path

import requests
import sqlalchemy

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import FakeHTTP  # noqa: E402

PLAYBOOK = """
name: failover
service: svc
channel: "#ops"
roles: {{incident_commander: {{users: [UIC]}}, responder: {{users: [URESP]}}}}
signals:
  errors: {{http: "{url}/kpi", json: errors, every: {every}s, timeout: 500ms}}
triggers:
  fatal: {{when: errors > 0, severity: critical}}
ladder:
  - {{name: Flag, window: 0h-24h}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def role(port: int) -> str | None:
    try:
        doc = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=1, proxies={"http": ""}).json()
        return str(doc.get("role"))
    except (requests.RequestException, ValueError):
        return None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--lease", type=float, default=10.0, help="SCHEDULER_LEASE in seconds (default 10)")
    parser.add_argument("--every", type=float, default=2.0, help="the signal's poll interval in seconds")
    parser.add_argument(
        "--postgres", default=os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    )
    args = parser.parse_args()
    reads: list[float] = []
    http = FakeHTTP()

    def kpi(rec: object) -> tuple[int, dict[str, float]]:
        reads.append(time.monotonic())
        return 200, {"errors": 0.0}

    http.routes["/kpi"] = kpi
    work = Path(tempfile.mkdtemp(prefix="bench-failover-"))
    (work / "p.yaml").write_text(PLAYBOOK.format(url=http.url, every=f"{args.every:g}"))
    schema = f"bench_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(args.postgres)
    with admin.begin() as conn:
        conn.execute(sqlalchemy.text(f'create schema "{schema}"'))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLLBACK_", "HTTP", "http"))}
    env |= {
        "SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdefghijkl",
        "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
        "SLACK_API_URL": "http://127.0.0.1:9/api/",  # nothing answers: Slack is not what is measured
        "ROLLBACK_PLAYBOOKS": str(work / "p.yaml"),
        "DATABASE_URL": f"{args.postgres}?options=-csearch_path%3D{schema}",
        "SCHEDULER_LEASE": f"{args.lease:g}s",
        "PYTHONPATH": str(ROOT / "src"),
    }
    procs: dict[int, subprocess.Popen[bytes]] = {}
    log = (work / "schedulers.log").open("ab")

    def spawn() -> None:
        port = free_port()
        cmd = [sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"]
        procs[port] = subprocess.Popen(
            cmd,
            env={**env, "ROLLBACK_SCHEDULER_PORT": str(port)},
            stdout=subprocess.DEVNULL,
            stderr=log,
        )

    def leader(timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = [p for p in procs if role(p) == "leader"]
            if len(found) == 1 and all(role(p) for p in procs):
                return found[0]
            time.sleep(0.1)
        raise SystemExit(f"no single leader among the scheduler processes; see {work / 'schedulers.log'}")

    failovers: list[float] = []
    try:
        for _ in range(3):
            spawn()
        leader()
        time.sleep(3 * args.every)
        steady = list(reads)
        started = steady[0] if steady else time.monotonic()
        for _ in range(args.kills):
            port = leader()
            procs[port].send_signal(signal.SIGKILL)
            procs.pop(port).wait()
            killed = time.monotonic()
            spawn()
            deadline = killed + 4 * (args.lease + args.every)
            while not (reads and reads[-1] > killed):
                if time.monotonic() > deadline:
                    raise SystemExit("no read after the kill: nobody took over")
                time.sleep(0.02)
            failovers.append(next(r for r in reads if r > killed) - killed)
            time.sleep(2 * args.every)  # a few polls by the new leader before the next kill
    finally:
        for proc in procs.values():
            proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        with admin.begin() as conn:
            conn.execute(sqlalchemy.text(f'drop schema "{schema}" cascade'))
        http.close()
    gaps = [b - a for a, b in pairwise(reads) if a >= started]
    interval = statistics.median(b - a for a, b in pairwise(steady)) if len(steady) > 1 else 0
    target = args.lease + args.every
    load = os.getloadavg()
    print(
        f"failover: {args.kills} kills of the leader among 3 scheduler processes on PostgreSQL; lease {args.lease:g} s,"
    )
    print(f"poll every {args.every:g} s; load average {load[0]:.2f} {load[1]:.2f}")
    print(f"reference: median gap between reads with nobody killed: {interval:.2f} s")
    print(
        f"kill -> first read by the new leader: median {statistics.median(failovers):.2f} s, "
        f"max {max(failovers):.2f} s (target < lease + interval = {target:g} s; "
        f"max/target {max(failovers) / target:.2f})"
    )
    print(
        f"longest gap between reads: {max(gaps):.2f} s = {max(gaps) / interval:.1f}x the interval "
        f"(target < {2 * target:g} s; gap/target {max(gaps) / (2 * target):.2f})"
    )
    print("each failover, s: " + ", ".join(f"{f:.2f}" for f in failovers))
    return 0 if max(failovers) < target and max(gaps) < 2 * target else 1


if __name__ == "__main__":
    sys.exit(main())
