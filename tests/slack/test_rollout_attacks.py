"""Attacks on a rollout's Slack path, over real HTTP with signed requests, on SQLite and PostgreSQL: racing
clicks (in one process, and as if each were served by another replica), the gate's look racing people's
clicks, Slack losing, refusing or sitting on the answers of the rollout's posts, replayed signed clicks, and
malformed button values. What is lost, duplicated or wrongly allowed is counted; every count must be zero."""

from __future__ import annotations

import dataclasses
import itertools
import json
import threading
import time
import urllib.parse
from collections import Counter, defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_sdk.http_retry import builtin_handlers
from sqlmodel import col, select

from rollback_bot.flows import rollout as flow
from rollback_bot.flows.views import build_rollout_view
from rollback_bot.slack.blocks import thread_event
from rollback_bot.slack.rollout_message import rollout_message
from rollback_bot.slack.sync import ROLLOUT_POST
from rollback_bot.store import Event, Incident
from rollback_bot.store.models import Rollout
from rollback_bot.store.verify import chains, verify_chain
from tests.slack import test_rollout_message
from tests.slack.test_rollout_message import CHANNEL, RolloutEnv

rollout_env = test_rollout_message.rollout_env  # the fixture: a rollout over real HTTP, on SQLite and PostgreSQL

_TRIGGERS = itertools.count(1)
ACTIONS = ("rollout_advance", "rollout_hold", "rollout_release", "rollout_rollback")


# --- requests ---------------------------------------------------------------------------------------------
def click_body(action_id: str, user: str, value: str) -> str:
    """A signed-to-be block_actions body, as Slack posts it, carrying `value` exactly as given."""
    payload = {
        "type": "block_actions",
        "team": {"id": "T1"},
        "user": {"id": user, "name": user.lower()},
        "api_app_id": "A1",
        "token": "legacy",
        "trigger_id": f"7.7.{next(_TRIGGERS)}",  # Slack's are unique, so are the signatures
        "container": {"type": "message", "message_ts": "1001.000100", "channel_id": "CMLRELEASEOPS"},
        "channel": {"id": "CMLRELEASEOPS", "name": "ml-release-ops"},
        "response_url": "",
        "actions": [
            {"action_id": action_id, "block_id": "rollout-1", "type": "button", "value": value, "action_ts": "1.2"}
        ],
    }
    return urlencode({"payload": json.dumps(payload)})


def button(stage: int, rollout: int = 1) -> str:
    return json.dumps({"r": rollout, "s": stage}, separators=(",", ":"))


def at_once(env: RolloutEnv, bodies: list[str], timestamp: int | None = None) -> list[int]:
    """Send the signed bodies together (a barrier releases them at once); their HTTP statuses."""
    barrier = threading.Barrier(len(bodies))

    def send(body: str) -> int:
        barrier.wait(timeout=10)
        return env.signed(body, timestamp=timestamp).status_code

    with ThreadPoolExecutor(len(bodies)) as pool:
        return list(pool.map(send, bodies))


def answers(env: RolloutEnv, user: str, before: int, expected: int) -> list[str]:
    """The ephemeral answers `user` got since `before`, once there are `expected` of them, with all the work
    the clicks queued done (traffic webhooks, Slack syncs)."""
    env.wait_for(lambda: len(env.slack.ephemerals(user)) >= before + expected)
    env.service.drain()
    env.settle()
    said = [str(c.params["text"]) for c in env.slack.ephemerals(user)[before:]]
    assert len(said) == expected, said  # one answer per click, none twice
    return said


def answered(env: RolloutEnv, user: str) -> int:
    return len(env.slack.ephemerals(user))


# --- what the timeline says happened, replayed ------------------------------------------------------------
def rollout_events(env: RolloutEnv, rollout_id: int = 1) -> list[Event]:
    with env.deps.store.session() as s:
        events = s.exec(select(Event).where(col(Event.kind).startswith("rollout.")).order_by(col(Event.id)))
        return [e for e in events if e.details.get("rollout") == rollout_id]


def kinds(env: RolloutEnv, rollout_id: int = 1) -> Counter[str]:
    return Counter(e.kind for e in rollout_events(env, rollout_id))


