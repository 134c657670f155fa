"""A rollout's signals read per version and segment: against a real Prometheus, and JSON over loopback HTTP."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from rollback_bot.metrics import JsonSource, PrometheusSource, Reader
from rollback_bot.metrics.compared import ComparedReading, read_rollout, rollout_sources
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.playbook.models import Playbook
from tests import prometheus as prom
from tests.helpers import FakeHTTP, Recorded, loopback_session

NOW = datetime(2026, 1, 1, tzinfo=UTC)
CANDIDATE = "copilot/v2"  # a slash: it must be quoted where it goes into a URL


def playbook(
    signals: dict[str, Any],
    *,
    sample: str,
    kpi: list[str],
    diagnostics: Sequence[str] = (),
    guardrails: Sequence[dict[str, Any]] = (),
    prometheus: str | None = None,
) -> Playbook:
    """A valid playbook (through the loader) whose rollout reads `signals`."""
    doc: dict[str, Any] = {
        "name": "copilot",
        "service": "copilot",
        "channel": "#copilot",
        "roles": {"ic": {"users": ["U1"]}},
        "acknowledge": {"requires": ["ic"]},
        "resolve": {"requires": ["ic"]},
        "hold": {"requires": ["ic"]},
        "signals": signals,
        "triggers": {"slow_ack": {"when": "ack_minutes > 30"}},
        "ladder": [{"name": "one", "window": "0h-1h"}],
        "rollout": {
            "baseline": "current",
            "candidate": CANDIDATE,
            "sample": sample,
            "stages": [{"percent": 10}, {"percent": 100}],
            "advance": {"requires": ["ic"]},
            "hold": {"requires": ["ic"]},
            "rollback": {"requires": ["ic"]},
            "webhook": {"url": "http://127.0.0.1:9/traffic"},
            "gate": {"kpi": dict.fromkeys(kpi, 1.0), "hold_below": -0.05, "rollback_below": -0.1},
            "guardrails": list(guardrails),
            "diagnostics": list(diagnostics),
        },
    }
    if prometheus is not None:
        doc["sources"] = {"prometheus": prometheus}
    return parse_playbook(json.dumps(doc)).playbook


def read(pb: Playbook, now: datetime = NOW) -> list[ComparedReading]:
    reader = Reader(loopback_session())
    try:
        return read_rollout(reader, pb, lambda: now)
    finally:
        reader.close()


def rows(readings: list[ComparedReading], signal: str) -> list[tuple[str, str, str, float | None]]:
    """What a user sees of one signal: version, segment, status, value."""
    return [(r.version, r.segment, r.status, r.value) for r in readings if r.signal == signal]


def details(readings: list[ComparedReading], signal: str) -> dict[tuple[str, str], str]:
    return {(r.version, r.segment): r.detail for r in readings if r.signal == signal}


# --- what is read --------------------------------------------------------------------------------------------


def test_rollout_sources_put_each_version_in_place_of_version() -> None:
    pb = playbook(
        {
            "served": {"http": "http://kpi.internal/served/{version}?team=a", "json": "count"},
            "override": {
                "prometheus": 'sum by (urgency) (override_rate{version="{version}"})',
                "segments": ["urgency"],
            },
            "accuracy": {"http": "http://kpi.internal/models", "json": "by_model.{version}", "segments": ["urgency"]},
            "drift": {"http": "http://kpi.internal/drift", "json": "psi"},
            "minutes": {"builtin": "incident_minutes"},
        },
        sample="served",
        kpi=["override", "accuracy"],
        guardrails=[{"signal": "drift", "above": 0.2}],
        diagnostics=["minutes"],  # a builtin: nothing to read from a source
        prometheus="http://prometheus:9090",
    )
    planned = [(p.version, p.source) for p in rollout_sources(pb)]
    assert [(v, s.signal) for v, s in planned] == [
        ("baseline", "served"),
        ("candidate", "served"),
        ("baseline", "override"),
        ("candidate", "override"),
        ("baseline", "accuracy"),
        ("candidate", "accuracy"),
        ("candidate", "drift"),
    ]
    served_b, served_c, _, override, _, accuracy, drift = (s for _, s in planned)
    assert isinstance(served_b, JsonSource) and isinstance(served_c, JsonSource)
    assert served_b.url == "http://kpi.internal/served/current?team=a"
    assert served_c.url == "http://kpi.internal/served/copilot%2Fv2?team=a"  # URL: quoted
    assert isinstance(override, PrometheusSource) and override.segments == ("urgency",)
    assert override.query == 'sum by (urgency) (override_rate{version="copilot/v2"})'  # PromQL: verbatim
    assert isinstance(accuracy, JsonSource) and accuracy.segments == ("urgency",)
    assert accuracy.path == "by_model.copilot/v2"  # JSON path: verbatim
    assert isinstance(drift, JsonSource) and drift.segments == ()
    assert (drift.url, drift.path) == ("http://kpi.internal/drift", "psi")


def test_a_playbook_without_a_rollout_reads_nothing() -> None:
    pb = playbook({"served": {"http": "http://kpi.internal/{version}", "json": "n"}}, sample="served", kpi=["served"])
    assert rollout_sources(pb.model_copy(update={"rollout": None})) == []


@pytest.mark.parametrize(
    ("status", "value", "usable"),
    [("ok", 0.5, True), ("ok", 0.0, True), ("ok", math.inf, False), ("ok", None, False), ("nodata", None, False)],
)
def test_usable_is_a_finite_number_read(status: Any, value: float | None, usable: bool) -> None:
    assert ComparedReading("s", "candidate", "", NOW, value, status).usable is usable


# --- JSON over loopback HTTP ---------------------------------------------------------------------------------

DOCS = {
    "current": {"override_rate": {"high": 0.31, "normal": 0.12}},
    CANDIDATE: {"override_rate": {"high": 0.45, "normal": "0.10", "low": True}},
}
MODELS = {
    "by_model": {"current": {"accuracy": 0.91, "latency": 310}, CANDIDATE: {"accuracy": 0.88, "latency": 420}},
    "pending": {"current": None, CANDIDATE: {}},
}


def json_playbook(url: str) -> Playbook:
    return playbook(
        {
            "served": {"http": f"{url}/served/{{version}}", "json": "count"},
            "override": {"http": f"{url}/kpi?model={{version}}", "json": "override_rate", "segments": ["urgency"]},
            "accuracy": {"http": f"{url}/models", "json": "by_model.{version}.accuracy"},
            "latency": {"http": f"{url}/models", "json": "by_model.{version}.latency", "segments": ["urgency"]},
            "pending": {"http": f"{url}/models", "json": "pending.{version}", "segments": ["urgency"]},
            "broken": {"http": f"{url}/broken/{{version}}", "json": "rate", "segments": ["urgency"]},
            "slow": {"http": f"{url}/slow", "json": "rate.{version}", "timeout": "300ms"},
            "drift": {"http": f"{url}/drift", "json": "psi"},
        },
        sample="served",
        kpi=["override", "accuracy"],
        guardrails=[{"signal": "drift", "above": 0.2}],
        diagnostics=["latency", "pending", "broken", "slow"],
    )


@pytest.fixture
def served(fake_http: FakeHTTP) -> FakeHTTP:
    def kpi(rec: Recorded) -> tuple[int, Any]:
        model = parse_qs(urlsplit(rec.path).query)["model"][0]
        return (200, DOCS[model]) if model in DOCS else (404, {"error": f"no model {model}"})

    fake_http.routes |= {
        "/served/current": (200, {"count": 900}),
        "/served/copilot%2Fv2": (200, {"count": 100}),
        "/kpi": kpi,
        "/models": (200, MODELS),
        "/broken/current": (500, {"error": "boom"}),
        "/broken/copilot%2Fv2": (500, {"error": "boom"}),
        "/slow": (200, {"rate": {"current": 1, CANDIDATE: 2}}),
        "/drift": (200, {"psi": 0.12}),
    }
    fake_http.delay["/slow"] = 1.0
    return fake_http


def test_version_in_the_url_is_quoted_and_each_version_read_per_segment(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))
    assert rows(readings, "served") == [("baseline", "", "ok", 900.0), ("candidate", "", "ok", 100.0)]
    assert rows(readings, "override")[:2] == [
        ("baseline", "urgency=high", "ok", 0.31),
        ("baseline", "urgency=normal", "ok", 0.12),
    ]
    models = sorted(parse_qs(urlsplit(r.path).query)["model"][0] for r in served.requests if r.path.startswith("/kpi"))
    assert models == [CANDIDATE, "current"]  # the server got the names back whole
    assert all(r.at == NOW for r in readings)


def test_a_non_number_in_a_segment_is_an_error_for_that_segment_only(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))
    assert rows(readings, "override")[2:] == [
        ("candidate", "urgency=high", "ok", 0.45),
        ("candidate", "urgency=low", "error", None),
        ("candidate", "urgency=normal", "error", None),
    ]
    said = details(readings, "override")
    assert said["candidate", "urgency=low"] == "'override_rate.low' is a boolean (true), not a number"
    assert said["candidate", "urgency=normal"].startswith(
        """'override_rate.normal' is a string ("0.10"), not a number; set numeric_strings: true"""
    )


def test_version_in_the_json_path_reads_both_versions_from_one_document(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))
    assert rows(readings, "accuracy") == [("baseline", "", "ok", 0.91), ("candidate", "", "ok", 0.88)]
    assert [r.path for r in served.requests].count("/models") == 1  # six sources, one fetch


def test_a_path_that_is_not_an_object_is_one_error_for_the_whole_signal(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))
    assert rows(readings, "latency") == [("baseline", "", "error", None), ("candidate", "", "error", None)]
    assert details(readings, "latency") == {
        ("baseline", ""): "'by_model.current.latency' is a number, not an object of urgency -> number",
        ("candidate", ""): "'by_model.copilot/v2.latency' is a number, not an object of urgency -> number",
    }
    assert rows(readings, "pending") == [("baseline", "", "nodata", None), ("candidate", "", "nodata", None)]
    assert details(readings, "pending") == {  # nothing to read yet is no data, as for a plain signal
        ("baseline", ""): "'pending.current' is null",
        ("candidate", ""): "'pending.copilot/v2' is an empty object: no segments",
    }


def test_a_failing_endpoint_is_an_error_reading_of_each_version(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))  # raises nothing
    assert rows(readings, "broken") == [("baseline", "", "error", None), ("candidate", "", "error", None)]
    said = details(readings, "broken")
    assert said["baseline", ""] == f"HTTP 500 from {served.url}/broken/current"
    assert said["candidate", ""] == f"HTTP 500 from {served.url}/broken/copilot%2Fv2"
    assert rows(readings, "slow") == [("baseline", "", "error", None), ("candidate", "", "error", None)]
    # on a busy machine the deadline can pass while still connecting: "(connecting)" is then added
    assert all(d.startswith("no answer within 0.3s") for d in details(readings, "slow").values())
    assert rows(readings, "served")[1] == ("candidate", "", "ok", 100.0)  # the others are read all the same


def test_a_signal_read_once_counts_as_the_candidate(served: FakeHTTP) -> None:
    readings = read(json_playbook(served.url))
    assert rows(readings, "drift") == [("candidate", "", "ok", 0.12)]
    assert [r.path for r in served.requests].count("/drift") == 1


def test_a_secret_echoed_into_a_segment_is_redacted(fake_http: FakeHTTP, monkeypatch: pytest.MonkeyPatch) -> None:
    token = "s3cr3t-t0ken-for-the-kpi-api"
    monkeypatch.setenv("KPI_TOKEN", token)
    fake_http.routes["/served/current"] = (200, {"count": 1})
    fake_http.routes["/served/copilot%2Fv2"] = lambda rec: (200, {"count": {"high": rec.headers["Authorization"]}})
    signal = {
        "http": f"{fake_http.url}/served/{{version}}",
        "json": "count",
        "headers": {"Authorization": "Bearer ${KPI_TOKEN}"},
    }
    pb = playbook(
        {"served": signal, "override": {**signal, "segments": ["urgency"]}}, sample="served", kpi=["override"]
    )
    readings = read(pb)
    assert rows(readings, "override")[1] == ("candidate", "urgency=high", "error", None)
    detail = details(readings, "override")["candidate", "urgency=high"]
    assert detail == """'count.high' is not a number: "Bearer [redacted]\""""


