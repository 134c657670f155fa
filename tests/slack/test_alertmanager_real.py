"""Debian's real Alertmanager sends its webhook to the bot: an alert pushed to it (API v2) opens the incident,
and once it is resolved the signal reads healthy. CI must run this; elsewhere it skips without the binary."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlmodel import select

from rollback_bot.clock import FakeClock
from rollback_bot.store.audit import timeline
from rollback_bot.store.models import AlertRow
from tests.helpers import FakeHTTP, loopback_session
from tests.prometheus import binary, free_port
from tests.slack.conftest import SlackEnv
from tests.slack.fake_slack import FakeSlack
from tests.slack.test_alertmanager import AM_TOKEN, am_env

pytestmark = pytest.mark.alertmanager

CONFIG = """\
route:
  receiver: bot
  group_by: [alertname, service]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: bot
    webhook_configs:
      - url: {url}/alertmanager
        send_resolved: true
        http_config:
          authorization:
            credentials: {token}
"""


@contextmanager
def alertmanager(work: Path, bot_url: str) -> Iterator[str]:
    """prometheus-alertmanager on loopback, sending to the bot; its URL once it is ready."""
    path = binary("prometheus-alertmanager", "prometheus-alertmanager")
    (work / "alertmanager.yml").write_text(CONFIG.format(url=bot_url, token=AM_TOKEN))
    port, log = free_port(), work / "alertmanager.log"
    proc = subprocess.Popen(
        [
            path,
            f"--config.file={work / 'alertmanager.yml'}",
            f"--storage.path={work / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",  # no gossip: one instance, no port of its own
            "--log.level=warn",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    url, session = f"http://127.0.0.1:{port}", loopback_session()
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if session.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail(f"alertmanager did not come up: {log.read_text()[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        session.close()


@pytest.fixture
def env(tmp_path: Path, fake_slack: FakeSlack, fake_http: FakeHTTP) -> Iterator[SlackEnv]:
    clock = FakeClock(datetime.now(UTC))  # Alertmanager's times are real ones
    e = am_env(tmp_path, fake_slack, fake_http, clock, f"sqlite:///{tmp_path}/am.db")
    yield e
    e.server.shutdown()
    e.service.close()
    assert fake_slack.problems == []


def push(am: str, starts: datetime, ends: datetime | None = None) -> None:
    """The alert, as Prometheus sends it to Alertmanager's API v2: its startsAt each time, and once it is over an
    endsAt, which resolves it."""
    doc: dict[str, Any] = {
        "labels": {"alertname": "ModelErrorRate", "service": "svc", "severity": "page"},
        "annotations": {"summary": "Error rate above 5%"},
        "generatorURL": "http://prometheus.test/graph?g0.expr=model_errors",
        "startsAt": starts.isoformat(),
    }
    if ends is not None:
        doc["endsAt"] = ends.isoformat()
    answer = loopback_session().post(f"{am}/api/v2/alerts", json=[doc], timeout=5)
    assert answer.status_code == 200, answer.text


def wait_for(check: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def stored_status(env: SlackEnv) -> str | None:
    """The status of the one alert the bot has stored, None before any."""
    with env.deps.store.session() as s:
        row = s.exec(select(AlertRow)).first()
        return row.status if row is not None else None


def poll_now(env: SlackEnv) -> None:
    env.clock.advance(datetime.now(UTC) - env.clock.now() + timedelta(milliseconds=1))
    env.poll()
    env.settle()


def test_alertmanager_sends_to_the_bot_which_opens_the_incident_and_reads_the_resolve(
    tmp_path: Path, env: SlackEnv
) -> None:
    with alertmanager(tmp_path, env.url) as am:
        started = time.monotonic()
        began = datetime.now(UTC) - timedelta(seconds=30)
        push(am, began)
        wait_for(lambda: stored_status(env) == "firing", "Alertmanager's webhook with the firing alert")
        poll_now(env)
        [parent] = env.slack.parents()
        assert (
            "CRITICAL" in parent.text_of_blocks()
            and "*What fired:* `alerted` Alertmanager says so: model_errors &gt; 0" in (parent.text_of_blocks())
        )
        fired = next(c.params["text"] for c in env.slack.thread() if c.params["text"].startswith("alerted fired"))
        assert 'ModelErrorRate{service="svc", severity="page"}: Error rate above 5%' in fired
        assert "(http://prometheus.test/graph?g0.expr=model_errors)" in fired

        push(am, began, ends=datetime.now(UTC))
        wait_for(lambda: stored_status(env) == "resolved", "Alertmanager's webhook with the resolved alert")
        poll_now(env)
        reading = env.deps.polled["test-release"]["model_errors"]
        assert reading.value == 0.0 and reading.detail.startswith("resolved at ")
        with env.deps.store.session() as s:
            kinds = [e.kind for e in timeline(s, 1)]
        assert "alert.resolved" in kinds and "signal.cleared" in kinds
        assert any(c.params["text"].startswith("model_errors = 0, resolved at") for c in env.slack.thread())
        assert time.monotonic() - started < 15