def assert_consistent(env: RolloutEnv, rollout_id: int = 1) -> Rollout:
    """Replay the rollout's events from its start: each is allowed in the state the ones before left, every
    verdict is recorded against the stage the rollout was at, a HOLD while running holds it at once, nothing
    un-holds it but a release, and the row ends exactly where the replay does. Every chain verifies."""
    stage, status, verdict, gate_hold_owed = 0, "running", "", False
    for ev in rollout_events(env, rollout_id):
        kind, at_stage = ev.kind.removeprefix("rollout."), ev.details.get("stage")
        if kind in ("started", "traffic", "denied"):
            continue
        assert not gate_hold_owed or kind == "held", f"a HOLD of the gate was not followed by its hold: {ev.summary}"
        if kind == "verdict":
            assert status in ("running", "held") and at_stage == stage, ev.summary
            verdict = ev.details["verdict"]
            gate_hold_owed = status == "running" and verdict == "HOLD"
        elif kind == "advanced":
            assert (status, verdict) == ("running", "GO"), f"advanced while {status}/{verdict}: {ev.summary}"
            stage, verdict = stage + 1, ""
            assert at_stage == stage, ev.summary
        elif kind == "completed":
            assert (status, verdict) == ("running", "GO"), ev.summary
            status = "complete"
        elif kind == "held":
            assert status == "running" and at_stage == stage, f"held while {status}: {ev.summary}"
            assert not gate_hold_owed or "held by the gate" in ev.summary, ev.summary
            status, gate_hold_owed = "held", False
        elif kind == "released":
            assert status == "held" and at_stage == stage, f"released while {status}: {ev.summary}"
            status, verdict = "running", ""
        elif kind == "rolled_back":
            assert status in ("running", "held"), f"rolled back while {status}: {ev.summary}"
            status = "rolled_back"
        else:
            raise AssertionError(f"unexpected rollout event {ev.kind}: {ev.summary}")
    with env.deps.store.session() as s:
        ro = s.get(Rollout, rollout_id)
        assert ro is not None
        assert (ro.stage, ro.status, ro.verdict) == (stage, status, verdict)
        if ro.status == "running":
            assert ro.held_by is None
        if ro.status == "held":
            assert ro.held_by is not None
        assert all(verify_chain(s, chain).ok for chain in chains(s))
        return ro


def to_go(env: RolloutEnv) -> None:
    """A rollout under way at 10%, the gate saying GO."""
    assert flow.start(env.deps, env.world.loaded, "U0RM").ok
    assert env.world.observe(7) == "GO"
    env.service.drain()
    env.settle()


