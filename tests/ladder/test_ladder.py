"""Ladder timing, approvals by distinct people in required roles, and staged actions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rollback_bot.ladder import Approved, StageRun, assign_role, missing_roles, next_stage, position
from rollback_bot.ladder.steps import next_boundary
from rollback_bot.playbook import load_playbook
from rollback_bot.playbook.models import ActionSpec

PB = load_playbook("playbooks/genai-release.yaml").playbook
H = timedelta(hours=1)


@pytest.mark.parametrize(
    ("elapsed", "index", "left"),
    [
        (timedelta(0), 0, 2 * H),
        (H + timedelta(minutes=59), 0, timedelta(minutes=1)),
        (2 * H, 1, 2 * H),  # windows are [start, end)
        (5 * H, 2, H),
        (11 * H, 3, H),
        (12 * H, 4, 6 * H),
        (23 * H, 5, H),
        (24 * H, None, None),  # the ladder is over
        (-H, 0, 2 * H),  # clock skew before opening counts as the start
    ],
)
def test_position(elapsed: timedelta, index: int | None, left: timedelta | None) -> None:
    pos = position(PB, elapsed)
    assert pos.index == index
    assert pos.time_left == left
    if index is not None and index < 5:
        assert pos.next_step is PB.ladder[index + 1]


def test_next_boundary() -> None:
    assert next_boundary(PB, -1) == timedelta(0)
    assert next_boundary(PB, 0) == 2 * H
    assert next_boundary(PB, 5) == 24 * H
    assert next_boundary(PB, 6) is None


TWO = ["approver", "safety_lead"]
CASES = [
    # requires, existing approvals, user, user's roles -> result, role, missing after
    (TWO, [], "U1", {"approver"}, "accepted", "approver", ("safety_lead",)),
    (TWO, [Approved("U1", "approver")], "U2", {"safety_lead"}, "accepted", "safety_lead", ()),
    (TWO, [Approved("U1", "approver")], "U1", {"approver", "safety_lead"}, "duplicate", "approver", ("safety_lead",)),
    (TWO, [Approved("U1", "approver")], "U3", {"approver"}, "denied", None, ("safety_lead",)),
    (TWO, [], "U9", set(), "denied", None, ("approver", "safety_lead")),
    (TWO, [Approved("U1", "approver"), Approved("U2", "safety_lead")], "U3", {"approver"}, "complete", None, ()),
    (["approver", "approver"], [Approved("U1", "approver")], "U2", {"approver"}, "accepted", "approver", ()),
    (
        ["approver", "approver"],
        [Approved("U1", "approver")],
        "U1",
        {"approver"},
        "duplicate",
        "approver",
        ("approver",),
    ),
    # one person holding both roles fills only one of them
    (TWO, [], "U4", {"approver", "safety_lead"}, "accepted", "approver", ("safety_lead",)),
]


@pytest.mark.parametrize(("requires", "existing", "user", "roles", "result", "role", "missing"), CASES)
def test_assign_role(requires, existing, user, roles, result, role, missing) -> None:
    outcome = assign_role(requires, existing, user, roles)
    assert (outcome.result, outcome.role if result != "denied" else None, outcome.missing) == (result, role, missing)


def test_denied_message_names_the_role_needed() -> None:
    outcome = assign_role(TWO, [Approved("U1", "approver")], "U3", {"responder"})
    assert outcome.message == "needs the role safety_lead"


def test_missing_roles_is_a_multiset_difference() -> None:
    assert missing_roles(["a", "a", "b"], [Approved("x", "a")]) == ("a", "b")


T0 = datetime(2026, 1, 1, tzinfo=UTC)
STAGED = ActionSpec.model_validate(
    {
        "id": "rb",
        "label": "Roll back",
        "requires": ["approver"],
        "stages": [1, 10, 100],
        "stage_every": "10m",
        "webhook": {"url": "http://x/rb"},
    }
)


@pytest.mark.parametrize(
    ("runs", "minute", "due"),
    [
        ([], 0, 1.0),
        ([StageRun(1, "running", None)], 30, None),  # one in flight: wait
        ([StageRun(1, "succeeded", T0)], 5, None),  # stage_every not yet passed
        ([StageRun(1, "succeeded", T0)], 10, 10.0),
        ([StageRun(1, "succeeded", T0), StageRun(10, "failed", T0)], 60, None),  # a failure stops the stages
        ([StageRun(1, "succeeded", T0), StageRun(10, "succeeded", T0), StageRun(100, "succeeded", T0)], 60, None),
    ],
)
def test_next_stage(runs: list[StageRun], minute: int, due: float | None) -> None:
    assert next_stage(STAGED, runs, T0 + timedelta(minutes=minute)) == due


def test_plain_action_has_one_stage() -> None:
    plain = STAGED.model_copy(update={"stages": None})
    assert next_stage(plain, [], T0) == 100.0
    assert next_stage(plain, [StageRun(100, "succeeded", T0)], T0) is None
