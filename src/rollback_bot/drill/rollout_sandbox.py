"""A rollout drill's sandbox: the baseline and the candidate served side by side on loopback, the candidate's
share set by the rollout's traffic webhook, and a fault in one segment of the candidate from a given stage.

Everything served is derived from the (redirected) playbook:
- JSON: each http signal at its URL (with `{version}` put in, per version) and JSON path; a signal read per
  segment gets an object of segment value -> number there.
- Prometheus: `GET /api/v1/query` answers each query (per version), one series per segment.
- The rollout webhook (and any ladder action at the same path) sets the candidate's share from its body's
  `{{ percent }}` field; repeated Idempotency-Keys are answered without re-applying.
Values are noisy (a seeded RNG); both versions are healthy alike, the candidate a little better on the KPI,
until the fault; the sample signal is a counter growing with each version's share of the traffic.
"""

from __future__ import annotations

import itertools
import math
import random
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from urllib.parse import parse_qs, quote, urlsplit

from rollback_bot.drill.sandbox import Answer, JsonServer
from rollback_bot.playbook.models import VERSION, Playbook, RolloutRuleSpec, RolloutSpec

Role = Literal["baseline", "candidate"]


class ScenarioRefused(Exception):
    """The drill cannot play this playbook's rollout; the message says why."""


@dataclass(frozen=True)
class Level:
    """A signal's healthy value and noise, and how far the fault moves it (0: four times the hold's `by`)."""

    value: float
    noise: float
    fault: float = 0.0


# healthy figures of the seed's support copilot; any other signal is a rate around 0.5
LEVELS = {
    "resolution_score": Level(0.80, 0.004),
    "sla_hit_rate": Level(0.95, 0.003),
    "override_rate": Level(0.12, 0.004, 0.19),
    "incident_miss_rate": Level(0.03, 0.002, 0.03),
    "error_rate": Level(0.002, 0.0002),
    "p95_latency_ms": Level(420.0, 12.0),
    "fatal_error_rate": Level(0.0, 0.0),
}
SEGMENT_VALUES = {"urgency": ("low", "high"), "region": ("eu", "us"), "tier": ("free", "paid")}


def segment_values(label: str) -> tuple[str, ...]:
    return SEGMENT_VALUES.get(label, ("a", "b"))


def segment_keys(labels: list[str]) -> list[tuple[str, dict[str, str]]]:
    """Every segment of `labels` as the reader names it ("urgency=high") with its labels; the last one faults."""
    combos = itertools.product(*(segment_values(label) for label in labels))
    out = []
    for combo in combos:
        pairs = dict(zip(labels, combo, strict=True))
        out.append((",".join(f"{k}={v}" for k, v in pairs.items()), pairs))
    return out


@dataclass(frozen=True)
class Scenario:
    """What the drill plays: from which stage the fault shows, in which signal and segment, and by how much."""

    stage: int
    percent: float  # the fault shows once the candidate's share reaches this
    signal: str
    segment: str  # "urgency=high"; "" when the signal is read whole
    step: float  # how far the fault moves the signal (signed: towards worse)
    also: dict[str, float]  # other hold signals the fault moves a little, in the same segment
    levels: dict[str, Level]
    gains: dict[str, float]  # candidate minus baseline while healthy
    per_minute: float  # requests served per minute, both versions together
    deadline: timedelta  # after the start: the rollout must be complete by then

    def healthy(self, signal: str, role: Role) -> float:
        gain = self.gains.get(signal, 0.0) if role == "candidate" else 0.0
        return self.levels[signal].value + gain

    def describe(self, candidate: str) -> str:
        where = f" for {self.segment}" if self.segment else ""
        start = self.healthy(self.signal, "candidate")
        also = "".join(f", {s} {d:+.3g}" for s, d in self.also.items())
        return f"{candidate}'s {self.signal}{where} goes {start:.3g} -> {start + self.step:.3g}{also}"