# --- a real Prometheus ---------------------------------------------------------------------------------------

EXPOSITION = b"""# TYPE served_total counter
served_total{version="current"} 900
served_total{version="copilot/v2"} 100
# TYPE override_rate gauge
override_rate{version="current",queue="billing",urgency="high"} 0.31
override_rate{version="current",queue="billing",urgency="normal"} 0.12
override_rate{version="copilot/v2",queue="billing",urgency="high"} 0.45
override_rate{version="copilot/v2",queue="support",urgency="high"} 0.05
override_rate{version="copilot/v2",queue="billing",urgency="normal"} 0.10
# TYPE escalation_rate gauge
escalation_rate{version="current",urgency="high"} 0.02
escalation_rate{version="copilot/v2",urgency="high"} 0.03
escalation_rate{version="copilot/v2"} 0.5
"""


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Debian's prometheus on loopback, scraping EXPOSITION every second."""
    prom.binary()
    with prom.exporter(EXPOSITION) as target:
        work = tmp_path_factory.mktemp("prometheus")
        with prom.running(work, prom.scrape_config(target), {"query": "served_total"}) as url:
            yield url


def prometheus_playbook(url: str) -> Playbook:
    return playbook(
        {
            "served": {"prometheus": 'sum(served_total{version="{version}"})'},
            "override": {
                "prometheus": 'sum by (urgency) (override_rate{version="{version}"})',
                "segments": ["urgency"],
            },
            "escalation": {"prometheus": 'escalation_rate{version="{version}"}', "segments": ["urgency"]},
            "by_queue": {
                "prometheus": 'sum by (queue, urgency) (override_rate{version="{version}"})',
                "segments": ["queue", "urgency"],
            },
            "unaggregated": {"prometheus": 'override_rate{version="{version}"}', "segments": ["urgency"]},
            "nothing": {"prometheus": 'override_rate{version="{version}", queue="none"}', "segments": ["urgency"]},
        },
        sample="served",
        kpi=["override"],
        diagnostics=["escalation", "by_queue", "unaggregated", "nothing"],
        prometheus=url,
    )


