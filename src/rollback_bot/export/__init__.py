"""Post-incident exports: one document, four formats, charts of the signals that fired."""

from __future__ import annotations

import io
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rollback_bot.export import charts, document, formats, rollout
from rollback_bot.export.document import ExportError, build, iter_timeline
from rollback_bot.forked import in_fork
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.store.database import Store
from rollback_bot.store.verify import verify_in_background

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
    background: bool = False,
) -> dict[str, bytes]:
    """Write the export to `fp`; return the chart files the Markdown references (named after `out`).
    `background`: draw the charts in a forked process meanwhile (single-threaded callers: the CLI)."""
    if fmt not in formats.FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(formats.FORMATS)}")
    with store.session() as s:
        if fmt == "csv":  # the timeline alone (it has no place for the chain's check: --verify adds nothing)
            light = document.for_csv(s, incident_id, tz)
            formats.write_csv(light, iter_timeline(s, incident_id, light["names"], with_details=True), fp)
            return {}
        # the CLI's --verify: the chain is checked in a fork, on the other core, while the export is gathered
        checked = verify_in_background(store.engine, f"incident:{incident_id}") if verify and background else None
        pngs: Callable[[], dict[str, bytes]] = dict
        jobs: dict[str, charts.Job] = {}
        if fmt in ("md", "html"):  # the template first (a missing one is said at once), then the charts begun
            incident, zone = document.opening(s, incident_id, tz)
            loaded = parse_playbook(incident.playbook_text, incident.playbook_path)
            folder = templates or loaded.templates_dir  # the playbook's falls back to the built-in (formats.py)
            name = f"postmortem.{fmt}.j2"
            if not any((f / name).exists() for f in ([folder] if templates else formats.template_folders(folder))):
                raise ExportError(f"template {folder / name} not found; pass --templates DIR")
            if with_charts and not (fmt == "md" and out is None):  # Markdown on stdout: nowhere to put charts
                basis = document.charts_basis(s, incident)
                start, end = charts.window(basis, datetime.now(UTC))
                for signal in charts.fired_signals(loaded.playbook, basis["signals_fired"]):
                    found = charts.points(s, loaded.playbook, signal, start, end)
                    if found:
                        jobs[signal] = (loaded.playbook, signal, found, incident.opened_at, start, end, zone)
            pngs = charts.in_background(jobs) if background else lambda: {k: charts.draw(*j) for k, j in jobs.items()}
        document.opening(s, incident_id, tz)  # no such incident or time zone: said before anything is begun
        # the CLI: the timeline is written to a file by a fork on the other core while the summary is gathered
        spooled = _timeline_in_fork(store, incident_id, fmt, tz) if background else None
        names = document.names_of(s, incident_id)
        doc = build(s, incident_id, tz, verify and checked is None, known=names)
        doc["rollout"] = rollout.for_incident(s, incident_id)  # the rollout that opened it, if one did
        events = iter_timeline(s, incident_id, doc["names"], with_details=fmt == "json")
        if checked is not None:
            doc["chain"] = document.chain_section(s, incident_id, checked())
        if fmt == "json":
            if spooled is None:
                formats.write_json(doc, events, fp)
                return {}
            formats.write_json_head(doc, fp)
            with spooled() as spool:
                shutil.copyfileobj(spool, fp)
            formats.write_json_tail(fp)
            return {}
        return _document(doc, events, fmt, folder, jobs, pngs, out, fp, None if spooled is None else _read(spooled))


def _document(
    doc: dict[str, Any],
    events: Iterator[dict[str, Any]],
    fmt: str,
    folder: Path,
    jobs: dict[str, charts.Job],
    pngs: Callable[[], dict[str, bytes]],
    out: Path | None,
    fp: TextIO,
    rows: Iterator[str] | None,
) -> dict[str, bytes]:
    """The Markdown or HTML post-mortem; `rows`: the timeline's rows already made (timeline_rows)."""
    if fmt == "html":  # the charts are waited for where the page shows them, the timeline's rows at its end
        formats.write_html(doc, events, folder, formats.Later(pngs), fp, rows=rows)
        return {}
    names = {signal: f"{out.stem}-{signal}.png" for signal in jobs} if out else {}
    formats.write_markdown(doc, events, folder, names, fp, rows=rows)
    drawn = pngs()
    return {names[k]: v for k, v in drawn.items()}


def _read(spooled: Callable[[], TextIO]) -> Iterator[str]:
    """The spooled timeline, waited for when the template first asks for a row (it is at the document's end:
    the summary is written meanwhile)."""
    with spooled() as spool:
        yield from iter(lambda: spool.read(1 << 16), "")


def _timeline_in_fork(store: Store, incident_id: int, fmt: str, tz: str) -> Callable[[], TextIO]:
    """The timeline as the format writes it (JSON events, or the post-mortem's table rows), written to a
    temporary file by a forked process on its own connection; the returned function waits for it and gives
    the file, read from its start (the caller closes it)."""
    spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115 (the caller closes it)
    parent = os.getpid()

    def work() -> bool:
        if os.getpid() != parent:
            store.engine.dispose(close=False)  # in the child: the parent's pooled connections stay the parent's
        spool.seek(0)
        spool.truncate()  # run here after all, where the child failed
        with store.session() as s:
            events = iter_timeline(s, incident_id, document.names_of(s, incident_id), with_details=fmt == "json")
            if fmt == "json":
                formats.write_json_events(events, spool)
            else:
                spool.writelines(formats.timeline_rows({"timezone": tz}, events, fmt == "html"))
        spool.flush()
        return True

    done = in_fork(work)

    def wait() -> TextIO:
        done()
        spool.seek(0)
        return spool

    return wait


def export_text(store: Store, incident_id: int, fmt: str, **kw: object) -> tuple[str, dict[str, bytes]]:
    """The export as a string (small incidents: Slack uploads, tests)."""
    buf = io.StringIO()
    files = export_incident(store, incident_id, fmt, buf, **kw)  # type: ignore[arg-type]
    return buf.getvalue(), files


def export_rollout(store: Store, rollout_id: int, fmt: str, fp: TextIO) -> None:
    """A rollout's record on its own (md or json): stages, verdicts and why, holds, refusals, its events."""
    with store.session() as s:
        rollout.write_rollout(rollout.build_rollout(s, rollout_id), fmt, fp)