def plan(pb: Playbook) -> Scenario:
    """The drill's scenario for a rollout playbook: a fault on its first hold rule compared with the baseline
    (one read per segment preferred), at the first stage of 50% or more before the last."""
    ro = pb.rollout
    if ro is None:
        raise ScenarioRefused(f"{pb.name} has no rollout")
    relative = [r for r in ro.holds if r.by is not None]
    if not relative:
        raise ScenarioRefused(
            f"{pb.name}'s rollout has no hold rule against the baseline (worse + by): the drill plays a HOLD on one"
        )
    target = next((r for r in relative if pb.signals[r.signal].segments), relative[0])
    labels = list(pb.signals[target.signal].segments)
    segment = segment_keys(labels)[-1][0] if labels else ""
    levels = {name: _level(name, ro) for name in pb.signals}
    assert target.by is not None
    size = levels[target.signal].fault or 4 * target.by
    also = {
        r.signal: _sign(r) * r.by / 2
        for r in relative
        if r is not target and r.by is not None and list(pb.signals[r.signal].segments) == labels
    }
    ruled = {r.signal for r in (*ro.holds, *ro.guardrails)}
    gains = {s: 2 * levels[s].noise for s, w in ro.gate.kpi.items() if w > 0 and s not in ruled}
    stages = ro.stages
    index = next((i for i, s in enumerate(stages[:-1]) if s.percent >= 50), max(len(stages) - 2, 0))
    # enough traffic for each stage's sample well within its minimum duration (or 10m without one)
    needed = [s.min_sample / (s.percent / 100 * max(_minutes(s.min_duration), 10.0)) for s in stages]
    deadline = sum((s.min_duration for s in stages), timedelta()) + stages[index].min_duration + timedelta(hours=2)
    return Scenario(
        stage=index,
        percent=stages[index].percent,
        signal=target.signal,
        segment=segment,
        step=_sign(target) * size,
        also=also,
        levels=levels,
        gains=gains,
        per_minute=max(600.0, 2 * max(needed)),
        deadline=deadline,
    )


def _minutes(d: timedelta) -> float:
    return d.total_seconds() / 60


def _sign(rule: RolloutRuleSpec) -> float:
    return 1.0 if rule.worse == "higher" else -1.0


def _level(name: str, ro: RolloutSpec) -> Level:
    if name in LEVELS:
        return LEVELS[name]
    above = next((r.above for r in (*ro.holds, *ro.guardrails) if r.signal == name and r.above is not None), None)
    if above is not None:  # a drift or bias score: well under its limit
        return Level(0.2 * above, 0.02 * abs(above))
    return Level(0.5, 0.004)


class RolloutModel:
    """The two versions' state: the candidate's share, the served counters, the fault and its fix."""

    def __init__(self, scenario: Scenario, ro: RolloutSpec, now: Callable[[], datetime], seed: int = 7) -> None:
        self.scenario, self.sample, self.now = scenario, ro.sample, now
        self.percent = 0.0
        self.fault_since: datetime | None = None
        self.fixed_at: datetime | None = None
        self.served: dict[Role, float] = {"baseline": 0.0, "candidate": 0.0}
        self._last = now()
        self._rng = random.Random(seed)
        self.lock = threading.Lock()

    @property
    def faulty(self) -> bool:
        return self.fault_since is not None and self.fixed_at is None

    def set_traffic(self, percent: float) -> None:
        with self.lock:
            self.count_served()
            self.percent = percent
            if percent >= self.scenario.percent and self.fault_since is None:
                self.fault_since = self.now()

    def fix(self) -> bool:
        """The candidate fixed (its segment healthy again); False when there was nothing to fix."""
        with self.lock:
            if not self.faulty:
                return False
            self.fixed_at = self.now()
            return True

    def count_served(self) -> None:
        """The counters brought up to now at the current shares; call with `lock` held."""
        now = self.now()
        minutes = max((now - self._last).total_seconds(), 0.0) / 60
        share = self.percent / 100
        self.served["candidate"] += self.scenario.per_minute * share * minutes
        self.served["baseline"] += self.scenario.per_minute * (1 - share) * minutes
        self._last = now

    def value(self, signal: str, role: Role, segment: str = "") -> float:
        """One reading of `signal` for a version (and segment); call with `lock` held."""
        if signal == self.sample:
            return float(round(self.served[role]))
        sc = self.scenario
        level = sc.levels[signal]
        value = sc.healthy(signal, role) + self._rng.uniform(-level.noise, level.noise)
        if role == "candidate" and self.faulty and segment == sc.segment:
            value += sc.step if signal == sc.signal else sc.also.get(signal, 0.0)
        return value


@dataclass
class _Field:
    signal: str
    role: Role
    path: list[str]
    segments: list[str] = field(default_factory=list)