@pytest.mark.prometheus
def test_a_compared_segmented_query_reads_each_version_per_segment(prometheus: str) -> None:
    readings = read(prometheus_playbook(prometheus), datetime.now(UTC))  # Prometheus answers for the time sent
    assert rows(readings, "served") == [("baseline", "", "ok", 900.0), ("candidate", "", "ok", 100.0)]
    assert rows(readings, "override") == [
        ("baseline", "urgency=high", "ok", 0.31),
        ("baseline", "urgency=normal", "ok", 0.12),
        ("candidate", "urgency=high", "ok", pytest.approx(0.5)),  # billing and support summed
        ("candidate", "urgency=normal", "ok", 0.10),
    ]
    assert rows(readings, "by_queue") == [  # several labels: in the order given in segments
        ("baseline", "queue=billing,urgency=high", "ok", 0.31),
        ("baseline", "queue=billing,urgency=normal", "ok", 0.12),
        ("candidate", "queue=billing,urgency=high", "ok", 0.45),
        ("candidate", "queue=billing,urgency=normal", "ok", 0.10),
        ("candidate", "queue=support,urgency=high", "ok", 0.05),
    ]
    assert rows(readings, "nothing") == [("baseline", "", "nodata", None), ("candidate", "", "nodata", None)]
    assert set(details(readings, "nothing").values()) == {"empty result"}


