"""A template that raises at incident time (edited since `check`, or raising only on real data) is
recorded as an error text; the ladder and the action's run go on."""

from __future__ import annotations

import shutil
from pathlib import Path

from rollback_bot import flows
from tests.flows.conftest import TEMPLATES, Env


def test_a_raising_comms_template_is_recorded_and_the_step_still_entered(env: Env, tmp_path: Path) -> None:
    copy = tmp_path / "templates"
    shutil.copytree(TEMPLATES, copy)
    env.path.write_text(env.path.read_text().replace(f"templates: {TEMPLATES}", f"templates: {copy}"))
    env = env.restart()
    (copy / "comms" / "internal-alert.md.j2").write_text("Alert\n{{ 1 / 0 }}\n")
    env.metrics["errors"] = 0.05
    env.poll()
    entered = env.last("step.entered")
    assert entered.details["comms"]["internal-alert"] == (
        "(could not render: template comms/internal-alert.md.j2 does not render: "
        "line 2: ZeroDivisionError: division by zero)"
    )


def test_a_raising_webhook_body_fails_the_action_with_the_reason(env: Env) -> None:
    env.path.write_text(env.path.read_text().replace('body: {svc: "{{ service }}"}', 'body: {svc: "{{ 1 // 0 }}"}'))
    env = env.restart()
    env.metrics["errors"] = 0.05
    env.poll()
    assert flows.approve(env.deps, 1, "lock", "UIC").ok
    failed = env.last("action.failed")
    assert failed.details["response"].startswith("TemplateProblem: body.svc does not render: ZeroDivisionError")
    assert env.http.posts("/lock") == []
