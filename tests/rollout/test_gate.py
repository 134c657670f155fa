"""The rollout gate's verdicts, table-driven: baseline and candidate readings per segment in, a decision out."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from rollback_bot.playbook.models import RolloutSpec
from rollback_bot.rollout.gate import Point, Version, decide, describe

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
ROLLOUT: dict[str, Any] = {
    "baseline": "current",
    "candidate": "copilot-v2",
    "sample": "served",
    "stages": [
        {"percent": 10, "min_duration": "30m", "min_sample": 500},
        {"percent": 50, "min_duration": "0s", "min_sample": 0},
    ],
    "advance": {"requires": ["release_manager"]},
    "webhook": {"url": "http://deploy/traffic"},
    "gate": {
        "kpi": {"resolution_score": 0.40, "sla_hit_rate": 0.35, "override_rate": -0.25},
        "hold_below": -0.02,
        "rollback_below": -0.08,
    },
    "guardrails": [{"signal": "error_rate", "worse": "higher", "by": 0.01}],
    "holds": [
        {"signal": "override_rate", "worse": "higher", "by": 0.05},
        {"signal": "drift_psi", "above": 0.25, "warn": 0.1},
    ],
    "diagnostics": ["p95_latency_ms"],
}
HEALTHY = {"resolution_score": 0.80, "sla_hit_rate": 0.95, "override_rate": 0.10, "error_rate": 0.002}
JITTER = [-0.004, 0.003, -0.001, 0.002, 0.0, -0.002, 0.004, -0.002]  # the same noise for both; sums to 0


def spec(**changes: Any) -> RolloutSpec:
    return RolloutSpec.model_validate({**ROLLOUT, **changes})


def series(
    signal: str, version: Version, value: float, *, segment: str = "", n: int = 8, noise: float = 1.0
) -> list[Point]:
    return [
        Point(signal, version, segment, T0 + timedelta(minutes=5 * (i + 1)), value + noise * JITTER[i % 8])
        for i in range(n)
    ]


def traffic(
    *,
    served: float = 1000,
    candidate: dict[str, float] | None = None,
    segments: dict[str, dict[str, float]] | None = None,
    n: int = 8,
    drift: float | None = 0.05,
    skip: Iterable[tuple[str, Version]] = (),
) -> list[Point]:
    """Readings of a stage: the baseline healthy, the candidate as given; `segments` reads the KPI signals per
    urgency (segment -> candidate values that differ from healthy)."""
    cand = {**HEALTHY, **(candidate or {})}
    skipped = set(skip)
    points = [
        Point("served", "candidate", "", T0 + timedelta(minutes=5 * i, seconds=1), served * i / n) for i in range(n + 1)
    ]
    for sig in HEALTHY:
        for version, values in (("baseline", HEALTHY), ("candidate", cand)):
            if (sig, version) in skipped:
                continue
            if segments and sig != "error_rate":
                for seg, changed in segments.items():
                    value = changed.get(sig, HEALTHY[sig]) if version == "candidate" else HEALTHY[sig]
                    points += series(sig, version, value, segment=seg, n=n)  # type: ignore[arg-type]
            else:
                points += series(sig, version, values[sig], n=n)  # type: ignore[arg-type]
    if drift is not None:
        points += series("drift_psi", "candidate", drift, n=n, noise=0)
    points += series("p95_latency_ms", "baseline", 420, n=n) + series("p95_latency_ms", "candidate", 455, n=n)
    return points


AT = T0 + timedelta(minutes=45)
CASES = [
    # (what, points, stage, now, verdict, words in the first reason)
    ("healthy after the minimum duration", traffic(), 0, AT, "GO", "every guardrail and hold within bounds"),
    (
        "healthy but the stage is young",
        traffic(served=2000),
        0,
        T0 + timedelta(minutes=20),
        "NOT ENOUGH DATA",
        "stage running",
    ),
    ("below the minimum sample", traffic(served=300), 0, AT, "NOT ENOUGH DATA", "sample 300 of 500"),
    (
        "below the minimum sample, even with a guardrail breached: never a rollback",
        traffic(served=300, candidate={"error_rate": 0.05}),
        0,
        AT,
        "NOT ENOUGH DATA",
        "sample 300 of 500",
    ),
    ("guardrail breached", traffic(candidate={"error_rate": 0.05}), 0, AT, "ROLLBACK", "error_rate 0.05 vs baseline"),
    ("override rate up", traffic(candidate={"override_rate": 0.2}), 0, AT, "HOLD", "override_rate 0.2 vs baseline 0.1"),
    (
        "KPI far under the rollback gate",
        traffic(candidate={"resolution_score": 0.55, "sla_hit_rate": 0.80}),
        0,
        AT,
        "ROLLBACK",
        "KPI",
    ),
    ("KPI just under the hold gate", traffic(candidate={"resolution_score": 0.74}), 0, AT, "HOLD", "KPI"),
    ("drift score above its hold threshold", traffic(drift=0.31), 0, AT, "HOLD", "drift_psi 0.31"),
    ("drift score in its warning band only", traffic(drift=0.15), 0, AT, "GO", "every guardrail"),
    (
        "one segment alone breaches",
        traffic(segments={"urgency=high": {"override_rate": 0.31}, "urgency=normal": {}}),
        0,
        AT,
        "HOLD",
        "urgency=high: override_rate 0.31 vs baseline 0.1",
    ),
    (
        "candidate missing for a KPI signal",
        traffic(skip=[("sla_hit_rate", "candidate")]),
        0,
        AT,
        "NOT ENOUGH DATA",
        "too few readings",
    ),
    ("too few readings to compare", traffic(n=2), 1, AT, "NOT ENOUGH DATA", "too few readings"),
    ("no drift readings at all", traffic(drift=None), 0, AT, "NOT ENOUGH DATA", "drift_psi: too few readings"),
]


@pytest.mark.parametrize(("what", "points", "stage", "now", "verdict", "words"), CASES, ids=[c[0] for c in CASES])
def test_verdicts(what: str, points: list[Point], stage: int, now: datetime, verdict: str, words: str) -> None:
    decision = decide(spec(), stage, T0, now, points)
    assert decision.verdict == verdict, decision.why
    assert words in decision.why[0]


def test_a_difference_the_noise_could_explain_is_no_go_and_no_hold() -> None:
    # override rate 0.16 vs 0.10 (past 'by 0.05'), but each version swings by +-0.2: not significant
    points = [p for p in traffic() if p.signal != "override_rate"]
    wild = [0.3, -0.2, 0.25, -0.3, 0.1, -0.15, 0.2, -0.2]
    for version, level in (("baseline", 0.10), ("candidate", 0.16)):
        points += [
            Point("override_rate", version, "", T0 + timedelta(minutes=5 * (i + 1)), level + wild[i])  # type: ignore[arg-type]
            for i in range(8)
        ]
    decision = decide(spec(), 0, T0, AT, points)
    assert decision.verdict == "NOT ENOUGH DATA"
    assert any("within noise" in why for why in decision.why)
    [rule] = [c for c in decision.of("hold") if c.signal == "override_rate"]
    assert rule.p_value is not None and rule.p_value > 0.05


def test_the_sample_is_the_counters_growth_in_the_stage_across_a_reset() -> None:
    points = [
        Point("served", "candidate", "", T0 + timedelta(minutes=m), v)
        for m, v in ((-5, 9000), (1, 10000), (10, 10300), (20, 50), (30, 400))
    ]
    decision = decide(spec(), 0, T0, AT, points)
    assert decision.sample == 300 + 50 + 350  # the reading before the stage does not count


def test_the_message_lines_name_segment_values_and_the_test() -> None:
    points = traffic(segments={"urgency=high": {"override_rate": 0.31}, "urgency=normal": {}})
    decision = decide(spec(), 0, T0, AT, points)
    [worst, *_] = decision.worse
    assert describe(worst).startswith("urgency=high: override_rate 0.31 vs baseline 0.1 (p=")
    assert describe(worst).endswith(": override_rate higher than baseline by more than 0.05")
    kpi = {c.segment: c for c in decision.of("kpi")}
    assert set(kpi) == {"urgency=high", "urgency=normal"}
    assert kpi["urgency=normal"].state == "ok" and kpi["urgency=high"].difference == pytest.approx(-0.0525)
    [diag] = decision.of("diagnostic")
    assert diag.baseline == pytest.approx(420) and diag.candidate == pytest.approx(455) and diag.state == "shown"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stages": [{"percent": 25}, {"percent": 10}]}, "stages must increase"),
        ({"stages": [{"percent": 120}]}, "less than or equal to 100"),
        ({"gate": {**ROLLOUT["gate"], "rollback_below": 0.1}}, "rollback_below must not be above hold_below"),
        ({"gate": {**ROLLOUT["gate"], "kpi": {"x": 0}}}, "kpi weight of 'x' is 0"),
        ({"holds": [{"signal": "x", "above": 0.1, "warn": 0.2}]}, "'warn' must be below 'above'"),
        ({"holds": [{"signal": "x", "worse": "higher"}]}, "'worse' (higher or lower) and 'by' go together"),
        ({"advance": {}}, "advance needs 'requires'"),
        ({"candidate": "current"}, "baseline and candidate must differ"),
    ],
)
def test_rollouts_that_cannot_work_are_refused(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        spec(**changes)


def test_points_outside_the_stage_do_not_count() -> None:
    early = [
        Point(p.signal, p.version, p.segment, p.at - timedelta(hours=3), p.value)
        for p in traffic(candidate={"error_rate": 0.05})
    ]
    decision = decide(spec(), 1, T0, AT, list(itertools.chain(early, traffic())))
    assert decision.verdict == "GO"