@pytest.mark.prometheus
def test_a_series_missing_a_segment_label_is_an_error_for_that_series_only(prometheus: str) -> None:
    readings = read(prometheus_playbook(prometheus), datetime.now(UTC))
    assert rows(readings, "escalation") == [
        ("baseline", "urgency=high", "ok", 0.02),
        ("candidate", "urgency=", "error", None),
        ("candidate", "urgency=high", "ok", 0.03),
    ]
    said = details(readings, "escalation")["candidate", "urgency="]
    assert said.startswith('series {__name__="escalation_rate", instance="127.0.0.1:'), said
    assert said.endswith(
        """job="copilot", version="copilot/v2"} has no label 'urgency'; segments need it: sum by (urgency) (...)"""
    )


@pytest.mark.prometheus
def test_two_series_of_one_segment_are_an_error_for_that_segment(prometheus: str) -> None:
    readings = read(prometheus_playbook(prometheus), datetime.now(UTC))
    assert [row for row in rows(readings, "unaggregated") if row[0] == "candidate"] == [
        ("candidate", "urgency=high", "error", None),
        ("candidate", "urgency=normal", "ok", 0.10),
    ]
    said = details(readings, "unaggregated")["candidate", "urgency=high"]
    assert said == "2 series have segment urgency=high; aggregate them to one: sum by (urgency) (...)"
