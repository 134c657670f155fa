"""Post-incident exports: one document, four formats, charts of the signals that fired."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from rollback_bot.export import charts, formats
from rollback_bot.export.document import ExportError, build
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store.database import Store
from rollback_bot.store.models import Incident

__all__ = ["ExportError", "Exported", "export_incident"]


@dataclass
class Exported:
    text: str
    files: dict[str, bytes] = field(default_factory=dict)  # chart files to write beside the Markdown


def export_incident(
    store: Store,
    incident_id: int,
    fmt: str,
    *,
    tz: str = "UTC",
    out: Path | None = None,
    templates: Path | None = None,
    with_charts: bool = True,
) -> Exported:
    if fmt not in formats.FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(formats.FORMATS)}")
    with store.session() as s:
        doc = build(s, incident_id, tz)
        if fmt == "json":
            return Exported(formats.to_json(doc))
        if fmt == "csv":
            return Exported(formats.to_csv(doc))
        incident = s.get(Incident, incident_id)
        assert incident is not None
        loaded = parse_playbook(incident.playbook_text, incident.playbook_path)
        folder = templates or loaded.templates_dir
        if not (folder / f"postmortem.{fmt}.j2").exists():
            raise ExportError(f"template {folder / f'postmortem.{fmt}.j2'} not found; pass --templates DIR")
        pngs: dict[str, bytes] = {}
        if with_charts:
            start, end = charts.window(doc, datetime.now(UTC))
            for signal in charts.fired_signals(loaded.playbook, doc["signals_fired"]):
                png = charts.chart(s, loaded.playbook, signal, incident.opened_at, start, end)
                if png:
                    pngs[signal] = png
    if fmt == "html":
        return Exported(formats.to_html(doc, folder, pngs))
    if out is None:  # Markdown on stdout: nowhere to put the charts
        return Exported(formats.to_markdown(doc, folder, {}))
    names = {signal: f"{out.stem}-{signal}.png" for signal in pngs}
    return Exported(formats.to_markdown(doc, folder, names), {names[k]: v for k, v in pngs.items()})
