"""The deployed shape as real processes: gunicorn with Bolt's WSGI adapter for Slack's requests, and
`rollback-bot serve --scheduler-only` as the scheduler (its own /healthz and /metrics); and `rollback-bot serve`
alone."""

from __future__ import annotations

import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import loopback_session
from tests.slack.conftest import SlackEnv, free_port, start, wait_until
from tests.slack.fake_slack import Call, FakeSlack

ROOT = Path(__file__).resolve().parents[2]


def client(url: str, slack: FakeSlack) -> SlackEnv:
    """Just enough of SlackEnv to sign requests to a server in another process."""
    env = SlackEnv.__new__(SlackEnv)
    env.url, env.slack = url, slack
    return env


@pytest.mark.slow
def test_gunicorn_workers_and_one_scheduler_process(deployment: dict[str, Any]) -> None:
    env, procs, slack = deployment["env"], deployment["procs"], deployment["slack"]
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent))
    assert gunicorn, "gunicorn is a dev dependency"
    port = free_port()
    scheduler = start([sys.executable, "-m", "rollback_bot.cli", "serve", "--scheduler-only"], env, procs)
    web = start(
        [gunicorn, "-c", str(ROOT / "bot" / "gunicorn.conf.py"), "--bind", f"127.0.0.1:{port}", "--workers", "2"],
        env,
        procs,
    )
    url = f"http://127.0.0.1:{port}"
    # the scheduler process polls, opens the incident, and posts the alert
    wait_until(lambda: slack.parents(), 30, "the alert", procs)
    parent = slack.parents()[0]
    assert "CRITICAL \u00b7 svc \u00b7 incident #1" in parent.text_of_blocks()
    session = loopback_session()
    wait_until(lambda: _ok(session, f"{url}/healthz"), 30, "gunicorn", procs)
    # Slack's requests go to gunicorn's workers
    c = client(url, slack)
    answer = c.slash("status", user="URESP")
    assert answer.status_code == 200
    assert "*#1* `test-release` critical: step 1/3 *Flag*" in Call("reply", answer.json()).text_of_blocks()
    assert c.click("ack", "URESP").status_code == 200
    wait_until(lambda: slack.ephemerals("URESP"), 15, "the ephemeral reply", procs)
    # the scheduler may update the alert too (watched values move); wait for the update the click caused
    wait_until(
        lambda: [u for u in slack.of("chat.update") if "acknowledged by <@URESP>" in u.text_of_blocks()],
        15,
        "the alert update",
        procs,
    )
    assert len(slack.parents()) == 1
    # /metrics adds up both workers' figures, whichever answers; the scheduler process has its own port
    apart = {"Connection": "close"}  # a connection each: the kernel spreads them over both workers
    for _ in range(40):
        assert session.get(f"{url}/healthz", timeout=5, headers=apart).status_code == 200
    counted = {_healthz_count(session.get(f"{url}/metrics", timeout=5, headers=apart).text) for _ in range(12)}
    assert len(counted) == 1 and counted.pop() >= 41, counted  # one total, not a worker's share
    own = session.get(f"http://127.0.0.1:{env['ROLLBACK_SCHEDULER_PORT']}/healthz", timeout=5).json()
    assert own["role"] == "leader" and own["polling"] == "ok" and 0 <= own["last_poll_age_s"] < 60
    theirs = session.get(f"http://127.0.0.1:{env['ROLLBACK_SCHEDULER_PORT']}/metrics", timeout=5).text
    assert "rollback_bot_scheduler_leader 1.0" in theirs
    assert re.search(r'rollback_bot_slack_syncs_total\{result="synced"\} [1-9]', theirs)
    assert re.search(r'rollback_bot_polls_total\{playbook="test-release",status="ok"\} [1-9]', theirs)
    for p in (web, scheduler):
        p.send_signal(signal.SIGTERM)
    for p in (scheduler, web):  # each stops cleanly; if not, its log says why
        try:
            code = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()
            code = p.wait()
        assert code == 0, (p.args, p.stdout.read()[-4000:] if p.stdout else "")
    assert slack.problems == []


