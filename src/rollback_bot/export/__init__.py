"""Post-incident exports: one document, four formats, charts of the signals that fired."""

from __future__ import annotations

import base64
import functools
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from rollback_bot import plotting
from rollback_bot.export import charts, document, formats, rollout
from rollback_bot.export.document import ExportError, build, iter_timeline
from rollback_bot.forked import in_fork
from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.plotting import Plot, Plotter
from rollback_bot.store.chain import incident_chain
from rollback_bot.store.database import Store, own_session
from rollback_bot.store.stream import halfway
from rollback_bot.store.verify import verify_chain, verify_in_background

__all__ = ["ExportError", "Exported", "export_incident", "export_rollout", "export_text"]


@dataclass(frozen=True)
class Exported:
    """What an export wrote besides its text: the chart files the Markdown references (named after `out`),
    and the document's `chain` section (final_hash, verified, intact, problem); None for a CSV not verified."""

    files: dict[str, bytes]
    chain: dict[str, Any] | None

    @property
    def broken(self) -> str | None:
        """Why the timeline cannot be trusted, where it was found broken; else None."""
        if self.chain is None or self.chain["intact"] is not False:
            return None
        return str(self.chain["problem"])


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
    plotter: Plotter | None = None,
) -> Exported:
    """Write the export to `fp`; return the chart files the Markdown references (named after `out`) and the
    document's chain section (with `verify`, from a full check of the chain; a CSV has one only then).
    `background` (single-threaded callers: the CLI): the charts, the timeline and --verify's check of the chain
    are made in forked processes meanwhile, each waited for before this returns or raises. `plotter`: the
    process that draws the charts, where the caller started one (it is sent the charts, or stopped); else, in
    the background, one is started when there are charts."""
    if fmt not in formats.FORMATS:
        raise ExportError(f"unknown format {fmt!r}; choose one of {', '.join(formats.FORMATS)}")
    with store.session() as s:
        if fmt == "csv":  # the timeline alone: it has no place for the chain's check (the caller says it)
            zone = document.opening(s, incident_id, tz)[1]
            names = document.names_of(s, incident_id)
            # the CLI: a long timeline's second half is written by a fork on the other core meanwhile (and with
            # --verify, the chain is checked in another meanwhile; where both are, they take turns)
            middle = halfway(s, incident_chain(incident_id)) if background else None
            second = _SpooledTimeline(store, incident_id, fmt, zone.key, names, start=middle) if middle else None
            try:
                rows = document.timeline(s, incident_id, with_details=True, stop=middle)
                formats.write_csv({"timezone": zone.key}, rows, names, fp)
                if second is not None:
                    fp.writelines(second.text())
            finally:
                if second is not None:
                    second.close()
            if not verify:
                return Exported({}, None)
            report = verify_chain(s, incident_chain(incident_id), store.engine if background else None)
            return Exported({}, document.chain_section(s, incident_id, report))
        incident, zone = document.opening(s, incident_id, tz)  # no such incident or zone: said before anything
        if fmt in ("md", "html"):  # the template first: a missing one is said before any process is started
            loaded = parse_playbook(incident.playbook_text, incident.playbook_path)
            folder = templates or loaded.templates_dir  # the playbook's falls back to the built-in (formats.py)
            name = f"postmortem.{fmt}.j2"
            if not any((f / name).exists() for f in ([folder] if templates else formats.template_folders(folder))):
                raise ExportError(f"template {folder / name} not found; pass --templates DIR")
        # the CLI's --verify: the chain is checked in a fork, on the other core, while the export is gathered
        checked = verify_in_background(store.engine, incident_chain(incident_id)) if verify and background else None
        checked = functools.cache(checked) if checked is not None else None  # waited for once, at the latest below
        # the CLI: the timeline is written to a file by a fork on the other core, begun first, while the summary
        # is gathered (with --verify the other core checks the chain: the timeline is spooled here, while it does)
        known = None if checked is None else document.names_of(s, incident_id)  # the fork finds its own
        spooled = _SpooledTimeline(store, incident_id, fmt, tz, known, fork=checked is None) if background else None
        pngs: Callable[[], dict[str, bytes]] = dict
        try:
            names = document.names_of(s, incident_id) if known is None else known
            jobs: dict[str, Plot] = {}
            if fmt in ("md", "html") and with_charts and not (fmt == "md" and out is None):  # md on stdout: no charts
                basis = document.charts_basis(s, incident)
                start, end = charts.window(basis, datetime.now(UTC))
                for signal in charts.fired_signals(loaded.playbook, basis["signals_fired"]):
                    found = charts.points(s, loaded.playbook, signal, start, end)
                    if found:
                        jobs[signal] = charts.plot(loaded.playbook, signal, found, incident.opened_at, start, end, zone)
            if plotter is None and background and jobs:  # drawn in a fork all the same, started only now
                plotter = Plotter()
            if plotter is not None:  # the CLI's, started before its imports: matplotlib is imported already
                pngs = plotter.send(jobs)
            elif jobs:
                pngs = functools.partial(plotting.draw_all, jobs)
            pngs = functools.cache(pngs)  # waited for once: by the document or, where it failed first, at the end
            doc = build(s, incident_id, tz, verify and checked is None, known=names)
            doc["rollout"] = rollout.for_incident(s, incident_id)  # the rollout that opened it, if one did
            if checked is not None:
                doc["chain"] = document.chain_section(s, incident_id, checked())
            if fmt == "json":
                if spooled is None:
                    formats.write_json(doc, document.timeline(s, incident_id, with_details=True), fp)
                else:
                    formats.write_json_head(doc, fp)
                    fp.writelines(spooled.text())
                    formats.write_json_tail(fp)
                return Exported({}, doc["chain"])
            events = iter_timeline(s, incident_id, names, with_details=False)  # read only if a template does
            html = fmt == "html"
            if spooled is not None:
                rows = spooled.text()
            else:
                rows = formats.timeline_rows(doc, document.timeline(s, incident_id, False), names, html)
            if html:  # the charts embedded
                embedded = {k: base64.b64encode(v).decode() for k, v in pngs().items()}
                formats.write_postmortem(fmt, doc, events, folder, embedded, fp, rows)
                return Exported({}, doc["chain"])
            shown = {signal: f"{out.stem}-{signal}.png" for signal in jobs} if out else {}  # files beside `out`
            formats.write_postmortem(fmt, doc, events, folder, shown, fp, rows)
            return Exported({shown[k]: v for k, v in pngs().items()}, doc["chain"])
        finally:  # whatever failed on the way: no forked process left unwaited, no file left open
            if spooled is not None:
                spooled.close()
            if background:
                pngs()
            if checked is not None:
                checked()


