"""Metric sources behind one small seam (`MetricSource.read(session, now) -> Reading`)."""

from rollback_bot.metrics.sources import JsonSource, MetricSource, PrometheusSource, json_path, read_many

__all__ = ["JsonSource", "MetricSource", "PrometheusSource", "json_path", "read_many"]
