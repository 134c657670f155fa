"""Alertmanager as a signal source, pure: the version 4 payload, matching, and the reading an alert gives."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from rollback_bot.metrics.alertmanager import Alert, alerts_of, matches, matching, parse, reading, safe_text
from rollback_bot.playbook import PlaybookInvalid, load_playbook
from rollback_bot.playbook.models import AlertmanagerSpec

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SPEC = AlertmanagerSpec(match={"alertname": "ModelErrorRate", "service": "svc"})


def alert(status: str = "firing", **kw: Any) -> dict[str, Any]:
    return {
        "status": status,
        "labels": {"alertname": "ModelErrorRate", "service": "svc", "severity": "page"},
        "annotations": {"summary": "Error rate above 5%"},
        "startsAt": "2026-03-01T08:59:00.123Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus:9090/graph?g0.expr=errors",
        "fingerprint": "c0ffee",
        **kw,
    }


def payload(*alerts: dict[str, Any], **kw: Any) -> bytes:
    doc = {
        "version": "4",
        "groupKey": '{}:{alertname="ModelErrorRate"}',
        "truncatedAlerts": 0,
        "status": "firing",
        "receiver": "rollback-bot",
        "groupLabels": {"alertname": "ModelErrorRate"},
        "commonLabels": {},
        "commonAnnotations": {},
        "externalURL": "http://alertmanager:9093",
        "alerts": list(alerts),
        **kw,
    }
    return json.dumps(doc).encode()


def stored(body: bytes, at: datetime = T0) -> list[Alert]:
    return alerts_of(parse(body), at)


def test_a_payload_gives_alerts_with_their_evidence() -> None:
    (a,) = stored(payload(alert()))
    assert a.fingerprint == "c0ffee" and a.status == "firing" and a.ends_at is None  # Go's zero time: not set
    assert a.starts_at == datetime(2026, 3, 1, 8, 59, 0, 123000, tzinfo=UTC)
    assert a.evidence()["generator_url"] == "http://prometheus:9090/graph?g0.expr=errors"
    assert a.describe() == (
        'ModelErrorRate{service="svc", severity="page"} since 08:59:00 UTC: Error rate above 5% '
        "(http://prometheus:9090/graph?g0.expr=errors)"
    )


def test_an_alert_without_fingerprint_gets_one_from_its_labels() -> None:
    one = stored(payload(alert(fingerprint="")))[0].fingerprint
    assert one.startswith("sha256:") and one == stored(payload(alert(fingerprint="")))[0].fingerprint


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{", "not JSON"),
        (b"[]", "not a JSON object"),
        (b"[" * 100000, "nested too deeply"),
        (payload(alert(), version="3"), 'payload version "3": only version "4" is understood'),
        (payload(alert(), version=5), 'payload version 5: only version "4" is understood'),
        (payload(alert(), version="four"), 'version "four": only version "4" is understood .a string, as Alertm'),
        (b'{"status": "firing"}', 'payload version missing: only version "4"'),
        (payload(alert(status="pending")), "alerts.0.status"),
        (payload(alert(labels={})), "alerts.0.labels"),
        (payload(alert(labels={"alertname": 5})), "alerts.0.labels.alertname"),
        (payload(alert(startsAt="yesterday")), "alerts.0.startsAt"),
        (payload(alert(startsAt="2026-03-01T08:59:00")), "time without a zone"),
        (payload(alert(), alerts="x"), "alerts"),
        (payload(alert(), status=None), "status"),
    ],
)
def test_malformed_payloads_are_refused_with_one_line(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as exc:
        parse(body)
    assert "\n" not in str(exc.value)


def test_version_4_as_a_json_number_is_taken_as_the_string() -> None:
    (a,) = stored(payload(alert(), version=4))
    assert a.fingerprint == "c0ffee"


def test_a_nul_or_a_lone_surrogate_is_made_u_fffd_wherever_it_is() -> None:
    body = payload(
        alert(
            labels={"alertname": "ModelErrorRate", "service": "svc", "po\ud800d": "a\x00b"},
            annotations={"summary": "\udfff"},
            generatorURL="http://p/\x00",
            fingerprint="c0\ud83d",
        ),
        receiver="bot\x00",
    )
    assert b"\\ud800" in body and b"\\u0000" in body
    payload_ = parse(body)
    (a,) = alerts_of(payload_, T0)
    assert dict(a.labels) == {"alertname": "ModelErrorRate", "service": "svc", "po\ufffdd": "a\ufffdb"}
    assert (a.annotations["summary"], a.generator_url, a.fingerprint) == ("\ufffd", "http://p/\ufffd", "c0\ufffd")
    assert a.receiver == "bot\ufffd"
    assert matches(SPEC, a.labels)
    assert safe_text("plain, caf\u00e9 \U0001f600") == "plain, caf\u00e9 \U0001f600"  # a pair is one character


def test_matching_needs_every_label_of_the_signal() -> None:
    other = alert(labels={"alertname": "ModelErrorRate", "service": "other"}, fingerprint="b")
    bare = alert(labels={"alertname": "ModelErrorRate"}, fingerprint="c")
    alerts = stored(payload(alert(), other, bare))
    found = matching({"svc": SPEC, "any": AlertmanagerSpec(match={"alertname": "ModelErrorRate"})}, alerts)
    assert [a.fingerprint for a in found["svc"]] == ["c0ffee"]
    assert sorted(a.fingerprint for a in found["any"]) == ["b", "c", "c0ffee"]


def test_no_alert_yet_is_no_data() -> None:
    r = reading("errs", SPEC, [], T0)
    assert not r.usable and r.status == "nodata"
    assert r.detail == 'no alert matching {alertname="ModelErrorRate", service="svc"} received yet'


def test_firing_holds_between_webhooks_and_counts_the_alerts() -> None:
    second = alert(fingerprint="d", labels={"alertname": "ModelErrorRate", "service": "svc", "pod": "b"})
    alerts = stored(payload(alert(), second))
    r = reading("errs", SPEC, alerts, T0 + timedelta(hours=3))  # repeat_interval: nothing new for hours
    assert (r.value, r.status) == (2.0, "ok")
    assert r.detail.startswith('firing: ModelErrorRate{service="svc", severity="page"} since 08:59:00 UTC')
    assert r.detail.endswith("(and 1 more)")


def test_resolved_reads_healthy() -> None:
    alerts = stored(payload(alert(status="resolved", endsAt="2026-03-01T09:04:00Z"), status="resolved"))
    r = reading("errs", SPEC, alerts, T0 + timedelta(minutes=5))
    assert (r.value, r.status) == (0.0, "ok")
    assert r.detail.startswith("resolved at 09:04:00 UTC: ModelErrorRate")


def test_firing_whose_ends_at_passed_reads_healthy() -> None:
    alerts = stored(payload(alert(endsAt="2026-03-01T09:10:00Z")))
    assert reading("errs", SPEC, alerts, T0 + timedelta(minutes=9)).value == 1.0
    r = reading("errs", SPEC, alerts, T0 + timedelta(minutes=11))
    assert r.value == 0.0 and r.detail.startswith("endsAt 09:10:00 UTC passed")


def test_with_max_age_a_firing_alert_not_sent_again_is_stale_not_a_breach() -> None:
    spec = AlertmanagerSpec(match=dict(SPEC.match), max_age=timedelta(hours=1))
    alerts = stored(payload(alert()))
    assert reading("errs", spec, alerts, T0 + timedelta(minutes=59)).value == 1.0
    r = reading("errs", spec, alerts, T0 + timedelta(minutes=61))
    assert r.is_stale and not r.usable
    assert "firing alert last sent 1h1m ago (max_age 1h)" in r.detail


PLAYBOOK = """\
name: am
service: svc
channel: "#ops"
roles:
  incident_commander: {users: [UIC]}
  responder: {users: [UR]}
