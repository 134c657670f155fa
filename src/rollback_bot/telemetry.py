"""Prometheus metrics about the bot itself, served at GET /metrics."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily, Metric

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("rollback_bot_polls_total", "Signal reads, by outcome", ["playbook", "status"], registry=REGISTRY)
EVALUATIONS = Counter("rollback_bot_evaluations_total", "Trigger evaluations", ["playbook"], registry=REGISTRY)
INCIDENTS = Counter(
    "rollback_bot_incidents_opened_total", "Incidents opened", ["playbook", "severity"], registry=REGISTRY
)
SLACK_API_ERRORS = Counter(
    "rollback_bot_slack_api_errors_total", "Failed Slack Web API calls", ["method"], registry=REGISTRY
)
SLACK_SYNCS = Counter(
    "rollback_bot_slack_syncs_total",
    "Slack syncs of an incident: synced, or busy (another process held its Slack lease)",
    ["result"],
    registry=REGISTRY,
)
ACTIONS = Counter(
    "rollback_bot_action_stages_total", "Action stages run, by outcome", ["playbook", "outcome"], registry=REGISTRY
)
REQUESTS = Histogram(
    "rollback_bot_http_request_seconds", "Time to answer HTTP requests", ["path", "status"], registry=REGISTRY
)
ALERTS_RECEIVED = Counter(
    "rollback_bot_alertmanager_alerts_total",
    "Alerts taken from Alertmanager's webhook, by status and whether a playbook signal matches them",
    ["status", "matched"],
    registry=REGISTRY,
)

CLICKS = Counter(
    "rollback_bot_clicks_total", "Clicks worked off, by result (ok, refused, failed)", ["result"], registry=REGISTRY
)
CLICKS_WAITING = Gauge(
    "rollback_bot_clicks_waiting",
    "Clicks in the inbox not done yet (as of the last /healthz)",
    registry=REGISTRY,
    multiprocess_mode="livemax",  # under gunicorn: the workers' latest figures are of one inbox
)

LEADER = Gauge(
    "rollback_bot_scheduler_leader",
    "1 while this process leads the scheduler processes, 0 standing by",
    registry=REGISTRY,
)
TAKEOVERS = Counter(
    "rollback_bot_scheduler_takeovers_total", "Times this process took the scheduler lease", registry=REGISTRY
)


@dataclass(frozen=True)
class PollFigures:
    playbook: str
    group: str  # the poll interval, e.g. '30s'
    age_seconds: float  # since the group's last complete poll (+Inf: none yet)
    behind: bool
    duration_seconds: float  # the last poll, reads and evaluation included


class PollingCollector:
    """Read at scrape time from the store (the scheduler may be another process): how fresh each poll is."""

    def __init__(self) -> None:
        self.source: Callable[[], Sequence[PollFigures]] | None = None

    def collect(self) -> Iterator[Metric]:
        labels = ["playbook", "group"]
        age = GaugeMetricFamily(
            "rollback_bot_poll_age_seconds", "Seconds since each poll group last completed a poll", labels=labels
        )
        behind = GaugeMetricFamily("rollback_bot_polling_behind", "1 while a poll group is behind", labels=labels)
        took = GaugeMetricFamily(
            "rollback_bot_poll_duration_seconds", "Real seconds the last poll of each group took", labels=labels
        )
        try:
            figures = self.source() if self.source is not None else []
        except Exception:  # a scrape must not fail because the database is away; /healthz says so
            figures = []
        for f in figures:
            age.add_metric([f.playbook, f.group], f.age_seconds)
            behind.add_metric([f.playbook, f.group], 1.0 if f.behind else 0.0)
            took.add_metric([f.playbook, f.group], f.duration_seconds)
        yield from (age, behind, took)


POLLING = PollingCollector()
REGISTRY.register(POLLING)


def exposition() -> bytes:
    """What GET /metrics answers. Under gunicorn (PROMETHEUS_MULTIPROC_DIR set by bot/gunicorn.conf.py) every
    worker writes its counters to files there and any worker's answer adds up all of them, so a scrape gives
    the deployment's figures whichever worker answers; otherwise this process's."""
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return generate_latest(REGISTRY)
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(POLLING)  # read from the database at scrape time: the same in every worker
    return generate_latest(registry)
