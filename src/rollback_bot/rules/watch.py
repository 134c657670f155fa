"""A ladder step's watch table: each metric against its threshold, ok / breached / no data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from rollback_bot.playbook.conditions import Compare
from rollback_bot.rules.readings import Reading


@dataclass(frozen=True)
class WatchRow:
    signal: str
    rule: str  # the healthy condition, e.g. "fatal_error_rate == 0"
    value: float | None
    status: Literal["ok", "breached", "nodata"]


def watch_rows(watch: list[Compare], latest: Mapping[str, Reading]) -> list[WatchRow]:
    rows = []
    for cmp in watch:
        r = latest.get(cmp.signal)
        if r is None or not r.usable or r.value is None:
            rows.append(WatchRow(cmp.signal, str(cmp), None, "nodata"))
        else:
            rows.append(WatchRow(cmp.signal, str(cmp), r.value, "ok" if cmp.holds(r.value) else "breached"))
    return rows