signals:
  model_errors:
    alertmanager:
      match: {alertname: ModelErrorRate, service: svc}
    every: 10s
triggers:
  alerted: {when: model_errors > 0, severity: critical}
ladder:
  - {name: Flag, window: 0h-1h}
"""


def test_a_playbook_declares_an_alertmanager_signal(tmp_path: Path) -> None:
    path = tmp_path / "am.yaml"
    path.write_text(PLAYBOOK)
    pb = load_playbook(path).playbook
    spec = pb.signals["model_errors"]
    assert spec.kind == "alertmanager" and not spec.fetched
    assert spec.alertmanager == SPEC


@pytest.mark.parametrize(
    ("old", "new", "message", "anchor"),
    [
        ("match: {alertname: ModelErrorRate, service: svc}", "match: {}", "at least 1 item", "match: {}"),
        ("match: {alertname: ModelErrorRate, service: svc}", "match: {9x: a}", "'9x' is not a Prometheus label", "9x"),
        (
            "    every: 10s",
            "    prometheus: up\n    every: 10s",
            "exactly one of 'prometheus', 'http', 'builtin' or",
            "  model_errors:",
        ),
        ("    every: 10s", "    max_age: 1h\n    every: 10s", "write max_age under alertmanager", "  model_errors:"),
        ("    every: 10s", "    segments: [pod]\n    every: 10s", "has no segments", "  model_errors:"),
        ("match: {alertname", "matchers: {alertname", "unknown field", "matchers"),
    ],
)
def test_mistakes_in_an_alertmanager_signal_have_file_and_line(
    tmp_path: Path, old: str, new: str, message: str, anchor: str
) -> None:
    assert old in PLAYBOOK
    text = PLAYBOOK.replace(old, new, 1)
    path = tmp_path / "am.yaml"
    path.write_text(text)
    with pytest.raises(PlaybookInvalid) as exc:
        load_playbook(path)
    errors = [e for e in exc.value.errors if message in e.message]
    assert errors, [str(e) for e in exc.value.errors]
    assert str(errors[0]).startswith(f"{path}:")
    assert errors[0].line == next(i for i, line in enumerate(text.splitlines(), 1) if anchor in line)


def test_a_panic_run_cannot_read_an_alertmanager_signal(tmp_path: Path) -> None:
    path = tmp_path / "am.yaml"
    path.write_text(PLAYBOOK + 'panic_run: {at: "09:00", checks: [model_errors == 0]}\n')
    with pytest.raises(PlaybookInvalid, match="an alertmanager signal: it cannot be read on demand"):
        load_playbook(path)
