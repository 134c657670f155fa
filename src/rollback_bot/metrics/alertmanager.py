"""Alertmanager as a signal source, pure: its webhook payload (version 4), which alerts a signal matches, and
the reading they give. No I/O: the webhook stores alerts (store/alerts.py), a poll reads them back.

A signal reads the number of its matching alerts firing now: 1 or more is a breach of `> 0`, 0 is healthy.
- Nothing received yet for it: no data (Alertmanager only speaks when something fires), never a rollback.
- A firing alert holds between webhooks (Alertmanager re-sends it every `repeat_interval`), until it is sent
  resolved, or its `endsAt` has passed (Alertmanager would resolve it then: Prometheus stopped sending it).
- With `max_age`, a firing alert not sent again for that long is no data (stale), not a breach.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rollback_bot.playbook.durations import format_duration
from rollback_bot.playbook.models import AlertmanagerSpec
from rollback_bot.rules.readings import Reading

MAX_BODY = 4 * 1024 * 1024  # a group of a few thousand alerts; set max_alerts on the receiver for more
MAX_ALERTS = 5000
_TEXT = 4096  # longest label or annotation value kept


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)  # newer Alertmanagers may add fields


def _short_text(v: dict[str, str]) -> dict[str, str]:
    if len(v) > 200:
        raise ValueError(f"{len(v)} entries; at most 200")
    return {str(k)[:200]: str(val)[:_TEXT] for k, val in v.items()}


class AlertIn(_Lenient):
    """One alert of the payload as Alertmanager sends it."""

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = {}
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = Field("", max_length=_TEXT)
    fingerprint: str = Field("", max_length=128)

    _labels = field_validator("labels", "annotations")(_short_text)

    @field_validator("startsAt", "endsAt")
    @classmethod
    def _aware(cls, v: datetime | None) -> datetime | None:
        if v is None:
            return None
        if v.tzinfo is None:
            raise ValueError("time without a zone (RFC 3339 has one)")
        return v.astimezone(UTC)


class Payload(_Lenient):
    """The webhook's body, version 4 (Alertmanager 0.x)."""

    version: Literal["4"]
    status: Literal["firing", "resolved"]
    receiver: str = Field("", max_length=500)
    groupKey: str = Field("", max_length=_TEXT)
    alerts: list[AlertIn] = Field(max_length=MAX_ALERTS)
    externalURL: str = Field("", max_length=_TEXT)
    truncatedAlerts: int = 0


@dataclass(frozen=True)
class Alert:
    """An alert as stored: its latest state, from the newest delivery that concerns it."""

    fingerprint: str
    status: str  # firing | resolved
    labels: Mapping[str, str]
    starts_at: datetime
    ends_at: datetime | None  # None: Alertmanager sent none (year 1: "not set")
    received_at: datetime
    annotations: Mapping[str, str] = field(default_factory=dict)
    generator_url: str = ""
    receiver: str = ""

    @property
    def alertname(self) -> str:
        return self.labels.get("alertname", "")

    def firing_at(self, now: datetime) -> bool:
        """Firing now: sent firing, and its endsAt (if any) not yet passed."""
        return self.status == "firing" and (self.ends_at is None or self.ends_at > now)

    def evidence(self) -> dict[str, Any]:
        """What the timeline keeps of it."""
        return {
            "fingerprint": self.fingerprint,
            "status": self.status,
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "starts_at": self.starts_at.isoformat(),
            "ends_at": self.ends_at.isoformat() if self.ends_at else None,
            "generator_url": self.generator_url,
            "received_at": self.received_at.isoformat(),
        }

    def describe(self) -> str:
        """ModelErrorRate{service="x"} since 12:00:05 UTC: Error rate above 5% (http://prometheus/graph?...)"""
        labels = {k: v for k, v in sorted(self.labels.items()) if k != "alertname"}
        text = self.alertname + "{" + ", ".join(f'{k}="{v}"' for k, v in labels.items()) + "}"
        text += f" since {self.starts_at:%H:%M:%S} UTC"
        summary = self.annotations.get("summary") or self.annotations.get("description") or ""
        if summary:
            text += f": {summary}"
        if self.generator_url:
            text += f" ({self.generator_url})"
        return text


def fingerprint_of(labels: Mapping[str, str]) -> str:
    """Our own fingerprint when an Alertmanager sends none: a hash of the sorted labels."""
    return "sha256:" + hashlib.sha256(json.dumps(sorted(labels.items())).encode()).hexdigest()[:32]


_UNSAFE = re.compile("[\x00\ud800-\udfff]")


