"""What a drill shows while it runs: each event as it happens; each step with its watch table and comms."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from rollback_bot.directory import StaticDirectory
from rollback_bot.store.models import Event, Incident

_QUIET = {"signal.cleared"}
_ROLLOUT_PREFIX = re.compile(r"^rollout #\d+ of [^:]+: ")
_MARK = {"ok": "ok", "breached": "BREACHED", "nodata": "no data"}


class ConsoleNotifier:
    def __init__(self, out: Callable[[str], None], start: datetime, directory: StaticDirectory) -> None:
        self.out, self.start, self.directory = out, start, directory
        self._lock = threading.Lock()

    def stamp(self, at: datetime) -> str:
        return "T+" + hhmm(at - self.start)

    def publish(self, incident: Incident | None, event: Event) -> None:
        with self._lock:
            if event.kind == "step.entered":
                self._step(event)
            elif event.kind.startswith("rollout."):
                self._rollout(event)
            elif event.kind not in _QUIET:
                self.out(f"  {self.stamp(event.at)}  {_label(event.kind):<10} {event.summary}")

    def _rollout(self, ev: Event) -> None:
        """Without the 'rollout #1 of copilot-v2: ' every line would start with; a verdict's other reasons below."""
        summary = _ROLLOUT_PREFIX.sub("", ev.summary)
        if ev.kind == "rollout.verdict":
            self.out(f"  {self.stamp(ev.at)}  {'GATE':<10} {summary}")
            if ev.details.get("verdict") in ("HOLD", "ROLLBACK"):
                for why in ev.details.get("why", [])[1:]:
                    self.out(f"  {'':<7}  {'':<10}   and {why}")
            return
        label = "DENIED" if ev.kind == "rollout.denied" else ev.kind.removeprefix("rollout.").upper()
        self.out(f"  {self.stamp(ev.at)}  {label.replace('_', ' '):<10} {summary}")

    def _step(self, ev: Event) -> None:
        d = ev.details
        self.out("")
        self.out(
            f"  {self.stamp(ev.at)}  ==== {ev.summary} (target +{d['window'].split('-')[0]}, late by {d['late_by']})"
        )
        if d["watch"]:
            self.out(f"      {'metric':<26}{'threshold':<34}{'now':>12}  status")
            for row in d["watch"]:
                value = "-" if row["value"] is None else f"{row['value']:.4g}"
                self.out(f"      {row['signal']:<26}{row['rule']:<34}{value:>12}  {_MARK[row['status']]}")
        for action in d["actions"]:
            self.out(f"      action: {action['label']} [{action['id']}] needs {' + '.join(action['requires'])}")
        for name, text in d["comms"].items():
            self.out(f"      --- comms draft: {name} ---")
            for line in text.splitlines():
                self.out(f"      | {line}")
        self.out("")


_LABELS = {
    "signal.fired": "FIRED",
    "incident.opened": "OPENED",
    "trigger.attached": "ALSO",
    "signal.lost": "LOST",
    "signal.restored": "RESTORED",
    "signal.silent": "SILENT",
    "signal.stale": "STALE",
    "alert.firing": "ALERT",
    "alert.resolved": "ALERT OK",
    "polling.behind": "BEHIND",
    "polling.restored": "CAUGHT UP",
    "trigger.blind": "BLIND",
    "trigger.sighted": "SEEING",
    "kpi.hold": "HOLD",
    "ack": "ACK",
    "ack.denied": "DENIED",
    "approval": "APPROVED",
    "approval.denied": "DENIED",
    "approval.duplicate": "DUPLICATE",
    "approval.lapsed": "LAPSED",
    "action.started": "ACTION",
    "action.succeeded": "DONE",
    "action.failed": "FAILED",
    "note": "NOTE",
    "incident.resolved": "RESOLVED",
    "ladder.completed": "LADDER",
    "drill.fault": "FAULT",
    "drill.recovered": "RECOVERED",
    "drill.investigating": "INSPECT",
    "drill.fixed": "FIXED",
}


def _label(kind: str) -> str:
    return _LABELS.get(kind, kind.upper())


def hhmm(delta: timedelta) -> str:
    """A drill duration as HH:MM."""
    minutes = int(delta.total_seconds() // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d}"
