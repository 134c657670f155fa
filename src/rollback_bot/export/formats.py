"""JSON, CSV, Markdown and HTML, written to a stream: the timeline goes from the database to the file
without being held in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from json.encoder import encode_basestring
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from markupsafe import Markup

from rollback_bot.builtin import BuiltinMissing, builtin_templates
from rollback_bot.export.document import ExportError, utc_iso
from rollback_bot.export.jsontext import write_members_indent1
from rollback_bot.export.rollout import markdown as rollout_markdown
from rollback_bot.playbook.durations import format_duration
from rollback_bot.store.stream import sqlite_time

FORMATS = ("md", "json", "csv", "html")
Events = Iterable[dict[str, Any]]
Rows = Iterable[Any]  # the timeline as document.timeline reads it


def write_json(doc: dict[str, Any], rows: Rows, fp: TextIO) -> None:
    write_json_head(doc, fp)
    write_json_events(rows, doc["names"], fp)
    write_json_tail(fp)


# the document's lists of records, one per line in the JSON like the events (export/SCHEMA.md)
RECORDS = ("approvals", "denials", "signals_fired", "communications", "action_results")


def write_json_head(doc: dict[str, Any], fp: TextIO) -> None:
    write_members_indent1({k: v for k, v in doc.items() if k != "names"}, fp, records=RECORDS)
    fp.write(',\n "events": [')


def write_json_tail(fp: TextIO) -> None:
    fp.write("\n ]\n}\n")


def write_json_events(rows: Rows, names: dict[str, str], fp: TextIO) -> None:
    sep = "\n  "
    batch: list[str] = []
    q = encode_basestring  # seq is an int; at, kind, summary and hash are text (NOT NULL); the rest may be null
    for seq, at, kind, actor, role, summary, digest, details in rows:
        # json.dumps of the event's fields (in this order) with the stored details JSON copied in as is
        name = names.get(actor) if actor else None
        batch.append(
            f'{sep}{{"seq": {seq}, "at": {q(utc_iso(at))}, "kind": {q(kind)}, '
            f'"actor": {"null" if actor is None else q(actor)}, "actor_name": {"null" if name is None else q(name)}, '
            f'"role": {"null" if role is None else q(role)}, "summary": {q(summary)}, "hash": {q(digest)}, '
            f'"details": {details}}}'
        )
        sep = ",\n  "
        if len(batch) >= 1000:
            fp.write("".join(batch))
            batch.clear()
    fp.write("".join(batch))


class LocalTime:
    """UTC ISO text -> local time text, caching the local date, hour and minute per UTC minute (zone offsets
    are whole minutes since 1970; a zone's older offsets in seconds take the slow way)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[str, tuple[timedelta, str]] = {}
        self._minutes: dict[tuple[str, bool], tuple[str, str]] = {}
        self._shown: dict[str, tuple[str, str]] = {}  # SQLite's stored minute -> its local and UTC minute

    def shown(self, stored: str) -> tuple[str, str]:
        """A time as the database gave it (utc_iso reads it), as a post-mortem's two columns, to the second:
        local and UTC. SQLite's text (naive UTC) is looked up by its minute without parsing."""
        sqlite = sqlite_time(stored)
        if sqlite:
            cached = self._shown.get(stored[:16])
            if cached is not None:
                second = stored[16:19]
                return cached[0] + second, cached[1] + second
        iso = utc_iso(stored)
        local, utc = self(iso, iso=False), iso[:19].replace("T", " ")
        if sqlite and (iso[:16], False) in self._minutes:  # a whole-minute offset: the minute's text holds
            self._shown[stored[:16]] = (local[:16], utc[:16])
        return local, utc

    def __call__(self, utc: str, iso: bool = True) -> str:
        cached = self._minutes.get((utc[:16], iso))
        if cached is not None:
            return f"{cached[0]}{utc[16:19]}{cached[1]}"
        offset, suffix = self._offset(utc)
        base = datetime.fromisoformat(utc[:19]) + offset
        text = f"{base.isoformat()}{suffix}" if iso else base.isoformat(sep=" ")
        if not offset.total_seconds() % 60:
            self._minutes[(utc[:16], iso)] = (text[:16], text[19:])
        return text

    def _offset(self, utc: str) -> tuple[timedelta, str]:
        """The zone's offset in this UTC minute (not hour: Newfoundland's and Lord Howe's changes fall at half
        past a UTC hour)."""
        minute = utc[:16]
        cached = self._offsets.get(minute)
        if cached is None:
            offset = datetime.fromisoformat(utc).astimezone(self.zone).utcoffset() or timedelta(0)
            sign, total = ("-" if offset < timedelta(0) else "+"), abs(int(offset.total_seconds()))
            cached = self._offsets[minute] = (offset, f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}")
        return cached


def write_csv(doc: dict[str, Any], rows: Rows, names: dict[str, str], fp: TextIO) -> None:
    fp.write("\ufeff")  # a BOM so Excel reads UTF-8
    writer = csv.writer(fp, lineterminator="\r\n")  # RFC 4180: spreadsheets open it as is
    writer.writerow(
        [
            "seq",
            "time_utc",
            f"time_{doc['timezone']}",
            "kind",
            "actor_id",
            "actor_name",
            "role",
            "summary",
            "details",
            "hash",
        ]
    )
    fp.writelines(csv_rows(doc, rows, names))


def csv_rows(doc: dict[str, Any], rows: Rows, names: dict[str, str]) -> Iterator[str]:
    """The CSV's rows, a thousand at a time."""
    local = LocalTime(ZoneInfo(doc["timezone"]))
    names = {k: _inert(v) for k, v in names.items() if v}
    batch: list[str] = []
    for seq, stored_at, kind, actor, role, summary, digest, details in rows:
        at = utc_iso(stored_at)
        name = (names.get(actor) or "") if actor else ""
        batch.append(
            f"{seq},{at},{local(at)},{_cell(kind)},{_cell(actor or '')},{_cell(name)},{_cell(role or '')},"
            f"{_cell(summary)},{_cell(details)},{_cell(digest)}\r\n"
        )
        if len(batch) >= 1000:
            yield "".join(batch)
            batch.clear()
    yield "".join(batch)


def _inert(name: str) -> str:
    """A person's name (theirs to choose, in Slack) as a spreadsheet cell that is not a formula: one starting
    with = + - @ is read as one by Excel and its kin (CSV injection), so it starts with ' instead, as OWASP
    advises."""
    return f"'{name}" if name[:1] in ("=", "+", "-", "@", "\t", "\r") else name


def _cell(text: str) -> str:
    """A CSV field as csv.writer writes it (QUOTE_MINIMAL, lineterminator CRLF), at half its cost."""
    if '"' in text or "," in text or "\n" in text or "\r" in text:
        return '"' + text.replace('"', '""') + '"'
    return text


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))


