"""Metric sources: Prometheus instant queries and JSON endpoints, read through a passed-in Session.

A source says what to fetch (`endpoint`, `params`) and how to read the answer (`interpret`); the fetch
itself (deadline, size cap) is `metrics.fetch` and running many at once is `metrics.reader`. A source
never raises out of `read`: every failure becomes a Reading with status 'error' (the source is broken)
or 'nodata' (it answered, but with nothing usable), carrying the reason.

A source given `segments` reads its answer per segment (one Prometheus series, or one field of a JSON object,
per segment) into a SegmentedReading; a failure of the answer as a whole stays one plain Reading.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import requests

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES, Answer, get_json
from rollback_bot.playbook.durations import format_duration
from rollback_bot.rules.readings import Reading
from rollback_bot.secrets import redact

_MAX_DETAIL = 300
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SPECIAL = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}
NUMERIC_STRINGS_HINT = "set numeric_strings: true on the signal if the endpoint sends numbers as text"


@dataclass(frozen=True)
class SegmentedReading(Reading):
    """An answer read per segment: a reading for each ("urgency=high", or "queue=billing,urgency=high" with
    several labels), sorted by segment. The reading itself, ok and without a value, stands for the whole."""

    segments: tuple[tuple[str, Reading], ...] = ()


class MetricSource(Protocol):
    """What to fetch for one signal, and how to turn the answer into its Reading."""

    signal: str
    endpoint: Endpoint
    timeout: float

    def params(self, asked_at: datetime) -> dict[str, str]: ...

    def share_key(self) -> object: ...

    def interpret(self, answer: Answer, at: datetime) -> Reading: ...


def short(text: str) -> str:
    """One line of at most _MAX_DETAIL characters (cut only after redaction: a cut may split a secret)."""
    text = " ".join(text.split())
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def number_text(text: str) -> float | None:
    """A plain ASCII decimal, NaN, +Inf, -Inf or Inf as a float; None for anything else ("0x10", " 5")."""
    if text in _SPECIAL:
        return _SPECIAL[text]
    if not _DECIMAL.fullmatch(text):
        return None
    return float(text)


def read_one(source: MetricSource, session: requests.Session, now: datetime, max_bytes: int) -> Reading:
    """Fetch and interpret one source now (no thread pool): for tests, the drill and one-off reads."""
    try:
        answer = get_json(session, source.endpoint, source.params(now), source.timeout, max_bytes, now)
        reading = source.interpret(answer, now)
    except Exception as exc:
        reading = Reading.error(source.signal, now, f"cannot read the answer: {type(exc).__name__}")
    return redacted(source, reading)


def redacted(source: MetricSource, reading: Reading) -> Reading:
    """The reading (and each of its segments) with every secret of the source's connection removed from its
    detail, then cut short."""
    segments = reading.segments if isinstance(reading, SegmentedReading) else ()
    if not reading.detail and not any(r.detail for _, r in segments):
        return reading
    try:
        secrets: list[str] | None = source.endpoint.secrets()
    except Exception:
        secrets = None

    def clean(r: Reading) -> Reading:
        if not r.detail:
            return r
        if secrets is None:
            return replace(r, detail="(detail withheld: the source's secrets could not be read)")
        return replace(r, detail=short(redact(r.detail, secrets)))

    out = clean(reading)
    if isinstance(out, SegmentedReading):
        out = replace(out, segments=tuple((key, clean(r)) for key, r in segments))
    return out


def _noted(reading: Reading, notes: str) -> Reading:
    """`notes` added to the reading's detail (and to each of its segments')."""
    out = replace(reading, detail=f"{reading.detail}; {notes}" if reading.detail else notes)
    if isinstance(out, SegmentedReading):
        out = replace(out, segments=tuple((key, _noted(r, notes)) for key, r in out.segments))
    return out


def _endpoint(where: str | Endpoint) -> Endpoint:
    return where if isinstance(where, Endpoint) else Endpoint(where)


class PrometheusSource:
    """An instant query over Prometheus' HTTP API (`GET /api/v1/query?query=...&time=...`)."""

    def __init__(
        self,
        signal: str,
        base: str | Endpoint,
        query: str,
        timeout: float,
        *,
        max_age: timedelta | None = None,
        segments: Sequence[str] = (),
    ) -> None:
        self.signal, self.query, self.timeout, self.max_age = signal, query, timeout, max_age
        self.endpoint = _endpoint(base).at("/api/v1/query")
        self.segments = tuple(segments)

    def segmented(self, labels: Sequence[str]) -> PrometheusSource:
        """This query read per segment: one series for each combination of the `labels`' values."""
        out = copy.copy(self)
        out.segments = tuple(labels)
        return out

    def params(self, asked_at: datetime) -> dict[str, str]:
        return {"query": self.query, "time": f"{asked_at.timestamp():.3f}"}

    def share_key(self) -> object:
        return (self.endpoint, self.query)

    def read(self, session: requests.Session, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES) -> Reading:
        return read_one(self, session, now, max_bytes)

    def interpret(self, answer: Answer, at: datetime) -> Reading:
        body = answer.doc
        if answer.failure and not answer.status:
            return Reading.error(self.signal, at, f"prometheus {answer.failure}")
        if answer.failure or not isinstance(body, dict):
            what = answer.failure or "answered with unexpected JSON"
            excerpt = f": '{answer.excerpt}'" if answer.excerpt else ""
            hint = "; check headers / basic_auth under sources.prometheus" if answer.status in (401, 403) else ""
            return Reading.error(self.signal, at, f"prometheus HTTP {answer.status}, {what}{excerpt}{hint}")
        if body.get("status") != "success":
            kind = body.get("errorType", f"HTTP {answer.status}")
            return Reading.error(self.signal, at, f"prometheus {kind}: {body.get('error', 'unknown error')}")
        notes = _notes(body)
        data = body.get("data")
        reading = self._parse(data if isinstance(data, dict) else {}, answer.asked_at, at)
        return _noted(reading, notes) if notes else reading

    def _parse(self, data: dict[str, Any], asked_at: datetime, at: datetime) -> Reading:
        kind, result = data.get("resultType"), data.get("result")
        if kind == "scalar" and not self.segments:
            return self._sample(result, asked_at, at)
        if kind == "vector" and isinstance(result, list):
            if not result:
                return Reading.nodata(self.signal, at, "empty result")
            if self.segments:
                return self._by_segment(result, asked_at, at)
            if len(result) > 1:
                return Reading.error(
                    self.signal, at, f"query returned {len(result)} series; aggregate it to one (sum, max, ...)"
                )
            return self._series(result[0], asked_at, at)
        if kind == "scalar":
            return Reading.error(
                self.signal, at, f"query returned a scalar; segments need one series per segment: {self._by()}"
            )
        return Reading.error(self.signal, at, f"result type '{kind}' is not supported; use an instant vector")

    def _by(self) -> str:
        return f"sum by ({', '.join(self.segments)}) (...)"

    def _by_segment(self, result: list[Any], asked_at: datetime, at: datetime) -> SegmentedReading:
        """Each series keyed by its segment labels' values (a missing label counts as empty, as in PromQL)."""
        groups: dict[str, list[Any]] = {}
        for series in result:
            labels = _labels(series)
            key = segment_key(labels, self.segments)
            groups.setdefault(key, []).append(series)
        segments = tuple((key, self._segment(key, group, asked_at, at)) for key, group in sorted(groups.items()))
        return SegmentedReading(self.signal, at, None, "ok", segments=segments)

    def _segment(self, key: str, group: list[Any], asked_at: datetime, at: datetime) -> Reading:
        labels = _labels(group[0])
        missing = [name for name in self.segments if name not in labels]
        if missing:
            more = f" (and {len(group) - 1} more series)" if len(group) > 1 else ""
            names = ", ".join(f"'{name}'" for name in missing)
            why = f"series {_selector(labels)}{more} has no label {names}; segments need it: {self._by()}"
            return Reading.error(self.signal, at, why)
        if len(group) > 1:
            return Reading.error(
                self.signal, at, f"{len(group)} series have segment {key}; aggregate them to one: {self._by()}"
            )
        return self._series(group[0], asked_at, at)

    def _series(self, series: Any, asked_at: datetime, at: datetime) -> Reading:
        series = series if isinstance(series, dict) else {}
        if "histogram" in series:
            return Reading.error(self.signal, at, "query returned a native histogram; read a number from it")
        return self._sample(series.get("value"), asked_at, at)

    def _sample(self, pair: Any, asked_at: datetime, at: datetime) -> Reading:
        stamp, text = pair if isinstance(pair, list) and len(pair) == 2 else (None, None)
        value = number_text(text) if isinstance(text, str) else None
        if value is None or isinstance(stamp, bool) or not isinstance(stamp, int | float) or not math.isfinite(stamp):
            return Reading.error(self.signal, at, f"cannot read sample {pair!r}")
        try:
            sampled = datetime.fromtimestamp(stamp, tz=asked_at.tzinfo or UTC)
        except (OverflowError, ValueError, OSError):
            return Reading.error(self.signal, at, f"sample timestamp {stamp!r} is not a time")
        age = asked_at - sampled
        ahead_by = sampled - at  # against when the answer arrived: nothing is stamped after it was received
        if self.max_age is not None and ahead_by > self.max_age:  # a frozen sample stamped ahead never goes stale
            ahead = format_duration(timedelta(seconds=round(ahead_by.total_seconds())))
            return Reading.error(
                self.signal, at, f"sample stamped {ahead} in the future ({sampled:%Y-%m-%d %H:%M:%S}): clocks disagree"
            )
        if self.max_age is not None and age > self.max_age:
            return Reading.stale(self.signal, at, f"sample stamped {sampled:%H:%M:%S}, {format_duration(age)} old")
        return Reading.of(self.signal, at, value)


