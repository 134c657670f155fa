"""Trigger semantics, table-driven with plain data."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import fields
from datetime import UTC, datetime, timedelta

import pytest

from rollback_bot.playbook.conditions import parse_condition
from rollback_bot.playbook.models import TriggerSpec
from rollback_bot.rules import Decision, Evidence, Reading, TriggerState, evaluate, kpi_score, step_trigger

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def ok(signal: str, value: float, minute: float = 0) -> Reading:
    return Reading.of(signal, at(minute), value)


NODATA = Reading.nodata("x", T0, "empty result")
ERROR = Reading.error("x", T0, "prometheus bad_data: parse error")

# condition, readings of x / y, expected (True breached, False healthy, None no data)
CASES = [
    ("x > 0", {"x": ok("x", 0.0)}, False),
    ("x > 0", {"x": ok("x", 0.001)}, True),
    ("x >= 5", {"x": ok("x", 5)}, True),
    ("x < 5", {"x": ok("x", 5)}, False),
    ("x <= 5", {"x": ok("x", 5)}, True),
    ("x == 0", {"x": ok("x", 0)}, True),
    ("x != 0", {"x": ok("x", 0)}, False),
    ("x > 800", {"x": ok("x", math.inf)}, True),  # +Inf is a value, and a breach
    ("x > 800", {"x": ok("x", -math.inf)}, False),
    ("x > 0", {"x": Reading.of("x", T0, math.nan)}, None),  # NaN is no data, never healthy
    ("x > 0", {"x": NODATA}, None),  # empty result: no data, never 0
    ("x > 0", {"x": ERROR}, None),  # a source error: no data
    ("x > 0", {}, None),  # never read
    ({"all": ["x > 3", "y > 800"]}, {"x": ok("x", 4), "y": ok("y", 900)}, True),
    ({"all": ["x > 3", "y > 800"]}, {"x": ok("x", 4), "y": ok("y", 100)}, False),
    ({"all": ["x > 3", "y > 800"]}, {"x": ok("x", 4), "y": NODATA}, None),
    ({"all": ["x > 3", "y > 800"]}, {"x": ok("x", 1), "y": NODATA}, False),  # one false decides
    ({"any": ["x > 3", "y > 800"]}, {"x": ok("x", 1), "y": ok("y", 900)}, True),
    ({"any": ["x > 3", "y > 800"]}, {"x": ok("x", 1), "y": NODATA}, None),
    ({"any": ["x > 3", "y > 800"]}, {"x": NODATA, "y": ok("y", 900)}, True),  # one true decides
    ({"any": ["x > 3", "y > 800"]}, {"x": ok("x", 1), "y": ok("y", 1)}, False),
    ({"at_least": 2, "of": ["x > 1", "y > 1", "z > 1"]}, {"x": ok("x", 2), "y": ok("y", 2), "z": ok("z", 0)}, True),
    ({"at_least": 2, "of": ["x > 1", "y > 1", "z > 1"]}, {"x": ok("x", 2), "y": ok("y", 0), "z": NODATA}, None),
    ({"at_least": 2, "of": ["x > 1", "y > 1", "z > 1"]}, {"x": ok("x", 2), "y": ok("y", 0), "z": ok("z", 0)}, False),
    ({"any": ["x > 100", {"all": ["y > 1", "z > 1"]}]}, {"x": ok("x", 0), "y": ok("y", 2), "z": ok("z", 2)}, True),
]


@pytest.mark.parametrize(("cond", "latest", "expected"), CASES, ids=[str(c[0]) + f"-{i}" for i, c in enumerate(CASES)])
def test_condition(cond: object, latest: dict[str, Reading], expected: bool | None) -> None:
    verdict = evaluate(parse_condition(cond), latest, {}, T0)
    assert verdict.holds is expected
    assert verdict.evidence, "every decision carries its evidence"


# (condition, history of x as (minute, value), latest value at minute 15, expected)
J = "x jumps 200% within 15m"
JM = "x jumps 200% within 15m by at least 0.01"
JUMP_CASES = [
    (J, [(0, 1.0), (5, 1.0)], 3.0, True),  # +200% vs the median of the window (1.0)
    (J, [(0, 1.0), (5, 1.0)], 2.9, False),  # +190%
    (J, [(0, 0.0)], 0.5, None),  # from zero a relative rise is undefined: without a minimum, no verdict
    (JM, [(0, 0.0)], 0.5, True),  # ... with one, the absolute rise decides
    (JM, [(0, 0.0)], 0.00001, False),  # 0 -> 0.00001 is not a jump
    (J, [(0, 0.0)], 0.0, None),
    (J, [], 3.0, None),  # nothing to compare with yet
    (J, [(-20, 0.1)], 3.0, None),  # the only earlier reading is outside the 15m window
    (J, [(0, 1.0), (5, 0.5), (6, 1.0)], 1.5, False),  # one dip does not become the baseline (median 1.0)
    ("x jumps 50% within 15m", [(1, 100), (2, 110), (3, 120), (4, 0)], 5, False),  # a counter reset
    (JM, [(0, 0.001), (5, 0.001)], 0.005, False),  # +400% but only +0.004 in absolute terms
    (JM, [(0, 0.001), (5, 0.001)], 0.02, True),
]


@pytest.mark.parametrize(("text", "hist", "value", "expected"), JUMP_CASES)
def test_jump(text: str, hist: list[tuple[float, float]], value: float, expected: bool | None) -> None:
    cond = parse_condition(text)
    history = {"x": [ok("x", v, m) for m, v in hist]}
    verdict = evaluate(cond, {"x": ok("x", value, 15)}, history, at(15))
    assert verdict.holds is expected


def test_jump_ignores_nodata_in_history() -> None:
    cond = parse_condition("x jumps 100% within 15m")
    history = {"x": [Reading.nodata("x", at(1), "empty"), ok("x", 2.0, 2)]}
    assert evaluate(cond, {"x": ok("x", 4.0, 15)}, history, at(15)).holds is True
    assert evaluate(cond, {"x": Reading.nodata("x", at(15), "NaN")}, history, at(15)).holds is None


def trig(**kw: object) -> TriggerSpec:
    return TriggerSpec.model_validate(kw)


def run(trigger: TriggerSpec, series: Sequence[tuple[float, Reading | None]]) -> list[str]:
    """Feed readings minute by minute; return the status after each, with '!' when it fired then."""
    state = TriggerState()
    out = []
    for minute, reading in series:
        latest = {"x": reading} if reading is not None else {}
        decision, state = step_trigger("t", trigger, state, latest, {}, at(minute))
        out.append(decision.status + ("!" if decision.fired else "") + ("~" if decision.cleared else ""))
    return out


FOR_CASES = [
    # sustained for 10m: fires only once the condition has held for the whole duration
    ([(0, 5), (5, 5), (9, 5), (10, 5), (11, 5)], ["pending", "pending", "pending", "firing!", "firing"]),
    # one healthy reading resets the timer (as Prometheus does)
    ([(0, 5), (5, 0), (6, 5), (15, 5), (16, 5)], ["pending", "ok", "pending", "pending", "firing!"]),
    # no data pauses the timer: it neither resets nor counts; firing needs 10m of observed breach
    (
        [(0, 5), (5, None), (10, None), (11, 5), (15, 5), (16, 5)],
        ["pending", "nodata", "nodata", "pending", "pending", "firing!"],
    ),
    # one breached reading after a 10-minute gap does not complete a 5-minute... here 10-minute `for`
    ([(0, 5), (1, None), (11, None), (12, 5)], ["pending", "nodata", "nodata", "pending"]),
    # clearing after firing
    ([(0, 5), (10, 5), (11, 0)], ["pending", "firing!", "ok~"]),
]


@pytest.mark.parametrize(("values", "expected"), FOR_CASES)
def test_for_duration(values: list[tuple[float, float | None]], expected: list[str]) -> None:
    trigger = trig(when="x > 1", **{"for": "10m"})
    series = [(m, None if v is None else ok("x", v, m)) for m, v in values]
    series = [(m, r if r is not None else Reading.nodata("x", at(m), "empty")) for m, r in series]
    assert run(trigger, series) == expected


def test_without_for_fires_on_first_breach_and_only_once() -> None:
    trigger = trig(when="x > 0", severity="critical")
    assert run(trigger, [(0, ok("x", 0)), (1, ok("x", 1)), (2, ok("x", 2))]) == ["ok", "firing!", "firing"]


def test_nodata_never_fires_even_forever() -> None:
    trigger = trig(when="x > 0")
    series = [(m, Reading.error("x", at(m), "unreachable")) for m in range(30)]
    assert set(run(trigger, series)) == {"nodata"}


KPI = {"kpi": {"a": 0.4, "b": 0.35, "c": -0.25}, "hold_below": 0.65, "below": 0.60}


@pytest.mark.parametrize(
    ("a", "b", "c", "gate", "score"),
    [
        (0.92, 0.96, 0.04, "go", 0.694),
        (0.85, 0.90, 0.10, "hold", 0.63),
        (0.70, 0.78, 0.22, "rollback", 0.498),
        (0.92, 0.96, None, None, None),  # a missing metric means no score, never a decision
    ],
)
def test_kpi_gate(a: float, b: float, c: float | None, gate: str | None, score: float | None) -> None:
    trigger = trig(**KPI)
    latest = {"a": ok("a", a), "b": ok("b", b)}
    if c is not None:
        latest["c"] = ok("c", c)
    result = kpi_score(trigger, latest)
    assert result.gate == gate
    if score is None:
        assert result.score is None
    else:
        assert result.score == pytest.approx(score, abs=1e-3)


def test_kpi_hold_is_reported_once_and_does_not_fire() -> None:
    trigger = trig(**KPI)
    hold = {"a": ok("a", 0.85), "b": ok("b", 0.90), "c": ok("c", 0.10)}
    d1, s1 = step_trigger("kpi", trigger, TriggerState(), hold, {}, at(0))
    d2, s2 = step_trigger("kpi", trigger, s1, hold, {}, at(1))
    assert (d1.status, d1.held, d1.fired) == ("hold", True, False)
    assert (d2.status, d2.held) == ("hold", False)
    bad = {"a": ok("a", 0.70), "b": ok("b", 0.78), "c": ok("c", 0.22)}
    d3, _ = step_trigger("kpi", trigger, s2, bad, {}, at(2))
    assert d3.fired and d3.score == pytest.approx(0.498, abs=1e-3)


def test_decision_evidence_names_signals_values_thresholds_and_since() -> None:
    trigger = trig(all=["x > 3", "y > 800"], **{"for": "1m"})
    latest = {"x": ok("x", 4.5), "y": ok("y", 950)}
    d, state = step_trigger("degradation", trigger, TriggerState(), latest, {}, at(0))
    d, _ = step_trigger("degradation", trigger, state, latest, {}, at(1))
    data = d.as_dict()
    assert data["since"] == at(0).isoformat()
    evidence = data["evidence"]
    assert isinstance(evidence, list)
    assert [(e["signal"], e["value"], e["rule"]) for e in evidence] == [
        ("x", 4.5, "x > 3"),
        ("y", 950, "y > 800"),
    ]


def series_of(values: Sequence[float | None]) -> list[tuple[float, Reading | None]]:
    """One reading a minute; None is an answer without data."""
    return [(m, Reading.nodata("x", at(m), "empty") if v is None else ok("x", v, m)) for m, v in enumerate(values)]


B, H, N = 5.0, 0.0, None  # breached, healthy, no data (for `x > 1`)

# trigger options, values a minute apart, statuses ('!' fired, '~' cleared)
POLICY_CASES = [
    # no_data: keep (default) never fires, whatever lasts
    ({}, [N] * 30, ["nodata"] * 30),
    # no_data: reset drops a pending `for`: Prometheus semantics
    (
        {"for": "3m", "no_data": "reset"},
        [B, B, N, B, B, B, B],
        ["pending"] * 2 + ["nodata"] + ["pending"] * 3 + ["firing!"],
    ),
    # no_data: breach after 3m of no data fires (once), and clears when healthy data returns
    (
        {"no_data": "breach", "no_data_for": "3m"},
        [H, N, N, N, N, N, H],
        ["ok", "nodata", "nodata", "nodata", "firing!", "firing", "ok~"],
    ),
    # no_data: hold: a visible HOLD, never an incident
    ({"no_data": "hold", "no_data_for": "2m"}, [H, N, N, N, N, H], ["ok", "nodata", "nodata", "hold", "hold", "ok"]),
    # breaches: 3 of 5 (cumulative, no data skipped)
    (
        {"breaches": "3 of 5"},
        [B, H, B, N, H, B, B],
        ["pending", "pending", "pending", "nodata", "pending", "firing!", "firing"],
    ),
    # the breach at minute 0 leaves the window of 5 at minute 5
    ({"breaches": "3 of 5"}, [B, H, H, H, H, H, B], ["pending"] * 5 + ["ok", "pending"]),
    # keep_firing_for damps a flapping signal: it fires once and clears once, after 5m healthy
    ({"keep_firing_for": "5m"}, [B, H, B, H, B, H, H, H, H, H, H], ["firing!"] + ["firing"] * 9 + ["ok~"]),
    # without it, the same signal flaps
    ({}, [B, H, B, H], ["firing!", "ok~", "firing!", "ok~"]),
    # fail_fast skips `for` on a catastrophic value
    ({"for": "10m", "fail_fast": "x > 100"}, [B, 500.0, 500.0], ["pending", "firing!", "firing"]),
    # ... and skips the N of M count too
    ({"breaches": "3 of 5", "fail_fast": "x > 100"}, [500.0], ["firing!"]),
]


@pytest.mark.parametrize(("options", "values", "expected"), POLICY_CASES, ids=[str(c[0]) for c in POLICY_CASES])
def test_policies(options: dict[str, object], values: list[float | None], expected: list[str]) -> None:
    assert run(trig(when="x > 1", **options), series_of(values)) == expected


def test_hold_and_sighted_are_announced_once_per_episode() -> None:
    trigger = trig(when="x > 1", no_data="hold", no_data_for="2m")
    state = TriggerState()
    blind, sighted = [], []
    for m, r in series_of([H, N, N, N, N, H, H, N, N, N]):
        d, state = step_trigger("t", trigger, state, {"x": r} if r else {}, {}, at(m))
        blind.append(d.blind)
        sighted.append(d.sighted)
    assert blind == [False, False, False, True, False, False, False, False, False, True]
    assert sighted == [False, False, False, False, False, True, False, False, False, False]


def test_fired_by_no_data_says_so() -> None:
    trigger = trig(when="x > 1", no_data="breach", no_data_for="1m")
    state = TriggerState()
    for m, r in series_of([N, N]):
        d, state = step_trigger("t", trigger, state, {"x": r} if r else {}, {}, at(m))
    assert d.fired and "counted as a breach" in d.note and d.as_dict()["note"] == d.note


@pytest.mark.parametrize(
    ("max_missing", "c", "gate", "score", "note"),
    [
        (0.3, None, "go", (0.4 * 0.92 + 0.35 * 0.96) / 0.75, "renormalised over 75% of the weight: c missing"),
        (0.2, None, None, None, "no score: c missing (25% of the weight; max_missing 20%)"),
        (0.3, 0.04, "go", 0.694, ""),
    ],
)
def test_kpi_tolerates_missing_metrics_up_to_max_missing(
    max_missing: float, c: float | None, gate: str | None, score: float | None, note: str
) -> None:
    trigger = trig(**KPI, max_missing=max_missing)
    latest = {"a": ok("a", 0.92), "b": ok("b", 0.96)} | ({"c": ok("c", c)} if c is not None else {})
    result = kpi_score(trigger, latest)
    assert result.gate == gate
    assert note in result.note
    assert result.score == (None if score is None else pytest.approx(score, abs=1e-3))


def test_records_built_without_their_constructor_are_whole() -> None:
    """Decisions, evidence and states are made without their dataclass constructor (`evaluate._frozen`, for
    speed): each has every field, and equals what the constructor makes of the same values."""
    triggers = [
        trig(all=["x > 3", "x jumps 50% within 5m"], fail_fast="x > 9", keep_firing_for="2m"),
        trig(when="x > 3", breaches="2 of 3", no_data="breach", no_data_for="1m"),
        trig(kpi={"x": 0.5, "y": -0.5}, hold_below=0.5, below=0.0, no_data="hold", no_data_for="1m"),
    ]
    values = [1.0, 4.0, 4.0, 12.0, None, 1.0, 1.0, 1.0, None, None, 2.0]
    for trigger in triggers:
        state, history = TriggerState(), {"x": [ok("x", 1.0, -1)]}
        for minute, value in enumerate(values):
            x = ok("x", value, minute) if value is not None else Reading.nodata("x", at(minute), "empty")
            history["x"].append(x)
            decision, state = step_trigger(
                "t", trigger, state, {"x": x, "y": ok("y", 0.2, minute)}, history, at(minute)
            )
            records: list[Decision | TriggerState | Evidence] = [decision, state, *decision.evidence]
            for record in records:
                names = [f.name for f in fields(record)]
                assert list(vars(record)) == names
                assert type(record)(**vars(record)) == record
