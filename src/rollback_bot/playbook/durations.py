"""Durations as people write them in playbooks: 30s, 10m, 2h, 1d, 1h30m."""

from __future__ import annotations

import math
import re
from datetime import timedelta

_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
MAX_DURATION = timedelta(days=3650)  # ten years: longer is a typo, and would overflow date arithmetic


def parse_duration(value: object) -> timedelta:
    """'90s', '10m', '1h30m' -> timedelta. Bare numbers are refused: a unit must be explicit."""
    if isinstance(value, timedelta):
        return value
    text = str(value).strip().replace(" ", "")
    shown = str(value) if len(str(value)) <= 40 else str(value)[:40] + "..."
    if not text or _PART.sub("", text) != "" or not _PART.match(text):
        raise ValueError(f"bad duration '{shown}': write a number and a unit, e.g. 30s, 10m, 2h, 1h30m")
    seconds = sum(float(n) * _UNITS[u] for n, u in _PART.findall(text))
    if not math.isfinite(seconds) or seconds > MAX_DURATION.total_seconds():
        raise ValueError(f"duration '{shown}' is too long: at most {MAX_DURATION.days}d (ten years)")
    return timedelta(seconds=seconds)


def format_duration(delta: timedelta) -> str:
    """timedelta -> '2h', '1h30m', '45s' (the inverse of parse_duration for whole seconds)."""
    total = round(delta.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    hours, rest = divmod(total, 3600)  # hours, not days: ladders are read in hours (18h-24h)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{v}{u}" for v, u in ((hours, "h"), (minutes, "m"), (seconds, "s")) if v]
    return sign + ("".join(parts) or "0s")
