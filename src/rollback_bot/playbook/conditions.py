"""The condition language of triggers and watch lists, parsed into plain frozen dataclasses.

fatal_error_rate > 0
p95_latency_ms >= 800
fatal_error_rate jumps 200% within 15m
error_rate jumps 200% within 15m by at least 0.01
{all: [...]}, {any: [...]}, {at_least: 2, of: [...]}
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property

from rollback_bot.playbook.durations import format_duration, parse_duration

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_NUMBER = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_COMPARE = re.compile(rf"^\s*({_NAME})\s*(>=|<=|==|!=|>|<)\s*({_NUMBER})\s*(%?)\s*$")
_JUMP = re.compile(
    rf"^\s*({_NAME})\s+jumps\s+({_NUMBER})\s*%\s+within\s+(\S+?)(?:\s+by\s+at\s+least\s+({_NUMBER}))?\s*$"
)


@dataclass(frozen=True)
class Compare:
    signal: str
    op: str
    threshold: float

    def holds(self, value: float) -> bool:
        return OPERATORS[self.op](value, self.threshold)

    def __str__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:  # evidence quotes the rule at every evaluation
        return f"{self.signal} {self.op} {_num(self.threshold)}"


@dataclass(frozen=True)
class Jump:
    """The latest value is at least `percent` % (and, if given, `min_rise` in absolute terms) above the
    median of the earlier readings of the last `within`."""

    signal: str
    percent: float
    within: timedelta
    min_rise: float | None = None

    def __str__(self) -> str:
        return self._text

    @cached_property
    def _text(self) -> str:
        text = f"{self.signal} jumps {_num(self.percent)}% within {format_duration(self.within)}"
        return text if self.min_rise is None else f"{text} by at least {_num(self.min_rise)}"


@dataclass(frozen=True)
class AllOf:
    items: tuple[Condition, ...]

    def __str__(self) -> str:
        return "all of (" + "; ".join(map(str, self.items)) + ")"


@dataclass(frozen=True)
class AnyOf:
    items: tuple[Condition, ...]

    def __str__(self) -> str:
        return "any of (" + "; ".join(map(str, self.items)) + ")"


@dataclass(frozen=True)
class AtLeast:
    count: int
    items: tuple[Condition, ...]

    def __str__(self) -> str:
        return f"at least {self.count} of (" + "; ".join(map(str, self.items)) + ")"


Condition = Compare | Jump | AllOf | AnyOf | AtLeast


def _num(x: float) -> str:
    if math.isfinite(x) and x == int(x):
        return str(int(x))
    return repr(x)


def _finite(number: str, text: str) -> float:
    """A number written in a condition; one too large for a float (1e400) is refused, not read as infinity."""
    value = float(number)
    if not math.isfinite(value):
        raise ValueError(f"'{text}': {number} is too large a number (it would read as infinity)")
    return value


def parse_comparison(text: object) -> Compare:
    """'signal op number' (used by watch lists, which only compare)."""
    if not isinstance(text, str):
        raise ValueError(f"expected a comparison like 'p95_latency_ms < 800', got {text!r}")
    m = _COMPARE.match(text)
    if not m:
        raise ValueError(f"cannot read '{text}': write '<signal> <op> <number>' with op one of > >= < <= == !=")
    name, op, number, pct = m.groups()
    if pct:
        raise ValueError(f"'{text}': write percentages as plain numbers in the signal's own unit")
    return Compare(name, op, _finite(number, text))


def parse_condition(value: object) -> Condition:
    """A string comparison or jump, or a mapping with all / any / at_least+of (nestable)."""
    if isinstance(value, Compare | Jump | AllOf | AnyOf | AtLeast):
        return value
    if isinstance(value, str):
        m = _JUMP.match(value)
        if m:
            name, pct, within, rise = m.groups()
            percent = _finite(pct, value)
            if percent <= 0:
                raise ValueError(f"'{value}': a jump must be a positive percentage")
            min_rise = None if rise is None else _finite(rise, value)
            if min_rise is not None and min_rise <= 0:
                raise ValueError(f"'{value}': 'by at least' needs a positive amount in the signal's unit")
            return Jump(name, percent, parse_duration(within), min_rise)
        if " jumps " in value:
            raise ValueError(
                f"cannot read '{value}': write '<signal> jumps <N>% within <duration>'"
                " (optionally followed by 'by at least <amount>')"
            )
        return parse_comparison(value)
    if isinstance(value, dict):
        keys = set(value)
        if keys == {"all"}:
            return AllOf(_items(value["all"], "all"))
        if keys == {"any"}:
            return AnyOf(_items(value["any"], "any"))
        if keys == {"at_least", "of"}:
            items = _items(value["of"], "of")
            count = value["at_least"]
            if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= len(items):
                raise ValueError(f"at_least must be a whole number from 1 to {len(items)}, got {count!r}")
            return AtLeast(count, items)
        raise ValueError(
            f"a nested condition needs exactly one of 'all', 'any', or 'at_least' with 'of'; got {sorted(keys)}"
        )
    raise ValueError(f"expected a condition (text or all/any/at_least), got {value!r}")


def _items(raw: object, key: str) -> tuple[Condition, ...]:
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"'{key}' needs a non-empty list of conditions")
    return tuple(parse_condition(item) for item in raw)


def signals_in(cond: Condition) -> Iterator[str]:
    """Every signal name a condition reads."""
    if isinstance(cond, Compare | Jump):
        yield cond.signal
    else:
        for item in cond.items:
            yield from signals_in(item)


def longest_jump_window(cond: Condition) -> timedelta:
    if isinstance(cond, Jump):
        return cond.within
    if isinstance(cond, Compare):
        return timedelta(0)
    return max((longest_jump_window(i) for i in cond.items), default=timedelta(0))
