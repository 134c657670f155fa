"""A rollout in Slack over real HTTP, on SQLite and PostgreSQL: one message per rollout kept current (stage,
sample, KPI, what is worse by segment, verdict and why, the buttons valid now), its events in the message's
thread, buttons and commands gated by role, a double click and a stale button, advance after a hold released,
and Roll back opening the incident on the ladder."""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlmodel import col, select

from rollback_bot.bootstrap import build_service
from rollback_bot.clock import FakeClock
from rollback_bot.config import Settings
from rollback_bot.httpio import serve_in_background
from rollback_bot.slack.http import make_http_server
from rollback_bot.store import Event, Incident, Store
from rollback_bot.store.verify import chains, verify_chain
from tests.helpers import FakeHTTP, loopback_session
from tests.rollout.test_flow import SHIPPED, World
from tests.slack.conftest import SECRET, TOKEN, SlackEnv
from tests.slack.fake_slack import Call, FakeSlack

CHANNEL = "#ml-release-ops"


class RolloutEnv(SlackEnv):
    world: World

    def message(self) -> Call:
        """The rollout's message as Slack now shows it: its last chat.update, else its post."""
        mine = [c for c in self.slack.of("chat.update") if "Rollout #" in str(c.params.get("text"))]
        return mine[-1] if mine else self.rollout_posts()[-1]

    def rollout_posts(self) -> list[Call]:
        return [
            c
            for c in self.slack.parents()
            if (c.params.get("metadata") or {}).get("event_type") == "rollback_bot_rollout"
        ]

    def button(self, action_id: str, user: str, stage: int | None = None) -> str:
        """Press a rollout button as shown now (or an older one, for `stage`): the clicker's answer."""
        shown = {b["action_id"]: b for b in self.message().buttons()}
        value: dict[str, Any] = {"r": 1, "s": stage if stage is not None else self.world.rollout().stage}
        if stage is None:
            assert action_id in shown, f"{action_id} is not on the message: {sorted(shown)}"
        before = len(self.slack.ephemerals(user))
        assert self.click(action_id, user, value=value).status_code == 200
        answers = self.wait_for(lambda: len(self.slack.ephemerals(user)) > before and self.slack.ephemerals(user))
        self.settle()
        return str(answers[-1].params["text"])

    def ask(self, text: str, user: str) -> str:
        answer = self.slash(text, user, channel=("CREL", "ml-release-ops"))
        assert answer.status_code == 200
        self.settle()
        return "\n".join(b["text"]["text"] for b in answer.json()["blocks"] if "text" in b)

    def observe(self, times: int) -> str:
        verdict = self.world.observe(times)
        self.settle()
        return verdict

    def thread(self) -> list[str]:
        """What people see in the thread of the rollout's message."""
        ts = self.rollout_posts()[-1].params.get("ts") or self.message().params.get("ts")
        channel = self.slack.channel_id(CHANNEL)
        return [str(m["text"]) for m in self.slack.visible(channel) if m.get("thread_ts") == ts and m["ts"] != ts]


@pytest.fixture
def rollout_env(store: Store, tmp_path: Path, fake_http: FakeHTTP, clock: FakeClock) -> Iterator[RolloutEnv]:
    slack = FakeSlack(
        groups={"S0ONCALL": ["URESP"]},
        names={"U0RM": "Rita", "U0SAFE": "Sam", "U0IC": "Ines", "URESP": "Rui", "UX": "Xavier"},
    )
    text = SHIPPED.read_text().replace("http://monitor.internal", fake_http.url)
    path = tmp_path / "playbooks" / "copilot-rollout.yaml"
    path.parent.mkdir()
    path.write_text(text.replace("http://deploy.internal", fake_http.url))
    (tmp_path / "templates").symlink_to(Path("templates").resolve())
    settings = Settings(
        slack_bot_token=SecretStr(TOKEN),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=slack.api_url,
        database_url=store.url,
        rollback_playbooks=str(path),
    )
    store.close()
    service = build_service(settings, clock=clock, http=loopback_session())
    server = make_http_server(service.wsgi(), "127.0.0.1", 0)
    serve_in_background(server)
    env = RolloutEnv(service, slack, fake_http, clock, f"http://127.0.0.1:{server.server_address[1]}", {}, settings)
    env.server = server
    env.world = World(service.deps, service.playbooks["copilot-rollout"], clock, fake_http)
    env.world.serve()
    yield env
    server.shutdown()
    service.close()
    slack.close()
    assert slack.problems == [], "every Block Kit payload must be valid"


def answered(env: RolloutEnv, user: str, n: int) -> bool:
    return len(env.slack.ephemerals(user)) >= n


def shows(env: RolloutEnv) -> tuple[str, list[str]]:
    msg = env.message()
    return msg.text_of_blocks(), [b["text"]["text"] for b in msg.buttons()]