def segment_key(labels: Mapping[str, Any], segments: Sequence[str]) -> str:
    """A segment's name from a series' labels: `urgency=high,region=eu` (a missing label counts as empty)."""
    return ",".join(f"{name}={labels.get(name, '')}" for name in segments)


def _labels(series: Any) -> dict[str, Any]:
    labels = series.get("metric") if isinstance(series, dict) else None
    return labels if isinstance(labels, dict) else {}


def _selector(labels: dict[str, Any]) -> str:
    """A series' labels as PromQL writes them: {queue="billing", urgency="high"}."""
    return "{" + ", ".join(f'{name}="{value}"' for name, value in sorted(labels.items())) + "}"


def _notes(body: dict[str, Any]) -> str:
    """Prometheus' warnings and infos (a partial answer, a lossy query): kept on the reading's detail."""
    out: list[str] = []
    for key, label in (("warnings", "warning"), ("infos", "info")):
        items = body.get(key)
        if isinstance(items, list):
            out += [f"prometheus {label}: {item}" for item in items[:5]]
    return "; ".join(out)


PATH_PART = re.compile(r"([^.\[\]]+)|\[([0-9]+)\]")


def json_path(doc: Any, path: str) -> Any:
    """'kpi.accuracy', 'models[0].latency' or 'models.0.latency' -> the value; KeyError names what is missing."""
    cur = doc
    for name, index in PATH_PART.findall(path):
        numeric = name.isascii() and name.isdigit() and isinstance(cur, list)
        key: str | int = int(index) if index else (int(name) if numeric else name)
        try:
            cur = cur[key]
        except (KeyError, IndexError, TypeError):
            raise KeyError(f"field '{path}' not found (stopped at '{key}')") from None
    return cur


