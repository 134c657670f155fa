"""Prometheus metrics about the bot itself, served at GET /metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter("rollback_bot_polls_total", "Signal reads, by outcome", ["playbook", "status"], registry=REGISTRY)
EVALUATIONS = Counter("rollback_bot_evaluations_total", "Trigger evaluations", ["playbook"], registry=REGISTRY)
INCIDENTS = Counter(
    "rollback_bot_incidents_opened_total", "Incidents opened", ["playbook", "severity"], registry=REGISTRY
)
SLACK_API_ERRORS = Counter(
    "rollback_bot_slack_api_errors_total", "Failed Slack Web API calls", ["method"], registry=REGISTRY
)
REQUESTS = Histogram(
    "rollback_bot_http_request_seconds", "Time to answer HTTP requests", ["path", "status"], registry=REGISTRY
)
