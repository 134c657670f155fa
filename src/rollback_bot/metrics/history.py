"""A signal's past from Prometheus: range queries (`/api/v1/query_range`) at the signal's interval, in chunks
under Prometheus' limit of 11,000 points per series; each step is what an instant query then would have read."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import requests

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.fetch import Answer, get_json
from rollback_bot.metrics.sources import number_text, segment_key
from rollback_bot.rules.readings import Reading
from rollback_bot.secrets import redact

MAX_POINTS = 11_000  # Prometheus refuses a range query with more points per series
CHUNK_POINTS = 10_000
MAX_BYTES = 64 * 1024 * 1024


class HistoryError(Exception):
    """Prometheus could not give the history (unreachable, an error answer, a query it refuses)."""


def query_range(
    session: requests.Session,
    base: Endpoint,
    signal: str,
    query: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    timeout: float,
) -> list[Reading]:
    """A reading at every step from `start` to `end`: the value, or no data where the query had none."""
    return _query(session, base, signal, query, start, end, step, timeout, ())[""]


def query_range_segments(
    session: requests.Session,
    base: Endpoint,
    signal: str,
    query: str,
    segments: Sequence[str],
    start: datetime,
    end: datetime,
    step: timedelta,
    timeout: float,
) -> dict[str, list[Reading]]:
    """Readings of each segment (the series' `segments` labels, keyed as the live bot keys them, e.g.
    `urgency=high`), a reading at every step; a query answering two series for one segment is refused."""
    return _query(session, base, signal, query, start, end, step, timeout, tuple(segments))


def _query(
    session: requests.Session,
    base: Endpoint,
    signal: str,
    query: str,
    start: datetime,
    end: datetime,
    step: timedelta,
    timeout: float,
    segments: tuple[str, ...],
) -> dict[str, list[Reading]]:
    endpoint = base.at("/api/v1/query_range")
    values: dict[str, dict[float, float]] = {} if segments else {"": {}}
    chunk = step * CHUNK_POINTS
    at = start
    while at <= end:
        last = min(at + chunk - step, end)
        answer = get_json(
            session,
            endpoint,
            {
                "query": query,
                "start": f"{at.timestamp():.3f}",
                "end": f"{last.timestamp():.3f}",
                "step": f"{step.total_seconds():g}",
                "timeout": f"{timeout:g}s",
            },
            timeout,
            MAX_BYTES,
            at,
        )
        for key, got in _values(signal, answer, endpoint, segments).items():
            values.setdefault(key, {}).update(got)
        at = last + step
    return {key: _steps(signal, got, start, end, step) for key, got in sorted(values.items())}


def _values(
    signal: str, answer: Answer, endpoint: Endpoint, segments: tuple[str, ...]
) -> dict[str, dict[float, float]]:
    """Segment key ("" without segments) -> timestamp -> value of the series answered; HistoryError for
    anything else."""

    def fail(why: str) -> HistoryError:
        try:
            why = redact(why, endpoint.secrets())
        except Exception:
            why = "(detail withheld: the source's secrets could not be read)"
        return HistoryError(f"{signal}: prometheus {why}")

    body = answer.doc
    if answer.failure and not answer.status:
        raise fail(answer.failure)
    if not isinstance(body, dict):
        raise fail(f"HTTP {answer.status}, {answer.failure or 'answered with unexpected JSON'}")
    if body.get("status") != "success":
        raise fail(f"{body.get('errorType', f'HTTP {answer.status}')}: {body.get('error', 'unknown error')}")
    data = body.get("data")
    result = data.get("result") if isinstance(data, dict) else None
    if not isinstance(data, dict) or data.get("resultType") != "matrix" or not isinstance(result, list):
        raise fail("answered a range query without a matrix")
    if not segments and len(result) > 1:
        raise fail(f"query returned {len(result)} series; aggregate it to one (sum, max, ...)")
    out: dict[str, dict[float, float]] = {}
    for series in result:
        labels = series.get("metric") if isinstance(series, dict) else None
        key = segment_key(labels if isinstance(labels, dict) else {}, segments) if segments else ""
        if key in out:
            raise fail(f"query returned two series for segment {key}; aggregate them: sum by ({', '.join(segments)})")
        values = out[key] = {}
        for pair in series.get("values", []) if isinstance(series, dict) else []:
            if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str):
                number = number_text(pair[1])
                if number is not None and isinstance(pair[0], int | float):
                    values[round(float(pair[0]), 3)] = number
    return out


def _steps(signal: str, values: dict[float, float], start: datetime, end: datetime, step: timedelta) -> list[Reading]:
    out = []
    at = start
    while at <= end:
        value = values.get(round(at.timestamp(), 3))
        when = at.astimezone(UTC)
        if value is None:
            out.append(Reading.nodata(signal, when, "empty result"))
        else:
            out.append(Reading.of(signal, when, value))  # NaN becomes no data, as live
        at += step
    return out
