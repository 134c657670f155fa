from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
import requests
from pydantic import SecretStr
from slack_sdk.signature import SignatureVerifier

from rollback_bot import flows
from rollback_bot.bootstrap import Service, build_service
from rollback_bot.clock import FakeClock
from rollback_bot.config import Settings
from rollback_bot.httpio import serve_in_background
from rollback_bot.slack.http import make_http_server
from rollback_bot.store import Store
from tests.flows.conftest import PLAYBOOK, TEMPLATES, answer_ok
from tests.helpers import FakeHTTP, loopback_session
from tests.slack.fake_slack import FakeSlack

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
_TRIGGERS = itertools.count(1)
TOKEN = "xoxb-1234-5678-abcdefghijkl"


@dataclass
class SlackEnv:
    service: Service
    slack: FakeSlack
    http: FakeHTTP
    clock: FakeClock
    url: str
    metrics: dict[str, Any]
    settings: Settings
    server: Any = None

    @property
    def deps(self) -> flows.Deps:
        return self.service.deps

    def poll(self) -> None:
        loaded = self.service.playbooks["test-release"]
        flows.poll(self.deps, loaded, list(loaded.playbook.signals))

    def open_incident(self) -> int:
        self.metrics["errors"] = 0.05
        self.poll()
        return 1

    def signed(
        self,
        body: str,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str = SECRET,
    ) -> requests.Response:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        signature = SignatureVerifier(secret).generate_signature(timestamp=ts, body=body)
        headers = {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature, "Content-Type": content_type}
        return loopback_session().post(f"{self.url}/slack/events", data=body.encode(), headers=headers, timeout=10)

    def slash(
        self, text: str, user: str = "URESP", channel: tuple[str, str] = ("COPS", "ops"), **kw: Any
    ) -> requests.Response:
        body = urlencode(
            {
                "token": "legacy",
                "team_id": "T1",
                "team_domain": "acme",
                "channel_id": channel[0],
                "channel_name": channel[1],
                "user_id": user,
                "user_name": user.lower(),
                "command": "/rollback",
                "text": text,
                "api_app_id": "A1",
                "response_url": f"{self.slack.url}/response/{len(self.slack.calls)}",
                "trigger_id": f"13345224609.{next(_TRIGGERS)}",  # Slack's are unique: so are the signatures
            }
        )
        return self.signed(body, **kw)

    def click(
        self,
        action_id: str,
        user: str,
        incident: int = 1,
        trigger_id: str | None = None,
        value: dict[str, Any] | None = None,
        **kw: Any,
    ) -> requests.Response:
        payload = {
            "type": "block_actions",
            "team": {"id": "T1"},
            "user": {"id": user, "name": user.lower()},
            "api_app_id": "A1",
            "token": "legacy",
            "trigger_id": trigger_id or f"1.2.{next(_TRIGGERS)}",
            "container": {"type": "message", "message_ts": "1001.000100", "channel_id": "COPS"},
            "channel": {"id": "COPS", "name": "ops"},
            "response_url": f"{self.slack.url}/response/click",
            "actions": [
                {
                    "action_id": action_id,
                    "block_id": "incident-1-0",
                    "type": "button",
                    "value": json.dumps(value if value is not None else {"i": incident}),
                    "action_ts": "1.2",
                }
            ],
        }
        return self.signed(urlencode({"payload": json.dumps(payload)}), **kw)

    def wait_for(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Listeners run after the acknowledgement; wait until what they do is visible."""
        deadline = time.monotonic() + timeout
        while True:
            result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                raise AssertionError("timed out waiting for the listener")
            time.sleep(0.02)

    def settle(self) -> None:
        """Let queued Slack syncs finish (listeners kick them before they reply)."""
        self.service.sync.flush()


def make_env(
    store_url: str,
    tmp_path: Path,
    slack: FakeSlack,
    http: FakeHTTP,
    clock: FakeClock,
    metrics: dict[str, Any],
    **extra: Any,
) -> SlackEnv:
    path = tmp_path / "test-release.yaml"
    if not path.exists():
        path.write_text(PLAYBOOK.format(url=http.url, templates=TEMPLATES))
    settings = Settings(
        slack_bot_token=SecretStr(TOKEN),
        slack_signing_secret=SecretStr(SECRET),
        slack_api_url=slack.api_url,
        database_url=store_url,
        rollback_playbooks=str(path),
        **{"slack_retry_backoff": timedelta(milliseconds=20), **extra},  # Slack outages without real waits
    )
    service = build_service(settings, clock=clock, http=loopback_session())
    server = make_http_server(service.wsgi(), "127.0.0.1", 0)
    serve_in_background(server)
    env = SlackEnv(
        service, slack, http, clock, f"http://127.0.0.1:{server.server_address[1]}", metrics, settings, server
    )
    return env


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    fake = FakeSlack(
        groups={"SAPPROVERS": ["UAPP1", "UAPP2"], "SONCALL": ["URESP"]},
        names={"UIC": "Ines", "UAPP1": "Ada", "UAPP2": "Ben", "USAFE": "Sam", "URESP": "Rui", "UX": "Xavier"},
    )
    yield fake
    fake.close()


@pytest.fixture
def slack_env(tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP, clock: FakeClock) -> Iterator[SlackEnv]:
    metrics: dict[str, Any] = {"errors": 0.0, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    fake_http.routes["/lock"] = answer_ok
    fake_http.routes["/rollback"] = answer_ok
    env = make_env(f"sqlite:///{tmp_path}/slack.db", tmp_path, fake_slack, fake_http, clock, metrics)
    yield env
    env.server.shutdown()
    env.service.close()
    assert fake_slack.problems == [], "every Block Kit payload must be valid"


ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until(check: Any, timeout: float, what: str, procs: list[subprocess.Popen[str]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        for p in procs:
            if p.poll() is not None:
                out = p.stdout.read() if p.stdout else ""
                raise AssertionError(f"{p.args!r} exited with {p.returncode} while waiting for {what}:\n{out}")
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def deployment(store: Store, tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP) -> Iterator[dict[str, Any]]:
    metrics = {"errors": 0.07, "latency": 300.0}
    fake_http.routes["/kpi"] = lambda rec: (200, metrics)
    fake_http.routes["/lock"] = answer_ok
    playbook = tmp_path / "test-release.yaml"
    playbook.write_text(PLAYBOOK.format(url=fake_http.url, templates=TEMPLATES))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "ROLLBACK_", "HTTP", "http"))}
    env.update(
        SLACK_BOT_TOKEN=TOKEN,
        SLACK_SIGNING_SECRET=SECRET,
        SLACK_API_URL=fake_slack.api_url,
        DATABASE_URL=store.url,
        ROLLBACK_PLAYBOOKS=str(playbook),
        PYTHONUNBUFFERED="1",
        SCHEDULER_LEASE="2s",  # a scheduler process killed by a test is followed by the next within 2 s
        SLACK_RETRY_BACKOFF="20ms",  # Slack outages without real waits
        ROLLBACK_SCHEDULER_PORT=str(free_port()),
    )
    store.close()
    procs: list[subprocess.Popen[str]] = []
    yield {"env": env, "procs": procs, "slack": fake_slack, "http": fake_http}
    for p in procs:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            p.kill()


def start(cmd: list[str], env: dict[str, str], procs: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    p = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(p)
    return p


__all__ = ["SlackEnv", "Store", "make_env"]
