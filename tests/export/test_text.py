"""The hand-written encoders of the exports give exactly what the standard library gives, awkward input too."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from rollback_bot.export.formats import _cell, write_json_events
from rollback_bot.export.jsontext import dumps_indent1


class Text(str):
    pass


class Mapping(dict[str, Any]):
    pass


AWKWARD = [
    "",
    "plain",
    'quote " inside',
    "comma, inside",
    "line\nbreak",
    "cr\rreturn",
    "tab\t and unicode é \u2028 \U0001f600",
    "\x00\x1f control",
    Text("a str subclass"),
]


@pytest.mark.parametrize(
    "value",
    [
        {},
        [],
        {"a": [1, 2.5, float("nan"), float("inf"), -float("inf"), True, False, None, *AWKWARD]},
        {"nested": {"b": {}, "c": [], "d": [{}, [[]]], "e": (1, [2, {"f": ()}])}},
        {3: "int key", 2.5: "float key", True: "bool key", None: "none key", Text("k"): Mapping(x=1)},
        {"when": datetime(2026, 1, 1, tzinfo=UTC), "big": 10**30, "neg": -0.0, "tiny": 1e-300},
    ],
)
def test_indented_json_is_json_dumps(value: object) -> None:
    assert dumps_indent1(value) == json.dumps(value, indent=1, ensure_ascii=False, default=str)


@pytest.mark.parametrize("text", AWKWARD)
@pytest.mark.parametrize("seq", [0, 7, 10**20])
def test_json_events_are_json_dumps(text: str, seq: int) -> None:
    """Each event's line is json.dumps of its fields, written by hand: awkward text in every text field, null
    where a field may be null, and the stored details copied in as they are."""
    names = {text: text}
    for actor, role in [(text, text), (None, None)]:
        row = (seq, "2026-03-01 09:00:00.864000", text, actor, role, text, text, '{"b": [1, "é"]}')
        buf = io.StringIO()
        write_json_events([row, row], names, buf)
        want = {"seq": seq, "at": "2026-03-01T09:00:00.864000+00:00", "kind": text, "actor": actor}
        want |= {"actor_name": names[actor] if actor else None, "role": role, "summary": text, "hash": text}
        want["details"] = {"b": [1, "é"]}
        line = json.dumps(want, ensure_ascii=False)
        assert buf.getvalue() == f"\n  {line},\n  {line}"


def test_csv_cells_are_csv_writer() -> None:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(AWKWARD)
    assert ",".join(_cell(t) for t in AWKWARD) + "\r\n" == buf.getvalue()


ZONES = ["UTC", "Europe/Paris", "America/New_York", "America/St_Johns", "Asia/Kathmandu", "Australia/Lord_Howe"]


@pytest.mark.parametrize("zone", ZONES)
def test_local_times_are_the_zones_own(zone: str) -> None:
    """Across DST changes (Newfoundland's at half past a UTC hour), and again from the per-minute cache; also
    from the database's own text, as the post-mortem's table shows them."""
    from datetime import timedelta
    from zoneinfo import ZoneInfo

    from rollback_bot.export.formats import LocalTime

    local = LocalTime(ZoneInfo(zone))
    start = datetime(2026, 3, 8, 0, 0, 0, 864000, tzinfo=UTC)
    times = [start + timedelta(seconds=97 * k) for k in range(2000)] + [datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC)]
    for _ in range(2):
        for at in times:
            utc = at.isoformat()
            want = at.astimezone(ZoneInfo(zone)).replace(microsecond=0)
            assert local(utc) == want.isoformat()
            assert local(utc, iso=False) == want.replace(tzinfo=None).isoformat(sep=" ")
            stored = at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")  # SQLite's text
            shown = (
                want.replace(tzinfo=None).isoformat(sep=" "),
                at.replace(microsecond=0, tzinfo=None).isoformat(sep=" "),
            )
            assert local.shown(stored) == shown


def test_html_escape_is_markupsafe() -> None:
    from markupsafe import escape

    from rollback_bot.export.formats import html_escape

    for text in [*AWKWARD, "<b>&amp; 'x' \"y\"</b>", "&&<<>>''\"\""]:
        assert html_escape(text) == str(escape(text))


def test_members_written_as_they_go_are_the_indented_json_without_its_closing_brace() -> None:
    from rollback_bot.export.jsontext import write_members_indent1

    doc = {"a": 1, "b": [{"c": AWKWARD}, {}], "d": {"e": None}, "f": [[1.5] * 50]}
    buf = io.StringIO()
    write_members_indent1(doc, buf, flush_every=7)
    whole = json.dumps(doc, indent=1, ensure_ascii=False, default=str)
    assert buf.getvalue() == whole[: whole.rfind("}")].rstrip()


def test_records_are_written_one_compact_item_per_line() -> None:
    from rollback_bot.export.jsontext import write_members_indent1

    rows: list[dict[str, Any]] = [{"c": AWKWARD, "n": [1.5, None]}, {}, {"d": float("nan")}]
    doc = {"a": 1, "rows": rows, "empty": [], "b": {"e": 2}}
    buf = io.StringIO()
    write_members_indent1(doc, buf, flush_every=3, records=("rows", "empty"))
    text = buf.getvalue() + "\n}"
    assert json.dumps(json.loads(text)) == json.dumps(doc)  # the same document (NaN included)
    lines = text.split("\n")  # not splitlines(): U+2028 and kin are in AWKWARD, unescaped
    start = lines.index(' "rows": [')
    assert [json.loads(line.rstrip(",")) for line in lines[start + 1 : start + 3]] == rows[:2]
    assert lines[start + 3] == '  {"d": NaN}' and lines[start + 4] == " ],"
    assert ' "empty": [],' in lines


@pytest.mark.parametrize(
    "stored",
    [
        "2026-03-08 00:00:00.864000",  # SQLite's own text
        "2026-03-08 00:00:00.864+00",  # PostgreSQL's, to the millisecond: as long as SQLite's
        "2026-03-07 19:00:00.864-05",  # ... in another session time zone
        "2026-03-08 05:30:00.864+05:30",
        "2026-03-08 00:00:00.864123+00",
        "2026-03-08 00:00:00.86+00",
        "2026-03-08 00:00:00+00",
    ],
)
def test_stored_times_of_either_database_are_read_as_the_same_instant(stored: str) -> None:
    """Each database's text of 2026-03-08 00:00:00(.864) UTC is that instant in every export: PostgreSQL's
    text to the millisecond is as long as SQLite's, and once was taken for it."""
    from zoneinfo import ZoneInfo

    from rollback_bot.export.document import stored_iso, utc_iso
    from rollback_bot.export.formats import LocalTime

    instant = datetime.fromisoformat(stored)
    instant = instant.replace(tzinfo=UTC) if instant.tzinfo is None else instant
    for read in (utc_iso, stored_iso):
        assert datetime.fromisoformat(read(stored)) == instant
    local = LocalTime(ZoneInfo("Asia/Kolkata"))
    for _ in range(2):  # and again from the per-minute cache
        assert local.shown(stored) == ("2026-03-08 05:30:00", "2026-03-08 00:00:00")


def test_a_name_that_is_a_formula_is_not_one_in_the_csv() -> None:
    from rollback_bot.export.formats import csv_rows

    row = (1, "2026-03-01 09:00:00.000000", "note", "U1", None, "note by x", "h", "{}")
    names = {"U1": '=HYPERLINK("http://evil.example","Ada")', "U2": "Ben"}
    text = "".join(csv_rows({"timezone": "UTC"}, [row, (*row[:3], "U2", *row[4:])], names))
    [first, second] = list(csv.reader(io.StringIO(text)))
    assert first[5] == "'" + names["U1"] and second[5] == "Ben"