class _SpooledTimeline:
    """The timeline as the format writes it (JSON events, CSV rows, or the post-mortem's table rows), written
    to a temporary file by a forked process on its own connection while the summary is gathered; from event
    number `start` on, where given (the caller writes the rest)."""

    def __init__(
        self,
        store: Store,
        incident_id: int,
        fmt: str,
        tz: str,
        names: dict[str, str] | None,
        fork: bool = True,
        start: int | None = None,
    ) -> None:
        """`names`: names_of(), where the caller has them already; `fork=False`: written here, now."""
        self.store, self.incident_id, self.fmt, self.tz, self.names = store, incident_id, fmt, tz, names
        self.start = start
        self.spool = tempfile.TemporaryFile("w+", encoding="utf-8", newline="")  # noqa: SIM115 (close())
        self.parent = os.getpid()
        self.done: Callable[[], bool] | None = in_fork(self._write) if fork else None
        if not fork:
            self._write()

    def _write(self) -> bool:
        self.spool.seek(0)
        self.spool.truncate()  # run here after all, where the child failed
        with own_session(self.store.engine, self.parent) as s:
            names = document.names_of(s, self.incident_id) if self.names is None else self.names
            rows = document.timeline(s, self.incident_id, self.fmt in ("json", "csv"), start=self.start)
            if self.fmt == "json":
                formats.write_json_events(rows, names, self.spool)
            elif self.fmt == "csv":
                self.spool.writelines(formats.csv_rows({"timezone": self.tz}, rows, names))
            else:
                html = self.fmt == "html"
                self.spool.writelines(formats.timeline_rows({"timezone": self.tz}, rows, names, html))
        self.spool.flush()
        return True

    def _wait(self) -> None:
        if self.done is not None:
            done, self.done = self.done, None
            done()

    def text(self) -> Iterator[str]:
        """The written text, waited for when first asked (the timeline is at the document's end: the summary
        is written meanwhile)."""
        self._wait()
        self.spool.seek(0)
        yield from iter(lambda: self.spool.read(1 << 16), "")

    def close(self) -> None:
        self._wait()
        self.spool.close()


def export_text(store: Store, incident_id: int, fmt: str, **kw: object) -> tuple[str, dict[str, bytes]]:
    """The export as a string (small incidents: Slack uploads, tests)."""
    buf = io.StringIO()
    files = export_incident(store, incident_id, fmt, buf, **kw).files  # type: ignore[arg-type]
    return buf.getvalue(), files


def export_rollout(store: Store, rollout_id: int, fmt: str, fp: TextIO) -> None:
    """A rollout's record on its own (md or json): stages, verdicts and why, holds, refusals, its events."""
    with store.session() as s:
        rollout.write_rollout(rollout.build_rollout(s, rollout_id), fmt, fp)