# --- 1. racing clicks -------------------------------------------------------------------------------------
def test_racing_clicks_change_the_rollout_once(rollout_env: RolloutEnv, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each race twice: in one process, then as if each click were served by a replica of its own (no lock of
    this process shared: only the database's compare-and-set keeps them apart)."""
    env, w = rollout_env, rollout_env.world
    one_process, lock = [True], env.deps.lock
    monkeypatch.setattr(env.deps, "lock", lambda playbook: lock(playbook) if one_process[0] else threading.RLock())

    # six `/rollback rollout start` at once: one rollout, one traffic call at 10%, and each asker told which
    barrier = threading.Barrier(6)

    def start(user: str) -> str:
        barrier.wait(timeout=10)
        answer = env.slash("rollout start copilot-rollout", user, channel=("CREL", "ml-release-ops"))
        assert answer.status_code == 200
        return str(answer.json()["text"])

    with ThreadPoolExecutor(6) as pool:
        said = list(pool.map(start, ["U0RM"] * 6))
    assert said.count("Rollout #1 of copilot-v2 started at 10%.") == 1, said
    assert said.count(":no_entry: A rollout of copilot-rollout is already under way; see /rollback status") == 5
    env.service.drain()
    assert kinds(env) == {"rollout.started": 1, "rollout.traffic": 1}
    assert w.observe(7) == "GO"
    env.service.drain()
    env.settle()

    # eight Advance clicks on the same message at once: one advance, one traffic call for the new percent
    for one_process[0], stage, percent in ((True, 0, 25), (False, 1, 50)):
        before = answered(env, "U0RM")
        assert at_once(env, [click_body("rollout_advance", "U0RM", button(stage)) for _ in range(8)]) == [200] * 8
        said = answers(env, "U0RM", before, 8)
        assert said.count(f":white_check_mark: Advanced rollout #1 to {percent}%.") == 1, said
        assert all(s.startswith(":no_entry: Rollout #1 ") for s in said if not s.startswith(":white_check_mark:"))
        assert kinds(env)["rollout.advanced"] == stage + 1
        ro = assert_consistent(env)
        assert (ro.stage, ro.traffic) == (stage + 1, percent)
        if stage == 0:
            assert w.observe(7) == "GO"

    # Hold and Release pressed together, four each: every success is one event, each allowed where it happened
    for one_process[0] in (True, False):
        counted, hold, release = kinds(env), answered(env, "U0RM"), answered(env, "U0SAFE")
        bodies = [click_body("rollout_hold", "U0RM", button(2)) for _ in range(4)]
        bodies += [click_body("rollout_release", "U0SAFE", button(2)) for _ in range(4)]
        assert at_once(env, bodies) == [200] * 8
        said = answers(env, "U0RM", hold, 4) + answers(env, "U0SAFE", release, 4)
        done = Counter(s for s in said if s.startswith(":white_check_mark:"))
        counted = kinds(env) - counted
        assert sum(done.values()) == counted["rollout.held"] + counted["rollout.released"], (said, counted)
        assert done[":white_check_mark: Rollout #1 held."] == counted["rollout.held"]
        assert done[":white_check_mark: Rollout #1 released."] == counted["rollout.released"]
        assert_consistent(env)

    # eight Roll back clicks at once: one rollback, one incident (the second rollout's joins it), one call at 0%
    for one_process[0], stage in ((True, 2), (False, 0)):
        if stage == 0:  # a second rollout (its id: PostgreSQL's sequence kept the numbers the lost starts took)
            assert flow.start(env.deps, w.loaded, "U0RM").ok
        rollout_id = w.rollout().id or 0
        before = answered(env, "U0IC")
        bodies = [click_body("rollout_rollback", "U0IC", button(stage, rollout_id)) for _ in range(8)]
        assert at_once(env, bodies) == [200] * 8
        said = answers(env, "U0IC", before, 8)
        assert said.count(f":white_check_mark: Rollout #{rollout_id} rolled back; incident #1 is on the ladder.") == 1
        refused = [s for s in said if not s.startswith(":white_check_mark:")]
        assert all(s.startswith(f":no_entry: Rollout #{rollout_id} ") for s in refused), said
        assert kinds(env, rollout_id)["rollout.rolled_back"] == 1
        assert assert_consistent(env, rollout_id).status == "rolled_back"
    with env.deps.store.session() as s:
        assert len(s.exec(select(Incident)).all()) == 1
        assert len(s.exec(select(Event).where(Event.kind == "incident.opened")).all()) == 1
    calls = [(c.headers["Idempotency-Key"].split("/rollout/")[1], c.body["percent"]) for c in w.traffic_calls()]
    n = rollout_id
    assert calls == [("1/10", "10"), ("1/25", "25"), ("1/50", "50"), ("1/0", "0"), (f"{n}/10", "10"), (f"{n}/0", "0")]


# --- 2. the gate's look racing people ---------------------------------------------------------------------
def look(env: RolloutEnv) -> str | None:
    """One look of the gate, five minutes after the last; its verdict (None: nothing under way)."""
    env.clock.advance(300)
    decision = flow.observe(env.deps, env.world.loaded)
    env.service.drain()
    env.settle()
    return decision.verdict if decision is not None else None


def test_the_gates_look_racing_people_never_records_against_the_wrong_stage_nor_unholds(
    rollout_env: RolloutEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, w = rollout_env, rollout_env.world
    to_go(env)
    other = dataclasses.replace(env.deps, locks=defaultdict(threading.RLock))  # another replica, same database
    while_reading: list[Callable[[], Any]] = []  # what a person does while the gate reads the monitors
    before_claim: list[Callable[[], Any]] = []  # ... on another replica, between the gate's read of the row
    # and its compare-and-set

    def candidate(rec: Any) -> tuple[int, Any]:
        if while_reading:
            while_reading.pop(0)()
        return 200, w.document("copilot-v2")

    env.http.routes["/rollout/copilot-v2"] = candidate
    real_decide = flow.decide  # type: ignore[attr-defined]  # patched where the module looks it up

    def deciding(*args: Any, **kwargs: Any) -> Any:
        decision = real_decide(*args, **kwargs)
        if before_claim:
            person = threading.Thread(target=before_claim.pop(0))
            person.start()
            person.join(timeout=10)
        return decision

    monkeypatch.setattr(flow, "decide", deciding)

    def by_click(action_id: str, user: str, stage: int, said: str) -> Callable[[], None]:
        def press() -> None:
            before = answered(env, user)
            assert env.signed(click_body(action_id, user, button(stage))).status_code == 200
            assert env.wait_for(lambda: answered(env, user) > before and env.slack.ephemerals(user))[-1].params[
                "text"
            ] == (":white_check_mark: " + said)

        return press

    def on_replica(verb: str, user: str, stage: int) -> Callable[[], None]:
        def act() -> None:
            assert flow.act(other, env.service.playbooks, 1, verb, user, stage=stage).ok

        return act

    def verdicts() -> list[tuple[int, str]]:
        return [(e.details["stage"], e.details["verdict"]) for e in rollout_events(env) if e.kind == "rollout.verdict"]

    # the candidate's errors jump (the gate's verdict would change) while a person advances on another replica:
    # the look was of stage 1, so nothing it decided may be recorded against stage 2
    seen = verdicts()
    w.error_rate = 0.5
    before_claim.append(on_replica("advance", "U0RM", 0))
    assert look(env) != "GO"
    w.error_rate = 0.002
    ro = assert_consistent(env)
    assert (ro.stage, ro.verdict, verdicts()) == (1, "", seen)

    # a person holds on another replica while the gate decides: the hold stands, the look records nothing
    before_claim.append(on_replica("hold", "U0SAFE", 1))
    assert look(env) == "NOT ENOUGH DATA"
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, ro.verdict, verdicts()) == ("held", "U0SAFE", "", seen)

    # the next look records its verdict against stage 2, and leaves the hold as it is (no gate un-holds it)
    assert look(env) == "NOT ENOUGH DATA"
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, verdicts()) == ("held", "U0SAFE", [*seen, (1, "NOT ENOUGH DATA")])

    # released in Slack while the gate reads: its look is of the stage as released (it starts over)
    while_reading.append(by_click("rollout_release", "U0SAFE", 1, "Rollout #1 released."))
    assert look(env) == "NOT ENOUGH DATA"
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, ro.verdict) == ("running", None, "NOT ENOUGH DATA")

    # the gate holds on its own (overrides climb) ...
    w.candidate = {"high": {"override_rate": 0.31, "incident_miss_rate": 0.06}}
    for _ in range(12):
        if look(env) == "HOLD":
            break
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, ro.verdict) == ("held", "gate", "HOLD")

    # ... fixed; released on another replica while the gate looks again: released, never held again by that look
    w.candidate = {}
    before_claim.append(on_replica("release", "U0RM", 1))
    look(env)
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, ro.verdict) == ("running", None, "")

    # held in Slack while the gate reads: the person's hold stands whatever the gate says
    while_reading.append(by_click("rollout_hold", "U0RM", 1, "Rollout #1 held."))
    look(env)
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by) == ("held", "U0RM")

    # rolled back in Slack while the gate reads: the look records nothing more
    events = len(rollout_events(env))
    while_reading.append(
        by_click("rollout_rollback", "U0IC", 1, "Rollout #1 rolled back; incident #1 is on the ladder.")
    )
    assert look(env) is None
    assert assert_consistent(env).status == "rolled_back"
    assert [e.kind for e in rollout_events(env)[events:]] == ["rollout.rolled_back", "rollout.traffic"]
    assert not while_reading and not before_claim  # every race above happened


