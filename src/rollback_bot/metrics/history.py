"""A signal's past from Prometheus: range queries (`/api/v1/query_range`) at the signal's interval, in chunks
under Prometheus' limit of 11,000 points per series; each step is what an instant query then would have read."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import requests

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.fetch import Answer, get_json
from rollback_bot.metrics.sources import number_text
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
    endpoint = base.at("/api/v1/query_range")
    out: list[Reading] = []
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
        out += _steps(signal, _values(signal, answer, endpoint), at, last, step)
        at = last + step
    return out


def _values(signal: str, answer: Answer, endpoint: Endpoint) -> dict[float, float]:
    """Timestamp -> value of the one series answered; HistoryError for anything else."""

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
    if len(result) > 1:
        raise fail(f"query returned {len(result)} series; aggregate it to one (sum, max, ...)")
    values: dict[float, float] = {}
    for pair in result[0].get("values", []) if result and isinstance(result[0], dict) else []:
        if isinstance(pair, list) and len(pair) == 2 and isinstance(pair[1], str):
            number = number_text(pair[1])
            if number is not None and isinstance(pair[0], int | float):
                values[round(float(pair[0]), 3)] = number
    return values


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
