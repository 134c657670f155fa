"""Approvals bound to their evidence: before the action starts, an approval lapses when what it was given on
moves back as the playbook defines, when the trigger cleared, or when it is old; the approvers are told why
and asked again (escalated when the playbook says so). No data never makes an approval lapse."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import select

from rollback_bot import flows
from rollback_bot.export import export_text
from rollback_bot.playbook import PlaybookInvalid, load_playbook, parse_playbook
from rollback_bot.store import Approval
from rollback_bot.store.verify import chains, verify_chain
from tests.flows.conftest import Env

ROLLBACK = "        requires: [approver, safety_lead]\n        stages: [10, 100]\n"


def with_lapse(env: Env, lapse: str) -> None:
    """The test playbook, its roll back action given `lapse: {...}`; incidents open on this version."""
    text = env.path.read_text()
    assert ROLLBACK in text
    env.path.write_text(text.replace(ROLLBACK, f"{ROLLBACK}        lapse: {lapse}\n"))
    env.loaded = load_playbook(env.path)


def in_revert_step(env: Env) -> int:
    env.metrics["errors"] = 0.05
    env.poll()
    [incident] = env.incidents()
    assert incident.id is not None
    env.clock.advance(timedelta(hours=1))
    env.poll()  # still failing, as the scheduler keeps reading
    flows.tick(env.deps)
    return incident.id


def approvals(env: Env) -> list[tuple[str, str]]:
    with env.deps.store.session() as s:
        return [(a.user_id, a.role) for a in s.exec(select(Approval))]


EVIDENCE = "{after: 30m, when: [errors < 0.01], then: escalate, escalate: [incident_commander]}"


def test_an_approval_lapses_when_its_evidence_moves_back_and_the_approver_is_asked_again(env: Env) -> None:
    with_lapse(env, EVIDENCE)
    iid = in_revert_step(env)
    first = flows.approve(env.deps, iid, "rollback", "UAPP1")
    assert first.ok and first.message == "Approved 'Roll back' as approver; still needs safety_lead."
    env.clock.advance(timedelta(minutes=5))
    env.metrics["errors"] = 0.001  # recovering on its own: what Ada approved on no longer holds
    env.poll()
    flows.tick(env.deps)
    lapsed = env.last("approval.lapsed", iid)
    assert lapsed.summary == (
        "Ada (UAPP1)'s approval of 'Roll back' as approver lapsed: errors is 0.001 now, was 0.05 when it was "
        "given (errors < 0.01 holds now); approve again if it still stands (escalated to incident_commander)"
    )
    assert lapsed.details["mentions"] == ["UAPP1", "UIC"] and lapsed.details["rule"] == "errors < 0.01"
    assert lapsed.details["given_on"]["errors"]["value"] == 0.05
    assert approvals(env) == []
    second = flows.approve(env.deps, iid, "rollback", "USAFE")
    assert second.message == "Approved 'Roll back' as safety_lead; still needs approver."
    assert env.http.posts("/rollback") == []  # nothing ran on the withdrawn approval
    flows.tick(env.deps)
    assert env.kinds(iid).count("approval.lapsed") == 1  # withdrawn once; the new one stands
    with env.deps.store.session() as s:
        assert all(verify_chain(s, chain).ok for chain in chains(s, iid))
    # the post-mortem keeps who approved, when and on what, and why it lapsed
    doc = json.loads(export_text(env.deps.store, iid, "json")[0])
    [ada, sam] = doc["approvals"]
    assert (ada["user"], ada["role"], sam["user"], sam["lapsed"]) == ("UAPP1", "approver", "USAFE", None)
    assert ada["evidence"]["errors"]["value"] == 0.05
    assert ada["lapsed"]["reason"].startswith("errors is 0.001 now, was 0.05 when it was given")
    assert ada["at"] < ada["lapsed"]["at"]
    markdown = export_text(env.deps.store, iid, "md")[0]
    assert "| Roll back | Ada (UAPP1) | approver (lapsed " in markdown
    assert ": errors is 0.001 now, was 0.05 when it was given (errors < 0.01 holds now)) |" in markdown


def test_the_approval_that_would_complete_it_finds_the_earlier_one_lapsed(env: Env) -> None:
    with_lapse(env, EVIDENCE)
    iid = in_revert_step(env)
    assert flows.approve(env.deps, iid, "rollback", "UAPP1").ok
    env.metrics["errors"] = 0.002
    env.poll()  # no tick in between: the second click itself finds it
    second = flows.approve(env.deps, iid, "rollback", "USAFE")
    assert second.ok and not second.complete
    assert second.message == (
        "Approved 'Roll back' as safety_lead; still needs approver. An earlier approval lapsed: errors is 0.002 "
        "now, was 0.05 when it was given (errors < 0.01 holds now)."
    )
    assert env.http.posts("/rollback") == []
    assert approvals(env) == [("USAFE", "safety_lead")]


def test_no_data_never_makes_an_approval_lapse(env: Env) -> None:
    with_lapse(env, EVIDENCE)
    iid = in_revert_step(env)
    assert flows.approve(env.deps, iid, "rollback", "UAPP1").ok
    env.http.routes["/kpi"] = lambda rec: (500, {"error": "down"})
    for _ in range(3):
        env.clock.advance(timedelta(seconds=30))
        env.poll()
        flows.tick(env.deps)
    assert "approval.lapsed" not in env.kinds(iid)
    assert approvals(env) == [("UAPP1", "approver")]


def test_an_old_approval_lapses_and_an_action_that_started_keeps_its_approvals(env: Env) -> None:
    with_lapse(env, EVIDENCE)
    iid = in_revert_step(env)
    assert flows.approve(env.deps, iid, "rollback", "UAPP1").ok
    env.clock.advance(timedelta(minutes=31))
    flows.tick(env.deps)
    lapsed = env.last("approval.lapsed", iid)
    assert "lapsed: given 31m ago; approvals of this action lapse after 30m; approve again" in lapsed.summary
    # approved again by both: the action starts, and from then on nothing it was approved on lapses
    assert flows.approve(env.deps, iid, "rollback", "UAPP2").ok
    done = flows.approve(env.deps, iid, "rollback", "USAFE")
    assert done.ok and done.complete
    assert len(env.http.posts("/rollback")) == 1
    env.metrics["errors"] = 0.0
    env.poll()
    env.clock.advance(timedelta(minutes=40))
    flows.tick(env.deps)
    assert env.kinds(iid).count("approval.lapsed") == 1
    assert [p.body["percent"] for p in env.http.posts("/rollback")] == ["10", "100"]


def test_an_approval_lapses_when_the_trigger_clears(env: Env) -> None:
    with_lapse(env, "{trigger_cleared: true, after: null}")
    iid = in_revert_step(env)
    assert flows.approve(env.deps, iid, "rollback", "UAPP1").ok
    env.clock.advance(timedelta(hours=5))  # no age limit
    flows.tick(env.deps)
    assert "approval.lapsed" not in env.kinds(iid)
    env.metrics["errors"] = 0.0  # fatal (errors > 0) clears
    env.poll()
    flows.tick(env.deps)
    lapsed = env.last("approval.lapsed", iid)
    assert "lapsed: trigger fatal has cleared since it was given; approve again if it still stands" in lapsed.summary
    assert lapsed.details["mentions"] == ["UAPP1"]


def test_by_default_an_approval_lapses_after_two_hours(env: Env) -> None:
    iid = in_revert_step(env)
    assert flows.approve(env.deps, iid, "rollback", "UAPP1").ok
    env.clock.advance(timedelta(hours=1, minutes=59))
    flows.tick(env.deps)
    assert "approval.lapsed" not in env.kinds(iid)
    env.clock.advance(timedelta(minutes=1))
    flows.tick(env.deps)
    assert "lapse after 2h" in env.last("approval.lapsed", iid).summary


def test_check_names_unknown_signals_and_roles_in_lapse(tmp_path: Path) -> None:
    text = """\