# --- 3. Slack losing, refusing or sitting on the answers of the rollout's posts ----------------------------
def rollout_messages(env: RolloutEnv) -> dict[int, list[dict[str, Any]]]:
    """The top-level messages of each rollout in its channel, as people see them."""
    found: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in env.slack.visible(CHANNEL):
        meta = m.get("metadata") or {}
        if "thread_ts" not in m and meta.get("event_type") == ROLLOUT_POST:
            found[int(meta["event_payload"]["rollout_id"])].append(m)
    return found


def blocks_of(message: dict[str, Any]) -> list[dict[str, Any]]:
    raw = message.get("blocks") or []
    return json.loads(raw) if isinstance(raw, str) else list(raw)


TROUBLES: list[dict[str, Any]] = [  # what happens to the rollout message's post, one rollout each
    {"lose": ["drop", "drop"]},  # done, the connection dropped before the answer; then a reply's too
    {"lose": ["500", "500"]},  # done, and Slack answered 500 (then to a reply too)
    {"fail": [(500, {"ok": False, "error": "internal_error"}, {})]},  # not done, 500
    {"fail": [(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "0"})] * 4},  # not done, past the retries
    {"lose": ["hang"]},  # done, and the answer came after the client gave up
]


def test_slack_losing_the_rollout_posts_gives_one_message_and_each_event_once(
    rollout_env: RolloutEnv, monkeypatch: pytest.MonkeyPatch
) -> None:
    env, slack, loaded = rollout_env, rollout_env.slack, rollout_env.world.loaded
    monkeypatch.setattr(builtin_handlers.random, "random", lambda: 0.0)  # type: ignore[attr-defined]  # the client's retries wait no jitter
    env.service.client.timeout = 1
    slack.hang_seconds = 1.2
    for rollout_id, trouble in enumerate(TROUBLES, start=1):
        slack.lose["chat.postMessage"] = list(trouble.get("lose", []))
        slack.fail["chat.postMessage"] = list(trouble.get("fail", []))
        assert flow.start(env.deps, loaded, "U0RM").ok  # its message is the next post
        env.service.drain()
        env.settle()
        assert env.world.observe(1) == "NOT ENOUGH DATA"
        assert flow.hold(env.deps, loaded, rollout_id, "U0SAFE").ok
        assert flow.hold(env.deps, loaded, rollout_id, "U0RM", held=False).ok
        env.service.drain()
        env.settle()
        for _ in range(3):  # the minute's catch-up; each gets past one lost answer
            env.service.sync.sync_all()
        assert not any(slack.lose.values()) and not any(slack.fail.values()), trouble  # each trouble happened
        assert flow.roll_back(env.deps, loaded, rollout_id, "U0IC").ok
        env.service.drain()
        env.settle()
    env.service.sync.sync_all()

    messages = rollout_messages(env)
    assert sorted(messages) == list(range(1, len(TROUBLES) + 1))
    for rollout_id, [message] in messages.items():  # one message per rollout, and each event once in its thread
        owed = [e for e in rollout_events(env, rollout_id) if e.kind != "rollout.started"]
        channel = slack.visible(CHANNEL)
        thread = [m for m in channel if m.get("thread_ts") == message["ts"] and m["ts"] != message["ts"]]
        assert [m["metadata"]["event_payload"]["event_id"] for m in thread] == [e.id for e in owed]
        assert [m["text"] for m in thread] == [thread_event(e).text for e in owed]
        assert Counter(e.kind for e in owed) == Counter(
            {
                "rollout.traffic": 2,
                "rollout.verdict": 1,
                "rollout.held": 1,
                "rollout.released": 1,
                "rollout.rolled_back": 1,
            }
        )
        with env.deps.store.session() as s:  # the message shows the rollout as it is now (but its 'updated' time)
            ro = s.get(Rollout, rollout_id)
            assert ro is not None and (ro.slack_ts, ro.slack_pending) == (message["ts"], False)
            now = rollout_message(build_rollout_view(s, ro, loaded.playbook, env.deps.now())).payload()
        assert (message["text"], blocks_of(message)[:-1]) == (now["text"], now["blocks"][:-1])
        assert ":rewind: *Rolled back*" in now["blocks"][1]["text"]["text"]
    assert len(slack.of("chat.postMessage")) == len(slack.visible())  # no post was made twice
    alerts = [m for m in slack.visible() if (m.get("metadata") or {}).get("event_type") == "rollback_bot_incident"]
    assert len(alerts) == 1  # the incident the first rollback opened, which the others joined


