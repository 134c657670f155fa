"""The post-mortem's Thresholds section: per trigger rule, the threshold, the value at fault onset, the first
breach and the peak; how close a trigger that did not fire came; a suggestion line."""

from __future__ import annotations

import json
from datetime import timedelta

from rollback_bot.export import export_text
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.playbook.models import Playbook
from rollback_bot.store import audit
from tests.flows.conftest import Env


def tiny_playbook(signal: str = "") -> Playbook:
    """One signal, `errors` (with `signal`'s further fields), one trigger on it, one step."""
    return parse_playbook(
        'name: x\nservice: s\nchannel: "#ops"\nroles: {incident_commander: {users: [U1]}, responder: {users: [U2]}}\n'
        f'signals:\n  errors: {{http: "http://127.0.0.1:9/k", json: errors, every: 1m{signal}}}\n'
        "triggers:\n  fatal: {when: errors > 0.02}\nladder:\n  - {name: Flag, window: 0h-1h}\n",
        "x.yaml",
    ).playbook


def test_thresholds_say_what_each_rule_saw_and_suggest(env: Env) -> None:
    env.metrics.update(errors=0.0, latency=600.0)
    env.poll()
    with env.deps.store.session() as s:  # a drill's fault, injected before the errors show
        audit.record(
            s,
            playbook="test-release",
            incident_id=None,
            kind="drill.fault",
            at=env.clock.now(),
            summary="fault injected",
            details={},
        )
        s.commit()
    for errors, latency in [(0.0, 700.0), (0.0, 760.0), (0.05, 790.0)]:
        env.clock.advance(timedelta(seconds=30))
        env.metrics.update(errors=errors, latency=latency)
        env.poll()
    [incident] = env.incidents()
    assert incident.id is not None
    doc = json.loads(export_text(env.deps.store, incident.id, "json")[0])
    rows = {t["trigger"]: t for t in doc["thresholds"]}
    fatal, slow = rows["fatal"], rows["slow"]
    assert (fatal["rule"], fatal["fired"], fatal["threshold"]) == ("errors > 0", True, 0.0)
    assert fatal["at_onset"]["value"] == 0.0 and fatal["first_breach"]["value"] == 0.05
    assert fatal["peak"]["value"] == 0.05
    assert fatal["suggestion"] == (  # errors were 0 before the fault too: no lower threshold tells them apart
        "first breached 1m30s after the fault's onset, but errors was already 0 before it: no threshold on errors "
        "alone fires sooner"
    )
    assert (slow["fired"], slow["peak"]["value"], slow["closest"]) == (False, 790.0, 0.9875)
    assert slow["first_breach"] is None
    assert slow["suggestion"].startswith("came within 1% of latency > 800 (peak 790); if this incident should have ")
    assert "latency > 750.5; check it first" in slow["suggestion"]
    markdown = export_text(env.deps.store, incident.id, "md")[0]
    assert "## Thresholds" in markdown
    assert "| slow | `latency > 800` | no | 600 | - | 790 at 2026-03-01 09:01:30 | came within 1% " in markdown, (
        markdown[markdown.index("## Thresholds") :][:900]
    )


def test_a_suggestion_to_fire_at_the_onset_when_a_threshold_would_tell_it_apart() -> None:
    from datetime import UTC, datetime

    from rollback_bot.export.thresholds import section

    pb = tiny_playbook()
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    values = [0.01, 0.01, 0.015, 0.017, 0.019, 0.02, 0.02, 0.021, 0.03]  # the fault begins at minute 2
    points = [(t0 + timedelta(minutes=i), v) for i, v in enumerate(values)]
    [row] = section(pb, {"errors": points}, {"fatal"}, t0 + timedelta(minutes=2), 7)
    assert row["at_onset"]["value"] == 0.015 and row["first_breach"]["value"] == 0.021
    assert row["suggestion"] == (
        "errors >= 0.015 would have fired at the fault's onset, 5m before the first breach of errors > 0.02; check "
        "it first: rollback-bot backtest PLAYBOOK --incident 7 (false alarms)"
    )


def test_without_a_known_fault_onset_nothing_is_said_at_it() -> None:
    """Outside drills the fault's onset is not known: the column is empty and no suggestion is drawn from a
    moment that is only the first breach under another name."""
    from datetime import UTC, datetime

    from rollback_bot.export.thresholds import section

    pb = tiny_playbook()
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    points = [(t0 + timedelta(minutes=i), v) for i, v in enumerate([0.01, 0.03, 0.052181239170210045])]
    [row] = section(pb, {"errors": points}, {"fatal"}, None, 7)
    assert row["at_onset"] is None and row["first_breach"]["value"] == 0.03
    assert (
        row["suggestion"]
        == "errors > 0.02 fired; the fault's onset is not known (drills record it), so nothing to compare"
    )
