"""Metric sources behind one small seam, read many at a time by `Reader` within deadlines and a size cap."""

from rollback_bot.metrics.endpoint import Endpoint
from rollback_bot.metrics.fetch import DEFAULT_MAX_BYTES
from rollback_bot.metrics.reader import Reader
from rollback_bot.metrics.sources import JsonSource, MetricSource, PrometheusSource, json_path

__all__ = [
    "DEFAULT_MAX_BYTES",
    "Endpoint",
    "JsonSource",
    "MetricSource",
    "PrometheusSource",
    "Reader",
    "json_path",
]
