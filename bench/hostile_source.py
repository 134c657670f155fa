"""Benchmark the metric reader against hostile answers: a 300 MB answer, an answer trickled one byte
every 0.4 s and a gzip bomb, read beside a healthy one through `Reader`, in a fresh process. Prints the process's peak
RSS (imports included) against a reference run that reads only the healthy answer, the wall time of
read_all against the deadline, and how much of the 300 MB the server got to send; exits 1 over target.
Target: peak RSS under 250 MB, read_all within the deadline + 0.5 s.

    .venv/bin/python bench/hostile_source.py [--deadline 2]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests

from rollback_bot.metrics import JsonSource, Reader
from rollback_bot.metrics.reader import MARGIN

ROOT = Path(__file__).resolve().parents[1]
RSS_TARGET_MB = 250


def child(url: str, routes: list[str], deadline: float) -> None:
    """Read the routes once through a Reader and print the figures as JSON (runs in a fresh process)."""
    session = requests.Session()
    session.trust_env = False
    reader = Reader(session)
    sources = [JsonSource(route.strip("/"), f"{url}{route}", "value", deadline) for route in routes]
    started = time.monotonic()
    readings = reader.read_all(sources, lambda: datetime.now(UTC))
    took = time.monotonic() - started
    reader.close()
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = {"seconds": took, "rss_mb": rss_mb, "readings": [(r.signal, r.status, r.value, r.detail) for r in readings]}
    print(json.dumps(out))


def run(url: str, routes: list[str], deadline: float) -> dict[str, Any]:
    """The figures of one fresh process reading `routes`."""
    cmd = [sys.executable, __file__, "--child", url, "--deadline", str(deadline), *routes]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, timeout=60)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadline", type=float, default=2.0)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("routes", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.routes, args.deadline)
        return 0
    sys.path.insert(0, str(ROOT))
    from tests.metrics.hostile import MB, HostileServer

    server = HostileServer(hold=10.0)
    try:
        reference = run(server.url, ["/ok"], args.deadline)
        hostile = run(server.url, ["/ok", "/huge", "/trickle", "/gzip-bomb"], args.deadline)
        server.wait_finished("/huge")
        sent_mb = server.sent["/huge"] / MB
    finally:
        server.close()
    print(f"reference (healthy answer only): peak RSS {reference['rss_mb']:.0f} MB, {reference['seconds']:.2f} s")
    what = "healthy + 300 MB + trickle + 256 MiB gzip bomb"
    print(f"hostile ({what}): peak RSS {hostile['rss_mb']:.0f} MB (target < {RSS_TARGET_MB} MB)")
    print(
        f"read_all took {hostile['seconds']:.2f} s (deadline {args.deadline:g} s, limit {args.deadline + MARGIN:g} s)"
    )
    print(f"the 300 MB server sent {sent_mb:.1f} MB before the reader hung up")
    for signal, status, value, detail in hostile["readings"]:
        print(f"  {signal:10} {status:6} {value!s:5} {detail}")
    ok = hostile["rss_mb"] < RSS_TARGET_MB and hostile["seconds"] <= args.deadline + MARGIN
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