def _json_kind(value: Any) -> str:
    kinds = ((bool, "a boolean"), (str, "a string"), (dict, "an object"), (list, "an array"), (int | float, "a number"))
    return next((name for t, name in kinds if isinstance(value, t)), "null")


def _one_name(segments: Sequence[str]) -> tuple[str, ...]:
    if len(segments) > 1:
        raise ValueError("a JSON signal has one segment name: its path points at an object of segment -> number")
    return tuple(segments)


class JsonSource:
    """A numeric field of a JSON document served over HTTP."""

    def __init__(
        self,
        signal: str,
        url: str | Endpoint,
        path: str,
        timeout: float,
        *,
        numeric_strings: bool = False,
        segments: Sequence[str] = (),
    ) -> None:
        self.signal, self.path, self.timeout, self.numeric_strings = signal, path, timeout, numeric_strings
        self.endpoint = _endpoint(url)
        self.segments = _one_name(segments)

    def segmented(self, labels: Sequence[str]) -> JsonSource:
        """This field read per segment: `path` points at an object of segment value -> number."""
        out = copy.copy(self)
        out.segments = _one_name(labels)
        return out

    @property
    def url(self) -> str:
        return self.endpoint.url

    def params(self, asked_at: datetime) -> dict[str, str]:
        return {}

    def share_key(self) -> object:
        return (self.endpoint, None)

    def read(self, session: requests.Session, now: datetime, max_bytes: int = DEFAULT_MAX_BYTES) -> Reading:
        return read_one(self, session, now, max_bytes)

    def interpret(self, answer: Answer, at: datetime) -> Reading:
        if answer.status and answer.status != 200:
            return Reading.error(self.signal, at, f"HTTP {answer.status} from {self.url}")
        if answer.failure:
            excerpt = f": '{answer.excerpt}'" if answer.excerpt else ""
            return Reading.error(self.signal, at, f"{answer.failure}{excerpt}")
        return self.extract(answer.doc, at)

    def extract(self, doc: Any, at: datetime) -> Reading:
        """The number at `path` in a parsed document (with segments, the numbers of the object there)."""
        if not isinstance(doc, dict | list):
            return Reading.error(
                self.signal, at, f"answer is {_json_kind(doc)}, not an object or array; '{self.path}' is not in it"
            )
        try:
            value = json_path(doc, self.path)
        except KeyError as exc:
            return Reading.error(self.signal, at, str(exc.args[0]))
        if self.segments and value is not None:
            return self._by_segment(value, at)
        return self._number(value, self.path, at)

    def _by_segment(self, value: Any, at: datetime) -> Reading:
        if not isinstance(value, dict):
            return Reading.error(
                self.signal, at, f"'{self.path}' is {_json_kind(value)}, not an object of {self.segments[0]} -> number"
            )
        if not value:
            return Reading.nodata(self.signal, at, f"'{self.path}' is an empty object: no segments")
        segments = tuple(
            (f"{self.segments[0]}={key}", self._number(number, f"{self.path}.{key}", at))
            for key, number in sorted(value.items())
        )
        return SegmentedReading(self.signal, at, None, "ok", segments=segments)

    def _number(self, value: Any, where: str, at: datetime) -> Reading:
        """`value`, found at `where`, as a reading."""
        if value is None:
            return Reading.nodata(self.signal, at, f"'{where}' is null")
        if isinstance(value, str):
            return self._text(value, where, at)
        if isinstance(value, bool):
            return Reading.error(self.signal, at, f"'{where}' is a boolean ({json.dumps(value)}), not a number")
        if not isinstance(value, int | float):
            return Reading.error(self.signal, at, f"'{where}' is {_json_kind(value)}, not a number")
        try:
            return Reading.of(self.signal, at, float(value))
        except OverflowError:
            return Reading.error(self.signal, at, f"'{where}' is a number too large to read")

    def _text(self, value: str, where: str, at: datetime) -> Reading:
        number = number_text(value)
        shown = json.dumps(value, ensure_ascii=False)  # whole: cutting before redaction could split a secret
        if number is None:
            return Reading.error(self.signal, at, f"'{where}' is not a number: {shown}")
        if not self.numeric_strings:
            return Reading.error(
                self.signal, at, f"'{where}' is a string ({shown}), not a number; {NUMERIC_STRINGS_HINT}"
            )
        return Reading.of(self.signal, at, number)