# --- 4 and 5. replayed signed clicks, malformed values ----------------------------------------------------
MALFORMED = [
    '{"r":"1","s":0}',
    '{"r":1,"s":"0"}',
    '{"r":1.0,"s":0}',
    '{"r":1,"s":0.0}',
    '{"r":1,"s":1e308}',
    '{"r":1e999,"s":0}',
    '{"r":1,"s":NaN}',
    '{"r":1,"s":-Infinity}',
    f'{{"r":{2**70},"s":0}}',
    f'{{"r":1,"s":{2**70}}}',
    f'{{"r":1,"s":{-(2**70)}}}',
    '{"r":-1,"s":0}',
    '{"r":0,"s":0}',
    '{"r":2,"s":0}',  # no such rollout
    '{"r":1,"s":-1}',
    '{"r":1,"s":4}',  # the playbook has stages 0..3
    '{"r":1,"s":99}',
    '{"r":1}',
    '{"s":0}',
    "{}",
    '{"r":null,"s":0}',
    '{"r":1,"s":null}',
    '{"r":true,"s":0}',
    '{"r":1,"s":false}',
    '{"r":[1],"s":0}',
    '{"r":{"r":1},"s":0}',
    '{"r":1,"s":0,"r":2}',  # the last key wins in JSON: rollout 2
    "[1,0]",
    '"{\\"r\\":1,\\"s\\":0}"',
    "1",
    "null",
    "",
    "not json",
    '{"r":1,"s":0',
    "9" * 1999,
    "[" * 1000 + "]" * 1000,
]


