"""Socket Mode: with SLACK_APP_TOKEN set, `rollback-bot serve` takes Slack's requests over a WebSocket
(here a fake of Slack's endpoint on loopback) and acknowledges each envelope."""

from __future__ import annotations

import json
import queue
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.sync.server import Server, ServerConnection, serve

from tests.slack.conftest import TOKEN, start, wait_until
from tests.slack.fake_slack import Call, FakeSlack

pytestmark = pytest.mark.slow  # a Socket Mode server and subprocesses


class FakeSocketEndpoint:
    """Slack's side of Socket Mode: says hello, sends envelopes, collects the acknowledgements."""

    def __init__(self) -> None:
        self.outbox: queue.Queue[dict[str, Any]] = queue.Queue()
        self.acks: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self.server: Server = serve(self._session, "127.0.0.1", 0)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()  # websockets': no poll_interval

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.server.socket.getsockname()[1]}/link"

    def _session(self, ws: ServerConnection) -> None:
        ws.send(json.dumps({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        self.connected.set()
        reader = threading.Thread(target=self._read, args=(ws,), daemon=True)
        reader.start()
        while reader.is_alive():
            try:
                envelope = self.outbox.get(timeout=0.1)
            except queue.Empty:
                continue
            ws.send(json.dumps(envelope))

    def _read(self, ws: ServerConnection) -> None:
        try:
            for message in ws:
                self.acks.append(json.loads(message))
        except Exception:
            return

    def close(self) -> None:
        self.server.shutdown()


@pytest.fixture
def socket_endpoint() -> Iterator[FakeSocketEndpoint]:
    endpoint = FakeSocketEndpoint()
    yield endpoint
    endpoint.close()


def test_socket_mode_serves_commands_and_buttons(
    deployment: dict[str, Any], socket_endpoint: FakeSocketEndpoint
) -> None:
    env, procs = deployment["env"], deployment["procs"]
    slack: FakeSlack = deployment["slack"]
    slack.socket_url = socket_endpoint.url
    env = {k: v for k, v in env.items() if k != "SLACK_SIGNING_SECRET"}
    env["SLACK_APP_TOKEN"] = "xapp-1-A111-222-abcdef0123456789"
    serve_proc = start([sys.executable, "-m", "rollback_bot.cli", "serve"], env, procs)
    wait_until(socket_endpoint.connected.is_set, 30, "the Socket Mode connection", procs)
    assert slack.attempts("apps.connections.open"), "the socket URL comes from the (fake) Web API"
    wait_until(lambda: slack.parents(), 30, "the alert", procs)

    socket_endpoint.outbox.put(
        {
            "envelope_id": "env-1",
            "type": "slash_commands",
            "accepts_response_payload": True,
            "payload": {
                "command": "/rollback",
                "text": "note the payload service is down",
                "user_id": "URESP",
                "channel_id": "COPS",
                "channel_name": "ops",  # Slack sends both; without the name, the note raced the alert's stored channel
                "team_id": "T1",
                "response_url": f"{slack.url}/response/socket",
                "trigger_id": "1.2.3",
                "api_app_id": "A1",
            },
        }
    )
    ack = wait_until(
        lambda: [a for a in socket_endpoint.acks if a.get("envelope_id") == "env-1"], 15, "the ack", procs
    )[0]
    assert Call("reply", ack["payload"]).text_of_blocks() == "Note added"  # the reply rides on the ack

    socket_endpoint.outbox.put(
        {
            "envelope_id": "env-2",
            "type": "interactive",
            "accepts_response_payload": False,
            "payload": {
                "type": "block_actions",
                "user": {"id": "UX"},
                "team": {"id": "T1"},
                "api_app_id": "A1",
                "channel": {"id": "COPS"},
                "container": {"type": "message", "message_ts": "1001.000100"},
                "trigger_id": "1.2.3",
                "token": "legacy",
                "actions": [
                    {
                        "action_id": "ack",
                        "value": json.dumps({"i": 1}),
                        "type": "button",
                        "block_id": "incident-1-0",
                        "action_ts": "1.2",
                    }
                ],
            },
        }
    )
    wait_until(lambda: any(a.get("envelope_id") == "env-2" for a in socket_endpoint.acks), 15, "the ack", procs)
    denial = wait_until(lambda: slack.ephemerals("UX"), 15, "the refusal", procs)[0]
    assert denial.params["text"] == ":no_entry: Only incident_commander or responder may acknowledge this incident."
    serve_proc.send_signal(signal.SIGTERM)
    assert serve_proc.wait(timeout=30) == 0
    assert TOKEN.startswith("xoxb-") and slack.problems == []