class RolloutSandbox:
    """The HTTP face of a RolloutModel on 127.0.0.1; `route` it with the playbook as redirected to `url`."""

    def __init__(self, model: RolloutModel) -> None:
        self.model = model
        self.documents: dict[str, list[_Field]] = {}  # "path?query" -> the fields of its document
        self.queries: dict[str, _Field] = {}  # PromQL -> what it reads
        self.traffic: dict[str, list[str]] = {}  # webhook path -> where its body holds the percent
        self.applied: dict[str, Answer] = {}  # Idempotency-Key -> the answer given
        self._http = JsonServer(self._get, self._post)

    @property
    def url(self) -> str:
        return self._http.url

    def start(self) -> RolloutSandbox:
        self._http.start()
        return self

    def stop(self) -> None:
        self._http.stop()

    def route(self, pb: Playbook) -> None:
        """Serve what `pb` reads and take its traffic webhook; ScenarioRefused when the drill cannot."""
        ro = pb.rollout
        assert ro is not None
        names: dict[Role, str] = {"baseline": ro.baseline, "candidate": ro.candidate}
        for name, spec in pb.signals.items():
            if spec.builtin is not None:
                continue
            compared = spec.compared and name in ro.signals
            roles: tuple[Role, ...] = ("baseline", "candidate") if compared else ("candidate",)
            for role in roles:
                version = names[role] if compared else ""
                f = _Field(name, role, [], list(spec.segments))
                if spec.prometheus is not None:
                    self.queries[spec.prometheus.replace(VERSION, version)] = f
                    continue
                assert spec.http is not None and spec.json_path is not None
                path = spec.json_path.replace(VERSION, version)
                if not re.fullmatch(r"[^.\[\]]+(\.[^.\[\]]+)*", path):
                    raise ScenarioRefused(f"signal {name}: the drill serves plain dotted JSON paths, not '{path}'")
                f.path = path.split(".")
                parts = urlsplit(spec.http.replace(VERSION, quote(version, safe="")))
                self.documents.setdefault(f"{parts.path}?{parts.query}", []).append(f)
        hooks = [ro.webhook, *(a.webhook for step in pb.ladder for a in step.actions)]
        for hook in hooks:
            where = _percent_field(hook.body)
            if where is not None:
                self.traffic.setdefault(urlsplit(hook.url).path, where)
        if urlsplit(ro.webhook.url).path not in self.traffic:
            raise ScenarioRefused("the rollout webhook's body has no '{{ percent }}': the sandbox cannot set traffic")
        for key, fields in self.documents.items():
            try:
                self._document(fields)
            except TypeError as exc:
                why = f"two signals want the same JSON field in {key} as a number and an object ({exc})"
                raise ScenarioRefused(why) from None

    def _document(self, fields: list[_Field]) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        with self.model.lock:
            self.model.count_served()
            for f in fields:
                node = doc
                for part in f.path[:-1]:
                    node = node.setdefault(part, {})
                    if not isinstance(node, dict):
                        raise TypeError(f.signal)
                if f.segments:
                    value: Any = {
                        pairs[f.segments[0]]: self.model.value(f.signal, f.role, key)
                        for key, pairs in segment_keys(f.segments)
                    }
                else:
                    value = self.model.value(f.signal, f.role)
                if isinstance(node.get(f.path[-1]), dict):
                    raise TypeError(f.signal)
                node[f.path[-1]] = value
        return doc

    def _series(self, f: _Field) -> list[dict[str, Any]]:
        ts = self.model.now().timestamp()
        with self.model.lock:
            self.model.count_served()
            if not f.segments:
                return [{"metric": {}, "value": [ts, repr(self.model.value(f.signal, f.role))]}]
            return [
                {"metric": pairs, "value": [ts, repr(self.model.value(f.signal, f.role, key))]}
                for key, pairs in segment_keys(f.segments)
            ]

    def _get(self, path: str, query: str) -> Answer:
        if path == "/api/v1/query":
            promql = parse_qs(query).get("query", [""])[0]
            f = self.queries.get(promql)
            if f is None:
                return 400, {"status": "error", "errorType": "bad_data", "error": f"sandbox has no series {promql!r}"}
            return 200, {"status": "success", "data": {"resultType": "vector", "result": self._series(f)}}
        fields = self.documents.get(f"{path}?{query}")
        if fields is None:
            return 404, {"error": f"no such path {path}"}
        return 200, self._document(fields)

    def _post(self, path: str, key: str, body: dict[str, Any]) -> Answer:
        where = self.traffic.get(path)
        if where is None:
            return 200, {"ok": True, "result": "nothing to do in the sandbox"}
        if key and key in self.applied:
            status, answer = self.applied[key]
            return status, {**answer, "replayed": True}
        value: Any = body
        for part in where:
            value = value.get(part) if isinstance(value, dict) else None
        try:
            percent = float(value)
        except (TypeError, ValueError):
            return 400, {"error": f"no percent at {'.'.join(where)}: {value!r}"}
        if not math.isfinite(percent) or not 0 <= percent <= 100:
            return 400, {"error": f"percent {percent} is not in 0-100"}
        self.model.set_traffic(percent)
        answer = (200, {"ok": True, "result": f"candidate at {percent:g}%"})
        if key:
            self.applied[key] = answer
        return answer


def _percent_field(body: dict[str, Any], prefix: tuple[str, ...] = ()) -> list[str] | None:
    """Where a webhook body template puts `{{ percent }}`, as a path of keys."""
    for key, value in body.items():
        if isinstance(value, str) and re.search(r"\{\{\s*percent\s*\}\}", value):
            return [*prefix, key]
        if isinstance(value, dict):
            found = _percent_field(value, (*prefix, key))
            if found is not None:
                return found
    return None
