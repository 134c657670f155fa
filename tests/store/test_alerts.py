"""Alerts from Alertmanager, stored: the latest state per fingerprint, never moved back, replays change nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from rollback_bot.metrics.alertmanager import Alert
from rollback_bot.store import Store
from rollback_bot.store import alerts as store_alerts

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
FIRING = Alert(
    "fp1",
    "firing",
    {"alertname": "ModelErrorRate", "service": "svc"},
    T0,
    None,
    T0,
    {"summary": "errors"},
    "http://prometheus/graph",
    "bot",
)


def state(store: Store) -> list[tuple[str, str, datetime]]:
    with store.session() as s:
        return [(a.fingerprint, a.status, a.starts_at) for a in store_alerts.named(s, alertnames=None)]


def put(store: Store, *alerts: Alert) -> None:
    with store.session() as s:
        store_alerts.store(s, list(alerts))
        s.commit()


def test_latest_state_per_fingerprint_and_never_back(store: Store) -> None:
    put(store, FIRING)
    put(store, FIRING)  # a replay
    assert state(store) == [("fp1", "firing", T0)]
    resolved = replace(
        FIRING, status="resolved", ends_at=T0 + timedelta(minutes=5), received_at=T0 + timedelta(minutes=5)
    )
    put(store, resolved)
    put(store, FIRING)  # a late retry of the firing delivery: resolved stays
    assert state(store) == [("fp1", "resolved", T0)]
    again = replace(FIRING, starts_at=T0 + timedelta(hours=1), received_at=T0 + timedelta(hours=1))
    put(store, again)  # fired again: a later startsAt
    assert state(store) == [("fp1", "firing", T0 + timedelta(hours=1))]
    put(store, resolved)  # the old resolve, late: ignored
    assert state(store) == [("fp1", "firing", T0 + timedelta(hours=1))]
    with store.session() as s:
        (alert,) = store_alerts.named(s, alertnames=["ModelErrorRate"])
        assert alert.labels == FIRING.labels and alert.annotations == {"summary": "errors"}
        assert alert.generator_url == "http://prometheus/graph" and alert.receiver == "bot"
        assert store_alerts.named(s, alertnames=["Other"]) == []


def test_a_firing_alert_sent_again_refreshes_when_it_was_received(store: Store) -> None:
    put(store, FIRING)
    later = replace(FIRING, received_at=T0 + timedelta(hours=4), ends_at=T0 + timedelta(hours=5))
    put(store, later)
    with store.session() as s:
        (alert,) = store_alerts.named(s, alertnames=None)
    assert alert.received_at == T0 + timedelta(hours=4) and alert.ends_at == T0 + timedelta(hours=5)


def test_alerts_not_sent_for_the_retention_are_forgotten(store: Store) -> None:
    put(store, FIRING, replace(FIRING, fingerprint="fp2", received_at=T0 + timedelta(days=2)))
    with store.session() as s:
        assert store_alerts.prune(s, older_than=T0 + timedelta(days=1)) == 1
        s.commit()
    assert [fp for fp, _, _ in state(store)] == ["fp2"]
