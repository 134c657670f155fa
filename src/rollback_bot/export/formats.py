"""JSON, CSV, Markdown and HTML from the export document."""

from __future__ import annotations

import base64
import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import FileSystemLoader, StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from rollback_bot.playbook.durations import format_duration

FORMATS = ("md", "json", "csv", "html")


def to_json(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=1, ensure_ascii=False, default=str) + "\n"


def to_csv(doc: dict[str, Any]) -> str:
    zone = ZoneInfo(doc["timezone"])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # RFC 4180: spreadsheets open it as is
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
    for e in doc["events"]:
        at = datetime.fromisoformat(e["at"])
        writer.writerow(
            [
                e["seq"],
                e["at"],
                at.astimezone(zone).isoformat(),
                e["kind"],
                e["actor"] or "",
                e["actor_name"] or "",
                e["role"] or "",
                e["summary"],
                json.dumps(e["details"], ensure_ascii=False, sort_keys=True),
                e["hash"],
            ]
        )
    return "\ufeff" + out.getvalue()  # a BOM so Excel reads UTF-8


def _env(templates: Path, html: bool) -> SandboxedEnvironment:
    env = SandboxedEnvironment(
        loader=FileSystemLoader(str(templates)),
        undefined=StrictUndefined,
        autoescape=html,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["dur"] = lambda s: "-" if s is None else format_duration_s(float(s))
    env.filters["num"] = num
    env.filters["evidence"] = lambda items: ", ".join(f"{e['signal']}={num(e.get('value'))}" for e in items)
    env.filters["values"] = lambda d: ", ".join(f"{k}={num(v.get('value'))}" for k, v in sorted(d.items()))
    return env


def num(value: Any) -> str:
    """Numbers as people read them: 4 significant digits; no data said so."""
    if value is None:
        return "no data"
    if isinstance(value, int | float):
        return f"{value:.4g}"
    return str(value)


def format_duration_s(seconds: float) -> str:
    from datetime import timedelta

    return format_duration(timedelta(seconds=round(seconds)))


def _context(doc: dict[str, Any]) -> dict[str, Any]:
    zone = ZoneInfo(doc["timezone"])

    def local(value: str | None) -> str:
        if not value:
            return "-"
        return datetime.fromisoformat(value).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")

    def between(a: str | None, b: str | None) -> str:
        if not a or not b:
            return "-"
        return format_duration_s((datetime.fromisoformat(b) - datetime.fromisoformat(a)).total_seconds())

    return {"doc": doc, "i": doc["incident"], "local": local, "between": between, "tz": doc["timezone"]}


def to_markdown(doc: dict[str, Any], templates: Path, charts: dict[str, str] | None = None) -> str:
    """`charts` maps a signal to the PNG file name the Markdown should reference."""
    return _env(templates, html=False).get_template("postmortem.md.j2").render(**_context(doc), charts=charts or {})


def to_html(doc: dict[str, Any], templates: Path, charts: dict[str, bytes] | None = None) -> str:
    embedded = {k: base64.b64encode(v).decode() for k, v in (charts or {}).items()}
    return _env(templates, html=True).get_template("postmortem.html.j2").render(**_context(doc), charts=embedded)
