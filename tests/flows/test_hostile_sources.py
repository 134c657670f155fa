"""One poll group with hostile endpoints beside a healthy signal: each hostile one fails alone and is
announced as lost; the real fault on the healthy signal is detected in the same poll. Through the flows, on
SQLite and PostgreSQL."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from rollback_bot import flows
from rollback_bot.rules.polling import poll_groups
from tests.flows.conftest import Env
from tests.flows.test_watching import FATAL, SLOW, channel_events
from tests.metrics.hostile import HostileServer

HOSTILE = {  # signal: (route, json path)
    "deep": ("/deep", "value"),
    "trickle": ("/trickle", "value"),
    "huge": ("/huge", "value"),
    "loop": ("/redirect-loop", "value"),
    "latin1": ("/latin1", "value"),
    "flag": ("/ok", "flag"),
    "ratio": ("/ok", "ratio"),
    "silent": ("/silent", "value"),
}


@pytest.fixture
def hostile() -> Iterator[HostileServer]:
    box = HostileServer(hold=4)
    yield box
    box.close()


def test_hostile_endpoints_fail_alone_and_the_fault_beside_them_is_detected(env: Env, hostile: HostileServer) -> None:
    text = env.path.read_text()
    signals = "".join(
        f'  {name}: {{http: "{hostile.url}{route}", json: {path}, every: 30s, timeout: 2s}}\n'
        for name, (route, path) in HOSTILE.items()
    )
    text = text.replace("signals:\n", "signals:\n" + signals)
    text = text.replace(
        FATAL + SLOW, FATAL + SLOW + "  anything: {any: [" + ", ".join(f"{n} > 1e9" for n in HOSTILE) + "]}\n"
    )
    env.path.write_text(text)
    env = env.restart()

    def poll() -> float:
        started = time.monotonic()
        [group] = poll_groups(env.loaded.playbook)
        flows.poll(env.deps, env.loaded, list(group.signals), group=group)
        env.clock.advance(30)
        return time.monotonic() - started

    took = [poll(), poll()]
    assert env.incidents() == []
    env.metrics["errors"] = 0.5  # the real fault, on the healthy signal
    took.append(poll())
    [incident] = env.incidents()
    assert incident.trigger == "fatal", "detected in the same poll as the fault"
    assert max(took) < 10, took  # every read is bounded (2 s each, concurrently), never a hang
    lost = {e.details["signal"]: e.details["last_error"] for e in channel_events(env) if e.kind == "signal.lost"}
    lost |= {e.details["signal"]: e.details["last_error"] for e in env.events() if e.kind == "signal.lost"}
    assert set(lost) == set(HOSTILE) - {"errors"}
    assert "nested too deeply" in lost["deep"]
    assert "not complete within 2s" in lost["trickle"]
    assert "larger than 4 MiB" in lost["huge"]
    assert "redirects" in lost["loop"]
    assert "not UTF-8" in lost["latin1"]
    assert "boolean" in lost["flag"]
    assert "is a string" in lost["ratio"]
    assert "no answer within 2s" in lost["silent"]
    assert hostile.sent["/huge"] < 40 * 1024 * 1024
