"""Someone who holds one of an action's roles (its slot already filled) while the group of another cannot be
read is told their role cannot be checked, and it is recorded as such: not 'something went wrong'."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rollback_bot.clock import FakeClock
from rollback_bot.store.audit import timeline
from tests.flows.conftest import PLAYBOOK, TEMPLATES, answer_ok
from tests.helpers import FakeHTTP
from tests.slack.conftest import make_env
from tests.slack.fake_slack import FakeSlack


def test_a_filled_role_and_an_unreadable_group_is_role_unknown(
    tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock
) -> None:
    metrics: dict[str, Any] = {"errors": 0.0, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    fake_http.routes["/lock"] = answer_ok
    text = PLAYBOOK.format(url=fake_http.url, templates=TEMPLATES)
    text = text.replace("safety_lead: {users: [USAFE]}", "safety_lead: {users: [USAFE, UIC]}")
    text = text.replace("requires: [incident_commander]\n", "requires: [approver, safety_lead]\n", 1)
    (tmp_path / "test-release.yaml").write_text(text)
    fake_slack.groups["SAPPROVERS"] = ["UAPP1", "UIC"]
    fake_slack.fail["usergroups.users.list"] = [(500, {"ok": False, "error": "fatal_error"}, {})] * 1000
    env = make_env(f"sqlite:///{tmp_path}/slack.db", tmp_path, fake_slack, fake_http, clock, metrics)
    try:
        env.open_incident()
        assert env.click("approve:lock", "USAFE").status_code == 200  # fills safety_lead
        env.wait_for(lambda: fake_slack.ephemerals("USAFE"))  # clicks are worked after their 200: this one first
        answer = env.click("approve:lock", "UIC")  # safety_lead taken; approver cannot be checked
        assert answer.status_code == 200 and "Something went wrong" not in answer.text
        told = env.wait_for(lambda: fake_slack.ephemerals("UIC"))
        assert "cannot check your role" in told[-1].params["text"]
        with env.service.store.session() as s:
            mine = [e.kind for e in timeline(s, 1) if e.actor == "UIC"]
        assert mine == ["role.unknown"]
    finally:
        env.server.shutdown()
        env.service.close()