name: x
service: s
channel: "#ops"
roles:
  approver: {users: [U1]}
signals:
  errors: {http: "http://127.0.0.1:9/kpi", json: errors, every: 30s}
triggers:
  fatal: {when: errors > 0}
ladder:
  - name: Revert
    window: 0h-1h
    actions:
      - id: rollback
        label: Roll back
        requires: [approver]
        webhook: {url: "http://127.0.0.1:9/rollback"}
        lapse: {when: [eror < 0.01], then: escalate, escalate: [sre]}
"""
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook(text, "x.yaml")
    said = [str(e) for e in exc.value.errors]
    assert "x.yaml:18: lapse uses unknown signal 'eror'; define it under signals" in said, said
    assert "x.yaml:18: role 'sre' is used but not defined under roles" in said, said
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook(text.replace("escalate: [sre]", "after: 1h"), "x.yaml")
    said = [str(e) for e in exc.value.errors]
    assert any("then: escalate needs escalate: [roles]" in e for e in said), said
    with pytest.raises(PlaybookInvalid) as exc:
        parse_playbook(text.replace("then: escalate, escalate: [sre]", "after: 0s"), "x.yaml")
    said = [str(e) for e in exc.value.errors]
    assert any("after must be positive (or null: approvals never lapse by age)" in e for e in said), said