def test_the_rollout_message_walks_the_seeds_scenario_with_its_buttons(rollout_env: RolloutEnv) -> None:
    env, w = rollout_env, rollout_env.world
    assert env.ask("rollout start copilot-rollout", "URESP") == (
        ":no_entry: Only release_manager may start this rollout."
    )
    assert env.ask("rollout start copilot-rollout", "U0RM") == "Rollout #1 of copilot-v2 started at 10%."
    env.wait_for(lambda: w.rollout().traffic == 10)
    env.settle()
    text, buttons = shows(env)
    assert "Rollout #1 \u00b7 support-copilot: copilot-v2 vs current" in text
    assert "*Running*, stage 1/4 at *10%* (traffic 10% confirmed)" in text
    assert "sample: waiting for the gate's first look (min 500)" in text
    assert buttons == ["Hold", "Roll back"]  # no advance before the gate says GO

    assert env.observe(1) == "NOT ENOUGH DATA"
    text, buttons = shows(env)
    assert ":hourglass_flowing_sand: *NOT ENOUGH DATA*" in text
    assert "In stage 5m (min 30m) \u00b7 sample 0 of 500 \u00b7 as of 09:05 UTC" in text, text
    assert buttons == ["Hold", "Roll back"]

    assert env.observe(6) == "GO"
    text, buttons = shows(env)
    assert ":large_green_circle: *GO*" in text
    kpi = "*KPI* (candidate minus baseline; hold below -0.02, roll back below -0.08)\n"
    assert kpi + ":white_check_mark: urgency=high: KPI " in text, text
    assert "*What is worse:* nothing, in any segment" in text
    assert "Diagnostics (shown, never decide): p95_latency_ms 420 vs baseline 420 (p=1)" in text
    assert buttons == ["Advance to 25%", "Hold", "Roll back"]

    # the button is shown to all; who may press it is checked on arrival, and the refusal recorded
    assert env.button("rollout_advance", "U0SAFE") == ":no_entry: Only release_manager may advance this rollout."
    assert env.button("rollout_advance", "U0RM") == ":white_check_mark: Advanced rollout #1 to 25%."
    assert env.button("rollout_advance", "U0RM", stage=0) == (  # a double click: the button was for stage 1
        ":no_entry: Rollout #1 is already at stage 2 (25%); that button was for stage 1"
    )
    assert (w.rollout().stage, len(w.events("rollout.advanced"))) == (1, 1)
    env.wait_for(lambda: w.rollout().traffic == 25)
    assert env.observe(7) == "GO"
    assert env.button("rollout_advance", "U0RM") == ":white_check_mark: Advanced rollout #1 to 50%."

    # 50%: overrides climb for urgent tickets only: HOLD, naming the segment, and the buttons change
    w.candidate = {"high": {"override_rate": 0.31, "incident_miss_rate": 0.06}}
    assert env.observe(13) == "HOLD"
    text, buttons = shows(env)
    assert ":double_vertical_bar: *HOLD*" in text
    assert ":double_vertical_bar: *Held* by the gate: release_manager or safety_lead investigate, then release" in text
    assert ":x: hold: urgency=high: override_rate 0.3" in text
    assert "override_rate higher than baseline by more than 0.05" in text
    worse = text.split("*What is worse, by segment:*")[1].split("Diagnostics")[0]
    assert "urgency=high" in worse and "urgency=normal" not in worse  # the segment that breaches is named
    assert buttons == ["Release hold", "Roll back"]
    status = env.ask("status", "U0IC")
    assert "*1 rollout(s) under way*" in status
    assert "*Rollout #1* `copilot-rollout` copilot-v2 vs current: stage 3/4 at 50% \u00b7 *held* by the gate" in status
    assert "Gate :double_vertical_bar: *HOLD*: urgency=high: override_rate" in status
    assert env.button("rollout_advance", "U0RM", stage=2) == (
        ":no_entry: Rollout #1 is held by gate; it does not advance"
    )

    # fixed and retested; released by the safety lead; the stage starts over and must earn its GO again
    w.candidate = {}
    assert env.button("rollout_release", "URESP") == (
        ":no_entry: Only release_manager or safety_lead may release this rollout."
    )
    assert env.button("rollout_release", "U0SAFE") == ":white_check_mark: Rollout #1 released."
    text, buttons = shows(env)
    assert "*Running*, stage 3/4 at *50%*" in text and buttons == ["Hold", "Roll back"]
    assert env.observe(13) == "GO"
    assert env.button("rollout_advance", "U0RM") == ":white_check_mark: Advanced rollout #1 to 100%."
    env.wait_for(lambda: w.rollout().traffic == 100)
    assert env.observe(14) == "GO"  # 5000 served: 13 growths of 400
    assert shows(env)[1] == ["Complete at 100%", "Hold", "Roll back"]
    assert env.button("rollout_advance", "U0RM") == ":white_check_mark: Rollout #1 complete."
    text, buttons = shows(env)
    assert ":white_check_mark: *Complete* at 100%" in text and buttons == []

    # one message for the rollout; its events in its thread, none posted twice; refusals kept out of Slack
    assert len(env.rollout_posts()) == 1
    thread = env.thread()
    posted = [c.params["metadata"]["event_payload"]["event_id"] for c in env.slack.thread()]
    assert len(posted) == len(set(posted)) == len(thread)  # no event posted twice
    assert sum("advanced to stage" in t for t in thread) == 3
    assert any("HOLD at stage 3: urgency=high: override_rate" in t for t in thread)
    assert any("released by U0SAFE as safety_lead" in t for t in thread)
    assert any("complete at 100% (U0RM as release_manager)" in t for t in thread)
    assert sum("may not" in t for t in thread) == 2  # each refusal once: U0SAFE's advance, URESP's release
    top = [str(m["text"]) for m in env.slack.visible(CHANNEL) if not m.get("thread_ts")]
    assert len(top) == 2 and "a rollout of copilot-v2: URESP may not start" in top[0]  # before there was a rollout
    assert not any("started at 10%" in t for t in thread)  # the message is that event
    with env.deps.store.session() as s:
        assert [e.actor for e in s.exec(select(Event).where(Event.kind == "rollout.denied"))] == [
            "URESP",
            "U0SAFE",
            "URESP",
        ]
        assert all(verify_chain(s, chain).ok for chain in chains(s))