@pytest.mark.slow
def test_serve_alone_runs_the_app_and_the_scheduler(deployment: dict[str, Any]) -> None:
    env, procs, slack = deployment["env"], deployment["procs"], deployment["slack"]
    port = free_port()
    env = {**env, "ROLLBACK_PORT": str(port)}
    serve = start([sys.executable, "-m", "rollback_bot.cli", "serve"], env, procs)
    url = f"http://127.0.0.1:{port}"
    session = loopback_session()
    wait_until(lambda: _ok(session, f"{url}/healthz"), 30, "serve", procs)
    wait_until(lambda: slack.parents(), 30, "the alert", procs)
    c = client(url, slack)
    answer = c.slash("note the payload service is down", user="URESP")
    assert answer.status_code == 200 and Call("reply", answer.json()).text_of_blocks() == "Note added"
    metrics = session.get(f"{url}/metrics", timeout=5).text
    assert re.search(r'rollback_bot_polls_total\{playbook="test-release",status="ok"\} [1-9]', metrics)
    serve.send_signal(signal.SIGTERM)
    assert serve.wait(timeout=30) == 0
    out = serve.stdout.read() if serve.stdout else ""
    assert "connected to Slack as rollback-bot" in out


def _healthz_count(metrics: str) -> float:
    found = re.search(r'rollback_bot_http_request_seconds_count\{path="/healthz",status="200"\} ([0-9.e+]+)', metrics)
    assert found, metrics
    return float(found.group(1))


def _ok(session: Any, url: str) -> bool:
    try:
        return bool(session.get(url, timeout=1).status_code == 200)
    except Exception:
        return False


def test_manifest_asks_for_exactly_the_scopes_the_code_uses() -> None:
    manifest = yaml.safe_load((ROOT / "bot" / "manifest.yaml").read_text())
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    history = {"channels:history", "groups:history"}  # the playbook's channel may be public or private
    needs: dict[str, set[str]] = {
        "chat_postMessage": {"chat:write"},
        "chat.postMessage": {"chat:write"},
        "chat_update": {"chat:write"},
        "chat.update": {"chat:write"},
        "chat_postEphemeral": {"chat:write"},
        "usergroups_users_list": {"usergroups:read"},
        "users_info": {"users:read"},
        "files_upload_v2": {"files:write"},
        "auth_test": set(),
        "conversations.history": history,
        "conversations.replies": history,
        "conversations.list": {"channels:read", "groups:read"},
    }
    source = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    called = (
        set(re.findall(r"client\.([a-z0-9_]+)\(", source))
        | set(re.findall(r'_call\(\s*"([a-z.]+)"', source))
        | set(re.findall(r'"(conversations\.[a-z]+)"', source))  # slack/lookup.py names them for its pager
    )
    assert called <= set(needs), f"unknown Slack methods in the code: {called - set(needs)}"
    assert scopes == {"commands"}.union(*(needs[m] for m in called))
    assert manifest["features"]["slash_commands"][0]["command"] == "/rollback"
    assert manifest["settings"]["interactivity"]["is_enabled"] is True
    assert manifest["features"]["slash_commands"][0]["url"].endswith("/slack/events")


def test_readme_help_and_manifest_name_every_scope_and_every_command() -> None:
    """What people read agrees with what the app asks for and takes: the README's list of scopes, the
    manifest's usage hint and `/rollback help`."""
    from rollback_bot.slack.blocks import HELP
    from rollback_bot.slack.commands import VERBS

    manifest = yaml.safe_load((ROOT / "bot" / "manifest.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    asks = readme[readme.index("It asks for") :][:600]
    for scope in manifest["oauth_config"]["scopes"]["bot"]:
        assert f"`{scope}`" in asks, scope
    hint = manifest["features"]["slash_commands"][0]["usage_hint"]
    for verb in VERBS:
        assert verb in hint, verb
        assert f"`/rollback {verb}" in HELP, verb
