"""Reading a rollout's signals per version: each compared signal for the baseline and for the candidate.

A compared signal has `{version}` in its query, URL or JSON path; it is read twice, once with the rollout's
baseline name put in its place and once with the candidate's. A signal read once (an `above:` rule, a
diagnostic) counts as the candidate's. Everything goes through `Reader.read_all`, so a rollout read has the
deadline, concurrency, shared fetches, redaction and failure handling of any poll.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from urllib.parse import quote

from rollback_bot.metrics.build import build_source
from rollback_bot.metrics.reader import Reader
from rollback_bot.metrics.sources import JsonSource, MetricSource, PrometheusSource, SegmentedReading
from rollback_bot.playbook.models import VERSION, Playbook, SignalSpec
from rollback_bot.rules.readings import Reading, Status

Version = Literal["baseline", "candidate"]


@dataclass(frozen=True)
class ComparedReading:
    """One read of one signal, for one version (the role, not its name), of one segment ("" for the whole)."""

    signal: str
    version: Version
    segment: str
    at: datetime
    value: float | None
    status: Status
    detail: str = ""

    @property
    def usable(self) -> bool:
        """A finite number that was read: NaN, +/-Inf, no data and failed reads do not compare."""
        return self.status == "ok" and self.value is not None and math.isfinite(self.value)


@dataclass(frozen=True)
class RolloutSource:
    """What to read for one version of one signal."""

    version: Version
    source: MetricSource


def rollout_sources(pb: Playbook) -> list[RolloutSource]:
    """The rollout's signals in its order: a compared one as baseline then candidate, any other once (candidate).
    Builtin signals (minutes of an incident) are not read from a source and are left out."""
    ro = pb.rollout
    if ro is None:
        return []
    out = []
    for name in ro.signals:
        spec = pb.signals[name]
        if spec.builtin is not None:
            continue
        if spec.compared:
            out.append(RolloutSource("baseline", _source(name, _with_version(spec, ro.baseline), pb)))
            out.append(RolloutSource("candidate", _source(name, _with_version(spec, ro.candidate), pb)))
        else:
            out.append(RolloutSource("candidate", _source(name, spec, pb)))
    return out


def read_rollout(reader: Reader, pb: Playbook, now: Callable[[], datetime]) -> list[ComparedReading]:
    """Every rollout signal read now, per version and segment; a failure is an error reading, never raised."""
    planned = rollout_sources(pb)
    readings = reader.read_all([p.source for p in planned], now)
    return [c for p, r in zip(planned, readings, strict=True) for c in _compared(p.version, r)]


def _with_version(spec: SignalSpec, name: str) -> SignalSpec:
    """The signal as read for one version: `name` in place of {version}, URL-quoted in the URL."""
    swap = {
        "prometheus": spec.prometheus and spec.prometheus.replace(VERSION, name),
        "http": spec.http and spec.http.replace(VERSION, quote(name, safe="")),
        "json_path": spec.json_path and spec.json_path.replace(VERSION, name),
    }
    return spec.model_copy(update=swap)


def _source(name: str, spec: SignalSpec, pb: Playbook) -> MetricSource:
    source = build_source(name, spec, pb)
    if spec.segments and isinstance(source, PrometheusSource | JsonSource):
        return source.segmented(spec.segments)
    return source


def _compared(version: Version, reading: Reading) -> list[ComparedReading]:
    """A reading per segment of a segmented answer; else the one reading, for the signal as a whole."""
    parts = reading.segments if isinstance(reading, SegmentedReading) else ()
    return [
        ComparedReading(r.signal, version, key, r.at, r.value, r.status, r.detail)
        for key, r in parts or (("", reading),)
    ]