def test_replayed_and_malformed_clicks_change_the_rollout_at_most_once(rollout_env: RolloutEnv) -> None:
    env, w = rollout_env, rollout_env.world
    to_go(env)
    now = int(time.time())

    def thrice(action_id: str, user: str, stage: int) -> str:
        """One signed click sent three times at once: it acts once, and is answered; its body, to replay."""
        body, before = click_body(action_id, user, button(stage)), answered(env, user)
        assert at_once(env, [body] * 3, timestamp=now) == [200] * 3
        env.service.drain()
        env.settle()
        said = [str(c.params["text"]) for c in env.slack.ephemerals(user)[before:]]
        assert 1 <= len(said) <= 3 and sum(s.startswith(":white_check_mark:") for s in said) == 1, said
        return body

    def malformed(user: str, actions: tuple[str, ...]) -> None:
        """Every malformed value on each button: each click answered, none acts, nothing is recorded."""
        with env.deps.store.session() as s:
            was = s.get(Rollout, 1)
        events, traffic, before = len(rollout_events(env)), len(w.traffic_calls()), answered(env, user)
        bodies = [click_body(action_id, user, value) for action_id in actions for value in MALFORMED]
        with ThreadPoolExecutor(8) as pool:
            statuses = list(pool.map(lambda body: env.signed(body).status_code, bodies))
        assert statuses == [200] * len(bodies)
        said = answers(env, user, before, len(bodies))
        assert all(s.startswith(":no_entry: ") for s in said), [s for s in said if not s.startswith(":no_entry:")]
        with env.deps.store.session() as s:
            assert s.get(Rollout, 1) == was
        assert (len(rollout_events(env)), len(w.traffic_calls())) == (events, traffic)

    # 4. each signed click sent three times at once, and some again later, after other changes: once each
    thrice("rollout_advance", "U0RM", 0)
    hold = thrice("rollout_hold", "U0SAFE", 1)
    release = thrice("rollout_release", "U0RM", 1)
    for body in (hold, release, hold):
        assert env.signed(body, timestamp=now).status_code == 200
    env.service.drain()
    env.settle()
    counted = kinds(env)
    assert (counted["rollout.advanced"], counted["rollout.held"], counted["rollout.released"]) == (1, 1, 1)
    assert assert_consistent(env).status == "running"

    # 5. malformed values while the gate says GO (a good Advance, Hold or Roll back would act), then held (a
    # good Release would)
    assert w.observe(7) == "GO"
    env.settle()
    malformed("U0RM", ACTIONS)
    assert flow.hold(env.deps, w.loaded, 1, "U0RM").ok
    env.settle()
    malformed("U0SAFE", ("rollout_release",))
    shapes: list[dict[str, Any]] = [  # what Slack never sends: refused before any listener, never a 5xx
        {"action_id": "rollout_release", "value": 1},
        {"action_id": "rollout_release", "value": {"r": 1, "s": 1}},
        {"action_id": "rollout_release", "value": "x" * 2001},
        {"action_id": "rollout_release\n", "value": button(1)},
        {"action_id": "rollout_unhold", "value": button(1)},
    ]
    for action in shapes:
        payload = json.loads(urllib.parse.parse_qs(click_body("rollout_release", "U0SAFE", ""))["payload"][0])
        payload["actions"] = [{**payload["actions"][0], **action}]
        assert env.signed(urlencode({"payload": json.dumps(payload)})).status_code < 500
    env.service.drain()
    ro = assert_consistent(env)
    assert (ro.status, ro.held_by, ro.stage) == ("held", "U0RM", 1)

    # 4. again: a roll back sent three times, then the old release replayed
    thrice("rollout_rollback", "U0IC", 1)
    assert env.signed(release, timestamp=now).status_code == 200
    env.service.drain()
    env.settle()
    counted = kinds(env)
    assert (counted["rollout.held"], counted["rollout.released"], counted["rollout.rolled_back"]) == (2, 1, 1)
    assert assert_consistent(env).status == "rolled_back"
    assert [c.body["percent"] for c in w.traffic_calls()] == ["10", "25", "0"]
    with env.deps.store.session() as s:
        assert len(s.exec(select(Incident)).all()) == 1