def safe_text(text: str) -> str:
    """`text` with what no database stores as text made U+FFFD: NUL (PostgreSQL refuses it) and a lone UTF-16
    surrogate (not UTF-8; JSON's \\ud800 gives one). Refusing the alert would drop it: it is kept, made safe."""
    return _UNSAFE.sub("\ufffd", text)


def _safe_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {safe_text(k): safe_text(v) if isinstance(v, str) else v for k, v in pairs}


def parse(body: bytes) -> Payload:
    """The payload, or ValueError with a one-line reason. Its text made safe to store (`safe_text`): only an
    escape (\\u0000, \\ud800) gives a NUL or a lone surrogate, so a body without one is read as it is."""
    try:
        doc = json.loads(body.decode("utf-8"), object_pairs_hook=_safe_object if b"\\u" in body else None)
    except UnicodeDecodeError as exc:
        raise ValueError(f"body is not UTF-8 (byte 0x{body[exc.start]:02x} at {exc.start})") from None
    except RecursionError:
        raise ValueError("body is JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"body is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(doc, dict):
        raise ValueError("body is not a JSON object")
    version = doc.get("version")
    if version == 4 and not isinstance(version, bool):  # Alertmanager sends the string; a number means the same
        doc["version"] = version = "4"
    if version != "4":
        given = "missing" if version is None else json.dumps(version)[:20]
        raise ValueError(f'payload version {given}: only version "4" is understood (a string, as Alertmanager sends)')
    try:
        return Payload.model_validate(doc)
    except ValidationError as exc:  # the first problem, in one line
        errors = exc.errors()
        where = ".".join(str(p) for p in errors[0]["loc"])
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise ValueError(f"{where}: {errors[0]['msg']}{more}") from None


_UNSET = datetime(1970, 1, 2, tzinfo=UTC)  # Go's zero time (year 1) and anything near it: "not set"


def alerts_of(payload: Payload, received_at: datetime) -> list[Alert]:
    """The payload's alerts as stored; a fingerprint sent twice in one payload counts once (the last)."""
    out: dict[str, Alert] = {}
    for a in payload.alerts:
        fp = a.fingerprint or fingerprint_of(a.labels)
        ends = a.endsAt if a.endsAt is not None and a.endsAt > _UNSET else None
        out[fp] = Alert(
            fp, a.status, a.labels, a.startsAt, ends, received_at, a.annotations, a.generatorURL, payload.receiver
        )
    return list(out.values())


def matches(spec: AlertmanagerSpec, labels: Mapping[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in spec.match.items())


def matching(signals: Mapping[str, AlertmanagerSpec], alerts: Iterable[Alert]) -> dict[str, list[Alert]]:
    """Each signal's alerts among `alerts` (signals without any are left out)."""
    out: dict[str, list[Alert]] = {}
    for alert in alerts:
        for name, spec in signals.items():
            if matches(spec, alert.labels):
                out.setdefault(name, []).append(alert)
    return out


def reading(name: str, spec: AlertmanagerSpec, alerts: Sequence[Alert], now: datetime) -> Reading:
    """The signal's value now from its matching alerts (see the module's docstring)."""
    if not alerts:
        return Reading.nodata(name, now, f"no alert matching {spec.describe()} received yet")
    firing = [a for a in alerts if a.firing_at(now)]
    if spec.max_age is not None:
        fresh = [a for a in firing if now - a.received_at <= spec.max_age]
        if firing and not fresh:
            newest = max(firing, key=lambda a: a.received_at)
            age = format_duration(timedelta(seconds=round((now - newest.received_at).total_seconds())))
            limit = format_duration(spec.max_age)
            return Reading.stale(name, now, f"firing alert last sent {age} ago (max_age {limit}): {newest.describe()}")
        firing = fresh
    if firing:
        firing.sort(key=lambda a: a.starts_at)
        more = f" (and {len(firing) - 1} more)" if len(firing) > 1 else ""
        return Reading(name, now, float(len(firing)), "ok", f"firing: {firing[0].describe()}{more}")
    last = max(alerts, key=lambda a: a.ends_at or a.received_at)
    if last.status == "firing":  # its endsAt passed without a resolve: Alertmanager resolves it then
        assert last.ends_at is not None
        why = f"endsAt {last.ends_at:%H:%M:%S} UTC passed"
    else:
        why = f"resolved at {(last.ends_at or last.received_at):%H:%M:%S} UTC"
    return Reading(name, now, 0.0, "ok", f"{why}: {last.describe()}")
