"""Sources built from a playbook's signal specs: what `flows` polls and what a rollout compares."""

from __future__ import annotations

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.sources import JsonSource, MetricSource, PrometheusSource
from rollback_bot.playbook.models import ConnectionSpec, Playbook, SignalSpec


def endpoint_of(url: str, conn: ConnectionSpec) -> Endpoint:
    """The connection settings of a source as the reader uses them (`${VAR}`s expand at read time)."""
    auth = (conn.basic_auth.username, conn.basic_auth.password) if conn.basic_auth else None
    return Endpoint(url, tuple(conn.headers.items()), auth, conn.tls.verify, conn.tls.ca_file)


def build_source(name: str, spec: SignalSpec, pb: Playbook) -> MetricSource:
    """The source of an external signal: a Prometheus query on sources.prometheus, or a JSON field."""
    timeout = spec.timeout.total_seconds()
    if spec.prometheus is not None:
        prom = pb.sources.prometheus
        assert prom is not None
        return PrometheusSource(
            name, endpoint_of(prom.url, prom), spec.prometheus, timeout, max_age=spec.sample_max_age
        )
    assert spec.http is not None and spec.json_path is not None
    return JsonSource(name, endpoint_of(spec.http, spec), spec.json_path, timeout, numeric_strings=spec.numeric_strings)