def test_roll_back_opens_the_incident_on_the_ladder_once(rollout_env: RolloutEnv) -> None:
    env, w = rollout_env, rollout_env.world
    assert env.ask("rollout start", "U0RM") == "Rollout #1 of copilot-v2 started at 10%."
    assert env.observe(2) == "NOT ENOUGH DATA"
    assert env.button("rollout_rollback", "U0SAFE") == (
        ":no_entry: Only release_manager or incident_commander may roll back this rollout."
    )
    answer = env.button("rollout_rollback", "U0IC")
    assert answer == ":white_check_mark: Rollout #1 rolled back; incident #1 is on the ladder."
    assert env.button("rollout_rollback", "U0RM", stage=0) == ":no_entry: Rollout #1 is rolled back"
    env.wait_for(lambda: [r.body["percent"] for r in w.traffic_calls()] == ["10", "0"])
    env.settle()
    text, buttons = shows(env)
    assert ":rewind: *Rolled back* at" in text and "incident #1 is on the ladder" in text and buttons == []
    with env.deps.store.session() as s:
        [incident] = s.exec(select(Incident)).all()
        assert (incident.trigger, incident.status) == ("rollout-gate", "open")
    alerts = [c for c in env.slack.parents() if "incident #1" in str(c.params.get("text"))]
    assert len(alerts) == 1  # the incident's own alert, with its ladder
    assert env.ask("rollout", "U0RM").startswith("No rollout under way.")


def test_hostile_rollout_clicks_and_commands_change_nothing(rollout_env: RolloutEnv) -> None:
    env, w = rollout_env, rollout_env.world
    which = "Say which rollout (none under way), e.g. `/rollback rollout advance 3`."
    assert env.ask("rollout advance", "U0RM") == which
    assert env.ask("rollout start nope", "U0RM").startswith("No playbook with a rollout named `nope`.")
    assert env.ask("rollout launch", "U0RM").startswith("I don't know `rollout launch`.")
    assert env.ask("rollout start", "U0RM") == "Rollout #1 of copilot-v2 started at 10%."
    assert env.ask("rollout start", "U0RM").startswith(":no_entry: A rollout of copilot-rollout is already under way")
    assert env.ask("rollout hold 99999999999999999999", "U0RM").startswith("`99999999999999999999` is not a rollout")
    assert env.ask("rollout hold #7", "U0RM") == ":no_entry: There is no rollout #7 this bot runs"
    for value in ({"r": "1", "s": 0}, {"r": 1}, {"r": True, "s": 0}, {"r": 2**40, "s": 0}, {}):
        before = len(env.slack.ephemerals("U0RM"))
        assert env.click("rollout_hold", "U0RM", value=value).status_code == 200
        env.wait_for(partial(answered, env, "U0RM", before + 1))
    said = [c.params["text"] for c in env.slack.ephemerals("U0RM")]
    assert said.count(":no_entry: This button carries no rollout; use /rollback status") == 4
    assert said[-2] == ":no_entry: There is no rollout #1099511627776 this bot runs"
    assert w.rollout().status == "running"
    assert env.ask("rollout hold", "UX").startswith(":no_entry: Only release_manager or safety_lead may hold")
    assert env.ask("rollout hold 1", "U0SAFE") == "Rollout #1 held."
    assert env.ask("rollout hold 1", "U0RM") == ":no_entry: Rollout #1 is held by U0SAFE; nothing to hold"
    with env.deps.store.session() as s:
        kinds = [e.kind for e in s.exec(select(Event).order_by(col(Event.id)))]
    assert kinds.count("rollout.held") == 1 and kinds.count("rollout.denied") == 1