def num(value: Any) -> str:
    """Numbers as people read them: 4 significant digits; no data said so."""
    if value is None:
        return "no data"
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def _evidence(items: list[dict[str, Any]], labels: dict[str, str] | None = None) -> str:
    """`signal (label)=value, ...`: a signal's label from the playbook where it has one."""
    shown = []
    for e in items:
        label = (labels or {}).get(str(e["signal"]))
        shown.append(f"{e['signal']}{f' ({label})' if label else ''}={num(e.get('value'))}")
    return ", ".join(shown)


def template_folders(templates: Path) -> list[Path]:
    """Where a post-mortem template is looked for: the given folder, then the built-in templates."""
    try:
        return [templates, builtin_templates()]
    except BuiltinMissing:
        return [templates]


def postmortem_template(templates: Path, fmt: str) -> Any:
    """postmortem.{fmt}.j2 from `templates`, or the built-in one where that folder has none."""
    try:
        return _env(templates, html=fmt == "html").get_template(f"postmortem.{fmt}.j2")
    except Exception as exc:
        raise _template_problem(exc, str(templates / f"postmortem.{fmt}.j2")) from None


def _render(template: Any, fp: TextIO, **context: Any) -> None:
    try:
        fp.writelines(template.generate(**context))
    except Exception as exc:
        if not _raised_by_template(exc, template.filename):
            raise  # ours (the database, the charts, a filter): not the template's to fix
        raise _template_problem(exc, template.filename) from None


