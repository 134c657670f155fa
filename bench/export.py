"""Benchmark exports: an incident with 100,000 events (and a day of readings for its charts), exported in
each format in a fresh process. Prints wall time (median of three runs), the process's peak RSS (imports
included), and the export's own peak allocations (tracemalloc, measured after, in a separate run); exits 1
over target. Target: every format under 2 s and under 200 MB.

    .venv/bin/python bench/export.py [--events 100000] [--database URL]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa

from rollback_bot.export import export_incident
from rollback_bot.store import Event, Incident, ReadingRow, Store
from rollback_bot.store.chain import GENESIS, event_hash
from rollback_bot.store.models import ChainHead

ROOT = Path(__file__).resolve().parents[1]
PLAYBOOK = ROOT / "playbooks" / "genai-release.yaml"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
KINDS = ["note", "approval", "approval.denied", "action.succeeded", "reminder", "signal.restored"]


def seed(url: str, n: int) -> None:
    store = Store(url)
    text = PLAYBOOK.read_text()
    with store.session() as s:
        s.add(
            Incident(
                id=1,
                playbook="genai-release",
                playbook_version="bench",
                playbook_path=str(PLAYBOOK),
                playbook_text=text,
                service="support-copilot",
                channel="#ml-release-ops",
                severity="critical",
                trigger="fatal-errors",
                summary="fatal-errors: fatal_error_rate > 0",
                evidence={"since": T0.isoformat(), "evidence": [{"signal": "fatal_error_rate", "value": 0.02}]},
                opened_at=T0,
                status="resolved",
                resolved_at=T0 + timedelta(hours=24),
                resolved_by="U0IC",
            )
        )
        s.commit()
    rows, prev = [], GENESIS
    for i in range(1, n + 1):
        kind = "signal.fired" if i == 1 else KINDS[i % len(KINDS)]
        at = T0 + timedelta(seconds=i * 86400 / n)
        actor = f"U{i % 7}" if kind != "signal.restored" else None
        details: dict[str, object] = {
            "name": f"Person {i % 7}",
            "text": f"event {i}: rolled back slice {i % 100}%",
            "values": {"fatal_error_rate": {"value": 0.0}, "p95_latency_ms": {"value": 310.5 + i % 9}},
        }
        if kind == "signal.fired":  # what opened the incident: its chart is part of every export with charts
            details = {
                "trigger": "fatal-errors",
                "severity": "critical",
                "rule": "fatal_error_rate > 0",
                "evidence": [{"signal": "fatal_error_rate", "value": 0.02, "rule": "fatal_error_rate > 0"}],
            }
        summary = f"{kind} number {i} by {actor or 'the bot'}"
        h = event_hash(
            chain="incident:1",
            seq=i,
            prev_hash=prev,
            incident_id=1,
            playbook="genai-release",
            at=at,
            kind=kind,
            actor=actor,
            role="approver" if actor else None,
            summary=summary,
            details=details,
        )
        rows.append(
            {
                "incident_id": 1,
                "playbook": "genai-release",
                "at": at,
                "kind": kind,
                "actor": actor,
                "role": "approver" if actor else None,
                "summary": summary,
                "details": details,
                "chain": "incident:1",
                "seq": i,
                "prev_hash": prev,
                "hash": h,
            }
        )
        prev = h
    readings = [
        {
            "playbook": "genai-release",
            "signal": sig,
            "at": T0 + timedelta(seconds=30 * k),
            "value": (0.02 if k < 600 else 0.0) if sig == "fatal_error_rate" else 300.0 + k % 50,
            "status": "ok",
            "detail": "",
        }
        for sig in ("fatal_error_rate", "error_rate")
        for k in range(2880)
    ]
    with store.engine.begin() as conn:
        for k in range(0, len(rows), 10000):
            conn.execute(sa.insert(Event), rows[k : k + 10000])
        conn.execute(sa.insert(ReadingRow), readings)
        conn.execute(sa.insert(ChainHead).values(chain="incident:1", seq=n, hash=prev))
        # the KPI gate and the error jump also fired, so the charts have several signals to draw
        conn.execute(
            sa.insert(Event).values(
                incident_id=None,
                playbook="genai-release",
                at=T0,
                kind="note",
                summary="x",
                details={},
                chain="playbook:genai-release",
                seq=1,
                prev_hash=GENESIS,
                hash="-",
            )
        )
    store.close()


def peak_rss_mb() -> float:
    """This process's peak RSS. Not ru_maxrss: Linux carries that over fork+exec from the parent (which
    seeded 100,000 rows); VmHWM belongs to this address space."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def one(url: str, fmt: str, out: str) -> None:
    """Child process: time the export to a file (median of three), then measure its allocations."""
    store = Store(url)
    target = Path(out) / f"incident-1.{fmt}"
    times = []
    for _ in range(3):  # the median of three: a shared VM is noisy
        started = time.perf_counter()
        with target.open("w", encoding="utf-8", newline="") as fp:
            files = export_incident(store, 1, fmt, fp, out=target)
        times.append(time.perf_counter() - started)
    seconds = sorted(times)[1]
    rss = peak_rss_mb()  # before tracemalloc adds its own bookkeeping
    tracemalloc.start()
    with open(os.devnull, "w", encoding="utf-8") as sink:
        export_incident(store, 1, fmt, sink, out=target)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(
        json.dumps(
            {
                "format": fmt,
                "seconds": seconds,
                "alloc_mb": peak / 1e6,
                "rss_mb": rss,
                "bytes": target.stat().st_size,
                "charts": len(files),
            }
        )
    )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--database")
    parser.add_argument("--one", nargs=3, metavar=("URL", "FORMAT", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        one(*args.one)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database or f"sqlite:///{tmp}/bench.db"
        started = time.perf_counter()
        seed(url, args.events)
        print(
            f"seeded {args.events:,} events and 5,760 readings in {time.perf_counter() - started:.1f} s "
            f"({url.split(':')[0]})"
        )
        missed = []
        for fmt in ("json", "csv", "md", "html"):
            out = subprocess.run([sys.executable, __file__, "--one", url, fmt, tmp], capture_output=True, text=True)
            if out.returncode != 0:
                print(out.stderr)
                return 1
            r = json.loads(out.stdout.strip().splitlines()[-1])
            ok = r["seconds"] < 2 and r["rss_mb"] < 200
            print(
                f"{fmt:>4}: {r['seconds']:.2f} s, export allocations peak {r['alloc_mb']:.0f} MB, process peak RSS "
                f"{r['rss_mb']:.0f} MB, {r['bytes'] / 1e6:.1f} MB written, {r['charts']} chart file(s)"
                f"  {'ok' if ok else 'OVER TARGET'}"
            )
            if not ok:
                missed.append(fmt)
    print("all formats under 2 s and 200 MB" if not missed else f"over target: {', '.join(missed)}")
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
