"""Post-incident exports: one document, four formats, charts of the signals that fired."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

from rollback_bot.export import charts, formats, rollout
from rollback_bot.export.document import ExportError, build, iter_timeline
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store.database import Store
from rollback_bot.store.models import Incident

__all__ = ["ExportError", "export_incident", "export_rollout", "export_text"]


def export_incident(
    store: Store,
    incident_id: int,
    fmt: str,
    fp: TextIO,
    *,
    tz: str = "UTC",
    out: Path | None = None,
    templates: Path | None = None,
    with_charts: bool = True,
    verify: bool = False,
) -> dict[str, bytes]:
    """Write the export to `fp`; return the chart files the Markdown references (named after `out`)."""
    if fmt not in formats.FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(formats.FORMATS)}")
    with store.session() as s:
        doc = build(s, incident_id, tz, verify)
        doc["rollout"] = rollout.for_incident(s, incident_id)  # the rollout that opened it, if one did
        events = iter_timeline(s, incident_id, doc["names"], with_details=fmt in ("json", "csv"))
        if fmt == "json":
            formats.write_json(doc, events, fp)
            return {}
        if fmt == "csv":
            formats.write_csv(doc, events, fp)
            return {}
        incident = s.get(Incident, incident_id)
        assert incident is not None
        loaded = parse_playbook(incident.playbook_text, incident.playbook_path)
        folder = templates or loaded.templates_dir  # the playbook's falls back to the built-in (formats.py)
        name = f"postmortem.{fmt}.j2"
        if not any((f / name).exists() for f in ([folder] if templates else formats.template_folders(folder))):
            raise ExportError(f"template {folder / name} not found; pass --templates DIR")
        pngs: dict[str, bytes] = {}
        if with_charts:
            start, end = charts.window(doc, datetime.now(UTC))
            for signal in charts.fired_signals(loaded.playbook, doc["signals_fired"]):
                png = charts.chart(s, loaded.playbook, signal, incident.opened_at, start, end)
                if png:
                    pngs[signal] = png
        if fmt == "html":
            formats.write_html(doc, events, folder, pngs, fp)
            return {}
        if out is None:  # Markdown on stdout: nowhere to put the charts
            formats.write_markdown(doc, events, folder, {}, fp)
            return {}
        names = {signal: f"{out.stem}-{signal}.png" for signal in pngs}
        formats.write_markdown(doc, events, folder, names, fp)
        return {names[k]: v for k, v in pngs.items()}


def export_text(store: Store, incident_id: int, fmt: str, **kw: object) -> tuple[str, dict[str, bytes]]:
    """The export as a string (small incidents: Slack uploads, tests)."""
    buf = io.StringIO()
    files = export_incident(store, incident_id, fmt, buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue(), files


def export_rollout(store: Store, rollout_id: int, fmt: str, fp: TextIO) -> None:
    """A rollout's record on its own (md or json): stages, verdicts and why, holds, refusals, its events."""
    with store.session() as s:
        rollout.write_rollout(rollout.build_rollout(s, rollout_id), fmt, fp)