def _raised_by_template(exc: Exception, filename: str) -> bool:
    """Jinja's own errors, and what the template's code or a Jinja builtin it called raised itself; not what
    merely passed through it (the timeline's rows and the charts are made while the template runs)."""
    import traceback

    import jinja2

    if isinstance(exc, jinja2.TemplateError):
        return True
    frames = traceback.extract_tb(exc.__traceback__)
    innermost = frames[-1].filename if frames else ""
    return innermost == filename or innermost.startswith(str(Path(jinja2.__file__).parent))


class TemplateFailed(ExportError):
    """A post-mortem template that does not compile or raised while rendering: where, what, and what to do."""

    def __init__(self, filename: str, line: int, what: str) -> None:
        from rollback_bot.render.comms import shown_path

        self.filename, self.line, self.what = filename, line, what
        super().__init__(
            f"{shown_path(filename)}:{line}: {what}; fix the template (`rollback-bot check` renders a playbook's "
            "own) or pass --templates DIR"
        )


def _template_problem(exc: Exception, filename: str) -> TemplateFailed:
    from rollback_bot.render.comms import problem_text, template_line

    return TemplateFailed(filename, template_line(exc, filename) or 1, problem_text(exc))


def _env(templates: Path, html: bool) -> Any:
    from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, pass_context  # here: JSON, CSV need none
    from jinja2.sandbox import SandboxedEnvironment

    class Environment(SandboxedEnvironment):
        """`row.name` of a plain dict read at once: Jinja tries the attribute first and catches the
        AttributeError before reading the key, which cost more than the rest of a 30,000-row table. The
        same result: a dict's own attributes still come first."""

        def getattr(self, obj: Any, attribute: str) -> Any:
            if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
                try:
                    return obj[attribute]
                except KeyError:
                    return self.undefined(obj=obj, name=attribute)
            return super().getattr(obj, attribute)

    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(str(folder)) for folder in template_folders(templates)]),
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dur"] = lambda s: "-" if s is None else format_duration_s(float(s))
    env.filters["num"] = num
    env.filters["cell"] = lambda text: md_cell(str(text)) if text is not None else "-"
    # `t | local` is local(t) without the sandbox's checks of a call (tens of thousands of rows)
    env.filters["local"] = pass_context(lambda context, value: context["local"](value))
    env.filters["evidence"] = _evidence
    env.filters["values"] = lambda d: ", ".join(f"{k}={num(v.get('value'))}" for k, v in sorted(d.items()))
    env.filters["rollout"] = lambda doc: "\n".join(rollout_markdown(doc, level="##"))
    env.filters["refusals_by"] = lambda denials: _counted(denials, ("action", "name", "user", "needed"))
    env.filters["results_by"] = lambda results: _counted(results, ("action", "stage", "outcome", "http_status"))
    return env


LISTED = 25  # refusals and action results a post-mortem lists one by one; beyond, it counts them (all of them)


def _counted(records: list[dict[str, Any]], keys: tuple[str, ...]) -> list[dict[str, Any]]:
    """The records counted by the values of `keys`, each group with its first and last time: the most
    frequent first, ties in the order they began."""
    groups: dict[tuple[Any, ...], dict[str, Any]] = {}
    for r in records:
        key = tuple(v if isinstance(v := r.get(k), str | int | float | None) else repr(v) for k in keys)
        group = groups.get(key)
        if group is None:
            groups[key] = {**{k: r.get(k) for k in keys}, "count": 1, "first": r["at"], "last": r["at"]}
        else:
            group["count"] += 1
            group["last"] = r["at"]
    return sorted(groups.values(), key=lambda g: -g["count"])  # stable: ties keep the order they began


