"""JSON, CSV, Markdown and HTML, written to a stream: the timeline goes from the database to the file
without being held in memory."""

from __future__ import annotations

import base64
import csv
import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from jinja2 import ChoiceLoader, FileSystemLoader, StrictUndefined, Template
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup, escape

from rollback_bot.builtin import BuiltinMissing, builtin_templates
from rollback_bot.export.rollout import markdown as rollout_markdown
from rollback_bot.playbook.durations import format_duration

FORMATS = ("md", "json", "csv", "html")
Events = Iterable[dict[str, Any]]


def write_json(doc: dict[str, Any], events: Events, fp: TextIO) -> None:
    head = json.dumps({k: v for k, v in doc.items() if k != "names"}, indent=1, ensure_ascii=False, default=str)
    fp.write(head[: head.rfind("}")].rstrip() + ',\n "events": [')
    sep = "\n  "
    for e in events:
        item = json.dumps(
            {
                "seq": e["seq"],
                "at": e["at"],
                "kind": e["kind"],
                "actor": e["actor"],
                "actor_name": e["actor_name"],
                "role": e["role"],
                "summary": e["summary"],
                "hash": e["hash"],
            },
            ensure_ascii=False,
        )
        fp.write(sep + item[:-1] + ', "details": ' + e["details_json"] + "}")  # stored JSON, copied as is
        sep = ",\n  "
    fp.write("\n ]\n}\n")


class LocalTime:
    """UTC ISO text -> local time text, caching the zone's offset per hour (DST changes on the hour)."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._offsets: dict[str, tuple[timedelta, str]] = {}

    def __call__(self, utc: str, iso: bool = True) -> str:
        hour = utc[:13]
        cached = self._offsets.get(hour)
        if cached is None:
            offset = datetime.fromisoformat(utc).astimezone(self.zone).utcoffset() or timedelta(0)
            sign, total = ("-" if offset < timedelta(0) else "+"), abs(int(offset.total_seconds()))
            cached = self._offsets[hour] = (offset, f"{sign}{total // 3600:02d}:{total % 3600 // 60:02d}")
        offset, suffix = cached
        base = datetime.fromisoformat(utc[:19]) + offset
        return f"{base.isoformat()}{suffix}" if iso else base.isoformat(sep=" ")


def write_csv(doc: dict[str, Any], events: Events, fp: TextIO) -> None:
    local = LocalTime(ZoneInfo(doc["timezone"]))
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
    writer.writerows(
        [
            e["seq"],
            e["at"],
            local(e["at"]),
            e["kind"],
            e["actor"] or "",
            e["actor_name"] or "",
            e["role"] or "",
            e["summary"],
            e["details_json"],
            e["hash"],
        ]
        for e in events
    )


def format_duration_s(seconds: float) -> str:
    return format_duration(timedelta(seconds=round(seconds)))


def num(value: Any) -> str:
    """Numbers as people read them: 4 significant digits; no data said so."""
    if value is None:
        return "no data"
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def template_folders(templates: Path) -> list[Path]:
    """Where a post-mortem template is looked for: the given folder, then the built-in templates."""
    try:
        return [templates, builtin_templates()]
    except BuiltinMissing:
        return [templates]


def postmortem_template(templates: Path, fmt: str) -> Template:
    """postmortem.{fmt}.j2 from `templates`, or the built-in one where that folder has none."""
    return _env(templates, html=fmt == "html").get_template(f"postmortem.{fmt}.j2")


def _env(templates: Path, html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=ChoiceLoader([FileSystemLoader(str(folder)) for folder in template_folders(templates)]),
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dur"] = lambda s: "-" if s is None else format_duration_s(float(s))
    env.filters["num"] = num
    env.filters["evidence"] = lambda items: ", ".join(f"{e['signal']}={num(e.get('value'))}" for e in items)
    env.filters["values"] = lambda d: ", ".join(f"{k}={num(v.get('value'))}" for k, v in sorted(d.items()))
    env.filters["rollout"] = lambda doc: "\n".join(rollout_markdown(doc, level="##"))
    return env


def _context(doc: dict[str, Any], events: Events) -> dict[str, Any]:
    zone = ZoneInfo(doc["timezone"])

    def local(value: str | datetime | None) -> str:
        if not value:
            return "-"
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
    }


def timeline_rows(doc: dict[str, Any], events: Events, html: bool, batch: int = 500) -> Iterator[str]:
    """The timeline table's rows, formatted here and handed to the template in batches (a 100,000-event
    timeline through a template's attribute lookups is several times slower); the rest of the document
    stays in the template."""
    local = LocalTime(ZoneInfo(doc["timezone"]))
    lines: list[str] = []
    for e in events:
        at = local(e["at"], iso=False)
        utc = e["at"][:19].replace("T", " ")
        actor = f"{e['actor_name']} ({e['actor']})" if e["actor"] else ""
        if html:
            # one escape per row: the cell separator (a control character) passes through escaping untouched
            row = "\x1f".join(
                (str(e["seq"]), at, utc, e["kind"], actor, e["role"] or "", e["summary"].replace("\x1f", " "))
            )
            lines.append("<tr><td>" + str(escape(row)).replace("\x1f", "</td><td>") + "</td></tr>\n")
        else:
            summary = e["summary"].replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {e['seq']} | {at} | {utc} | {e['kind']} | {actor} | {e['role'] or ''} | {summary} |\n")
        if len(lines) >= batch:
            yield "".join(lines)
            lines = []
    if lines:
        yield "".join(lines)


def write_markdown(doc: dict[str, Any], events: Events, templates: Path, charts: dict[str, str], fp: TextIO) -> None:
    """`charts` maps a signal to the PNG file name the Markdown should reference."""
    template = postmortem_template(templates, "md")
    fp.writelines(template.generate(**_context(doc, events), timeline=timeline_rows(doc, events, False), charts=charts))


def write_html(doc: dict[str, Any], events: Events, templates: Path, charts: dict[str, bytes], fp: TextIO) -> None:
    embedded = {k: base64.b64encode(v).decode() for k, v in charts.items()}
    template = postmortem_template(templates, "html")
    rows = (Markup(row) for row in timeline_rows(doc, events, True))  # already escaped, cell by cell
    fp.writelines(template.generate(**_context(doc, events), timeline=rows, charts=embedded))