_DICT_ATTRIBUTES = frozenset(dir(dict))


def _context(doc: dict[str, Any], events: Events) -> dict[str, Any]:
    zone = ZoneInfo(doc["timezone"])
    fast = LocalTime(zone)

    def local(value: str | datetime | None) -> str:
        if not value:
            return "-"
        if isinstance(value, str) and value.endswith("+00:00") and len(value) >= 25 and value[10] == "T":
            return fast(value, iso=False)  # the document's times are ISO UTC
        at = datetime.fromisoformat(value) if isinstance(value, str) else value
        return at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def between(a: str | None, b: str | None) -> str:
        if not a or not b:
            return "-"
        return format_duration_s((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds())

    return {
        "doc": doc,
        "i": doc["incident"],
        "events": events,
        "local": local,
        "between": between,
        "tz": doc["timezone"],
        "listed": LISTED,
    }


def html_escape(text: str) -> str:
    """markupsafe.escape's text (the same five entities) without a Markup object per call."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    if "'" in text:
        text = text.replace("'", "&#39;")
    if '"' in text:
        text = text.replace('"', "&#34;")
    return text


# what a Markdown table cell must not hold as it is: a cell separator, a line break, the start of inline HTML
# (a note saying <script> is shown, not run, wherever the draft is rendered), control characters (a terminal
# would act on them)
_MD_CELL = {c: "\ufffd" for c in [*range(0x20), 0x7F, *range(0x80, 0xA0)]} | {
    ord("|"): "\\|",
    ord("\n"): " ",
    ord("<"): "&lt;",
}


def md_cell(text: str) -> str:
    """Text from people (notes, names) as a Markdown table cell shows it."""
    if text.isprintable() and "|" not in text and "<" not in text:  # most text: nothing to do
        return text
    return text.translate(_MD_CELL)


def timeline_rows(
    doc: dict[str, Any], rows: Rows, names: dict[str, str], html: bool, batch: int = 500
) -> Iterator[str]:
    """The timeline table's rows, formatted here and handed to the template in batches (a 100,000-event
    timeline through a template's attribute lookups is several times slower); the rest of the document
    stays in the template."""
    local = LocalTime(ZoneInfo(doc["timezone"]))
    lines: list[str] = []
    for seq, stored_at, kind, actor_id, role, summary, _, _ in rows:
        at, utc = local.shown(stored_at)
        actor = f"{names.get(actor_id)} ({actor_id})" if actor_id else ""
        if html:
            # one escape per row: the cell separator (a control character) passes through escaping untouched
            row = "\x1f".join((str(seq), at, utc, kind, actor, role or "", summary.replace("\x1f", " ")))
            lines.append("<tr><td>" + html_escape(row).replace("\x1f", "</td><td>") + "</td></tr>\n")
        else:
            lines.append(f"| {seq} | {at} | {utc} | {kind} | {md_cell(actor)} | {role or ''} | {md_cell(summary)} |\n")
        if len(lines) >= batch:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def write_postmortem(
    fmt: str,
    doc: dict[str, Any],
    events: Events,
    templates: Path,
    charts: dict[str, str],
    fp: TextIO,
    rows: Iterable[str],
) -> None:
    """The Markdown or HTML post-mortem. `charts`: what the template shows for each signal's chart (Markdown:
    the PNG file's name; HTML: the PNG in base64); `rows`: the timeline's table rows (timeline_rows, or as
    spooled ahead); `events`: the timeline as dicts, for teams' templates (read only if one loops over them)."""
    html = fmt == "html"
    template = postmortem_template(templates, fmt)
    made = rows
    if html:
        made = (Markup(row) for row in rows)  # already escaped, cell by cell
    _render(template, fp, **_context(doc, events), timeline=made, charts=charts)
