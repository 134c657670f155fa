"""Exports of an incident driven through the real flows: every format's content, time zones, open
incidents, charts, and no secrets anywhere."""

from __future__ import annotations

import csv
import io
import json
import logging
from datetime import timedelta
from pathlib import Path

import pytest

from rollback_bot import flows
from rollback_bot.export import ExportError, export_text
from rollback_bot.export.document import SCHEMA, VERSION
from tests.flows.conftest import Env


def drive(env: Env) -> int:
    """Open, deny, acknowledge, approve in two roles, run both rollback stages, note, resolve."""
    env.metrics["errors"] = 0.05
    env.poll()
    env.clock.advance(timedelta(minutes=3))
    flows.acknowledge(env.deps, 1, "URESP")
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    env.poll()
    flows.approve(env.deps, 1, "rollback", "UX")  # refused
    flows.approve(env.deps, 1, "rollback", "UAPP1")
    flows.approve(env.deps, 1, "rollback", "USAFE")
    env.clock.advance(timedelta(minutes=10))
    env.metrics["errors"] = 0.0
    env.poll()
    flows.tick(env.deps)
    flows.add_note(env.deps, 1, "URESP", 'traffic is back on v41 | "all good"')
    return 1


def export(env: Env, fmt: str, **kw: object) -> str:
    return export_text(env.deps.store, 1, fmt, **kw)[0]


def test_json_is_complete_versioned_and_verifiable(env: Env) -> None:
    drive(env)
    doc = json.loads(export(env, "json"))
    assert (doc["schema"], doc["version"]) == (SCHEMA, VERSION) == ("rollback-bot/incident-export", 1)
    assert doc["incident"]["open"] is True and doc["incident"]["acknowledged_by_name"] == "Rui"
    kinds = [e["kind"] for e in doc["events"]]
    assert kinds[:3] == ["signal.fired", "incident.opened", "step.entered"]
    assert "approval.denied" in kinds and kinds.count("action.succeeded") == 2
    assert [e["seq"] for e in doc["events"]] == list(range(1, len(kinds) + 1))
    assert doc["chain"]["final_hash"] == doc["events"][-1]["hash"] and doc["chain"]["intact"] is None
    assert json.loads(export(env, "json", verify=True))["chain"]["intact"] is True
    [denied] = [e for e in doc["events"] if e["kind"] == "approval.denied"]
    assert (denied["actor"], denied["actor_name"], denied["details"]["values"]["errors"]["value"]) == (
        "UX",
        "Xavier",
        0.05,
    )
    approvals = [
        (a["label"], a["user"], a["name"], a["role"], a["evidence"]["errors"]["value"]) for a in doc["approvals"]
    ]
    assert approvals == [
        ("Roll back", "UAPP1", "Ada", "approver", 0.05),
        ("Roll back", "USAFE", "Sam", "safety_lead", 0.05),
    ]
    assert [(r["action"], r["stage"], r["outcome"], r["http_status"]) for r in doc["action_results"]] == [
        ("rollback", 10.0, "succeeded", 200),
        ("rollback", 100.0, "succeeded", 200),
    ]
    steps = doc["ladder"]
    assert [s["entered_at"] is not None for s in steps] == [True, True, False]
    assert steps[1]["actions"][0]["approved_by"] == ["Ada (approver)", "Sam (safety_lead)"]
    assert doc["communications"][0]["name"] == "internal-alert" and "incident #1" in doc["communications"][0]["text"]
    assert doc["signals_fired"][0]["trigger"] == "fatal"
    assert doc["detection"]["recovered"] == "2026-03-01T10:13:00+00:00"  # fatal cleared: errors back to 0


def test_csv_has_one_row_per_event_and_opens_cleanly(env: Env) -> None:
    drive(env)
    text = export(env, "csv", tz="America/New_York")
    assert text.startswith("\ufeff")  # spreadsheets read it as UTF-8
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"), newline="")))
    doc = json.loads(export(env, "json"))
    assert len(rows) == len(doc["events"])
    note = next(r for r in rows if r["kind"] == "note")
    assert note["summary"] == 'note by Rui (URESP): traffic is back on v41 | "all good"'
    assert json.loads(note["details"])["text"] == 'traffic is back on v41 | "all good"'
    assert rows[0]["time_utc"].endswith("+00:00") and rows[0]["time_America/New_York"].endswith("-05:00")
    assert rows[0]["time_utc"][11:13] == "09" and rows[0]["time_America/New_York"][11:13] == "04"


def test_markdown_draft_sections_in_a_chosen_time_zone(env: Env, tmp_path: Path) -> None:
    drive(env)
    md, files = export_text(env.deps.store, 1, "md", tz="Europe/Paris", out=tmp_path / "pm.md")
    assert md.startswith("# Post-mortem: svc incident #1 (critical)")
    assert "> **This incident is still open.**" in md
    for heading in (
        "## Summary",
        "## Detection",
        "## The ladder",
        "## Approvals",
        "## Refusals",
        "## Signals fired",
        "## Communication drafts",
        "## Action results",
        "## Root cause",
        "## Follow-ups",
        "## Timeline",
    ):
        assert heading in md
    assert "times in Europe/Paris" in md and "| Incident opened | 2026-03-01 10:00:00 |" in md  # 09:00 UTC
    assert "- What fired: `fatal`: errors > 0\n" in md  # the trigger's name once
    assert "| Recovered (last trigger cleared) | 2026-03-01 11:13:00 |" in md  # errors back to 0 at 10:13 UTC
    assert "## Communication drafts\n\nThe drafts the bot prepared at each step; it cannot know whether" in md
    assert "| 2 | Revert | 1h-2h | 2026-03-01 11:00:00 | 2026-03-01 11:03:00 | 3m |" in md
    assert "Roll back: approved by Ada (approver), Sam (safety_lead), 10% succeeded, 100% succeeded" in md
    assert "| Roll back | Ada (UAPP1) | approver | 2026-03-01 11:03:00 | ack_time=3, errors=0.05, latency=300 |" in md
    assert 'traffic is back on v41 \\| "all good"' in md  # table cells stay cells
    assert "| Roll back | Xavier (UX) | approver or safety_lead | 2026-03-01 11:03:00 | ack_time=3, errors=0.05" in md
    assert "| 1 | 2026-03-01 10:00:00 | 2026-03-01 09:00:00 | signal.fired |" in md  # local time, then UTC
    assert "![errors](pm-errors.png)" in md
    assert set(files) == {"pm-errors.png"} and files["pm-errors.png"].startswith(b"\x89PNG")


def test_html_embeds_the_charts_and_escapes_text(env: Env) -> None:
    drive(env)
    flows.add_note(env.deps, 1, "URESP", "<script>alert(1)</script>")
    flows.resolve(env.deps, 1, "UIC")
    html = export(env, "html")
    assert html.count('src="data:image/png;base64,') == 1
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "This incident is still open" not in html and "resolved" in html


def test_bad_requests_say_what_to_do(env: Env) -> None:
    drive(env)
    with pytest.raises(ExportError, match="no incident #9"):
        export_text(env.deps.store, 9, "md")
    with pytest.raises(ExportError, match="unknown time zone 'Mars/Base'"):
        export_text(env.deps.store, 1, "md", tz="Mars/Base")
    with pytest.raises(ExportError, match="unknown format 'pdf'"):
        export_text(env.deps.store, 1, "pdf")


def test_secrets_never_reach_events_exports_or_logs(
    env: Env, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    secret = "s3cr3t-deploy-token-9f8e"
    monkeypatch.setenv("DEPLOY_TOKEN", secret)
    env.path.write_text(
        env.path.read_text().replace(
            'webhook: {url: "' + env.http.url + '/lock", body: {svc: "{{ service }}"}}',
            'webhook: {url: "' + env.http.url + '/lock", body: {svc: "{{ service }}"}, '
            'headers: {Authorization: "Bearer ${DEPLOY_TOKEN}"}}',
        )
    )
    assert "DEPLOY_TOKEN" in env.path.read_text()
    env = env.restart()
    env.http.routes["/lock"] = lambda rec: (500, {"echo": rec.headers.get("Authorization")})  # a leaky endpoint
    caplog.set_level(logging.DEBUG)
    env.metrics["errors"] = 0.05
    env.poll()
    flows.approve(env.deps, 1, "lock", "UIC")
    posts = env.http.posts("/lock")
    assert posts and posts[0].headers["Authorization"] == f"Bearer {secret}"  # it was sent ...
    result = env.last("action.failed")
    assert "[redacted]" in result.details["response"]  # ... and never recorded
    for fmt in ("json", "csv", "md", "html"):
        assert secret not in export(env, fmt), fmt
    assert secret not in caplog.text


def test_recovered_is_when_the_last_trigger_firing_cleared(env: Env) -> None:
    drive(env)
    assert json.loads(export(env, "json"))["detection"]["recovered"] == "2026-03-01T10:13:00+00:00"
    env.clock.advance(timedelta(minutes=5))
    env.metrics["errors"] = 0.05  # fires again: not recovered any more
    env.poll()
    kinds = [e["kind"] for e in json.loads(export(env, "json"))["events"]]
    assert kinds.count("signal.cleared") == 1 and kinds.count("signal.fired") + kinds.count("trigger.attached") >= 2
    assert json.loads(export(env, "json"))["detection"]["recovered"] is None
    env.clock.advance(timedelta(minutes=5))
    env.metrics["errors"] = 0.0
    env.poll()
    assert json.loads(export(env, "json"))["detection"]["recovered"] == "2026-03-01T10:23:00+00:00"
    assert "| Recovered (last trigger cleared) | 2026-03-01 10:23:00 |" in export(env, "md")


@pytest.mark.parametrize("fmt", ["md", "html"])
def test_charts_drawn_in_a_fork_are_the_same(env: Env, tmp_path: Path, fmt: str) -> None:
    """The CLI draws the charts in a forked process while it writes the rest: the same export and files."""
    drive(env)
    flows.resolve(env.deps, 1, "UIC")  # a fixed chart window (an open incident's ends now)
    out = tmp_path / f"pm.{fmt}"
    here = export_text(env.deps.store, 1, fmt, tz="Europe/Paris", out=out)
    forked = export_text(env.deps.store, 1, fmt, tz="Europe/Paris", out=out, background=True)
    assert forked == here and (fmt == "html" or set(here[1]) == {"pm-errors.png"})
    assert fmt == "md" or 'src="data:image/png;base64,' in here[0]


@pytest.mark.parametrize("fmt", ["json", "md"])
def test_the_chain_checked_in_a_fork_says_the_same(env: Env, fmt: str) -> None:
    """The CLI's --verify checks the chain in a forked process while the export is gathered: the same
    export, intact or not."""
    import sqlalchemy

    drive(env)
    flows.resolve(env.deps, 1, "UIC")

    def both() -> tuple[str, str]:
        here = export(env, fmt, verify=True)
        forked = export(env, fmt, verify=True, background=True)
        if fmt == "json":  # generated_at differs
            a, b = json.loads(here), json.loads(forked)
            a.pop("generated_at"), b.pop("generated_at")
            assert a == b
            return json.dumps(a["chain"]), forked
        assert here == forked
        return here, forked

    chain, _ = both()
    assert fmt == "md" or json.loads(chain)["intact"] is True
    with env.deps.store.engine.begin() as conn:
        conn.execute(sqlalchemy.text("update event set summary = 'nothing' where seq = 3 and incident_id = 1"))
    chain, forked = both()
    assert "was changed after it was written" in chain and "was changed after it was written" in forked


def test_display_fields_are_shown_in_every_export(env: Env) -> None:
    """The playbook's description, the trigger's description and signal labels reach the exports."""
    text = env.path.read_text().replace('channel: "#ops"\n', 'channel: "#ops"\ndescription: Support copilot <v42>\n')
    text = text.replace("json: errors, every: 30s", "json: errors, label: Fatal error rate, every: 30s")
    text = text.replace(
        "{when: errors > 0, severity: critical}", "{when: errors > 0, severity: critical, description: Answers fail}"
    )
    env.path.write_text(text)
    env = env.restart()
    drive(env)
    md = export(env, "md")
    assert "_Support copilot <v42>_" in md
    assert "- What fired: `fatal` (Answers fail): errors > 0" in md
    assert "errors (Fatal error rate)=0.05" in md
    html = export(env, "html")
    assert "<em>Support copilot &lt;v42&gt;</em>" in html and "(Answers fail)" in html
    assert "errors (Fatal error rate)=0.05" in html
    doc = json.loads(export(env, "json"))
    assert doc["incident"]["description"] == "Support copilot <v42>"
    assert doc["incident"]["trigger_description"] == "Answers fail"
    assert doc["signal_labels"] == {"errors": "Fatal error rate"}


def test_a_long_timeline_written_in_two_halves_is_the_same(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's CSV of a long timeline: its second half is written by a fork while the first is written here;
    the file is the same, row for row."""
    from rollback_bot.export import document
    from rollback_bot.store import stream

    drive(env)
    flows.resolve(env.deps, 1, "UIC")
    here = export(env, "csv", tz="Europe/Paris")
    monkeypatch.setattr(stream, "SPLIT_AT", 4)  # this incident's few events count as long
    with env.deps.store.session() as s:
        events, middle = document.names_of(s, 1), stream.halfway(s, "incident:1")
    assert middle is not None and middle > 2
    halves = export(env, "csv", tz="Europe/Paris", background=True)
    assert halves == here
    rows = list(csv.reader(io.StringIO(here.lstrip("\ufeff"))))
    assert [int(r[0]) for r in rows[1:]] == list(range(1, len(rows)))  # every event once, in order
    assert events  # the names the fork was given, from before it started


def test_many_refusals_are_listed_up_to_a_point_then_counted(env: Env) -> None:
    """A post-mortem lists the first 25 refusals one by one and counts them all by what and who (someone
    clicking 30 times without the role is one line with a count, not 30 rows to read); the timeline still
    has every one."""
    env.metrics["errors"] = 0.05
    env.poll()
    env.clock.advance(timedelta(hours=1))
    flows.tick(env.deps)
    for i in range(30):
        flows.approve(env.deps, 1, "rollback", "UY" if i % 3 == 1 else "UX")
        env.clock.advance(timedelta(seconds=7))
    md = export(env, "md")
    refusals = md.split("## Refusals")[1].split("## Signals fired")[0]
    listed = [line for line in refusals.splitlines() if line.startswith("| Roll back")]
    assert "The first 25 of 30 refusals; every one is in the timeline below." in refusals
    counted = refusals.split("All of them, by what and who:")[1]
    first, second = [line for line in counted.splitlines() if line.startswith("| Roll back")]
    assert (
        first
        == "| Roll back | Xavier (UX) | approver or safety_lead | 20 | 2026-03-01 10:00:00 | 2026-03-01 10:03:23 |"
    )
    assert (
        second == "| Roll back | UY (UY) | approver or safety_lead | 10 | 2026-03-01 10:00:07 | 2026-03-01 10:03:16 |"
    )
    assert len(listed) == 25 + 2  # the listed ones, and the two counted lines
    assert md.split("## Timeline")[1].count("approval.denied") == 30
    html = export(env, "html")
    assert "<p>The first 25 of 30 refusals; every one is in the timeline below." in html
    assert "<td>Xavier (UX)</td><td>approver or safety_lead</td><td>20</td>" in html


def test_times_to_the_millisecond_are_exported_as_they_happened(env: Env) -> None:
    """Every event at 864 ms past its second (PostgreSQL's text of such a time is as long as SQLite's, and was
    once taken for it): each format shows the instant it happened, and the chain checks out."""
    env.clock.advance(timedelta(milliseconds=864))
    drive(env)
    flows.resolve(env.deps, 1, "UIC")
    doc = json.loads(export(env, "json", verify=True))
    assert doc["chain"]["intact"] is True
    times = [e["at"] for e in doc["events"]]
    assert times[0] == "2026-03-01T09:00:00.864000+00:00" and all(t.endswith(".864000+00:00") for t in times)
    rows = list(csv.DictReader(io.StringIO(export(env, "csv", tz="Asia/Kolkata").lstrip("\ufeff"), newline="")))
    assert [r["time_utc"] for r in rows] == times
    assert rows[0]["time_Asia/Kolkata"] == "2026-03-01T14:30:00+05:30"  # local times to the second
    first = "| 1 | 2026-03-01 14:30:00 | 2026-03-01 09:00:00 | signal.fired |"  # local, then UTC
    assert first in export(env, "md", tz="Asia/Kolkata")
    html = first.strip("| ").replace(" | ", "</td><td>")
    assert f"<tr><td>{html}</td>" in export(env, "html", tz="Asia/Kolkata")


def test_mitigated_detection_in_both_drafts_and_peoples_text_kept_in_its_cell(env: Env) -> None:
    """The first action that succeeded is the mitigation, in the JSON, the Markdown and the HTML (which has the
    Detection table too); a note's `|`, inline HTML and control characters stay text in the Markdown's cell."""
    drive(env)
    flows.add_note(env.deps, 1, "URESP", "a|b <script>alert(1)</script> \x1b[31mred\x07")
    doc = json.loads(export(env, "json"))
    assert doc["detection"]["mitigated"] == "2026-03-01T10:03:00+00:00"
    assert doc["detection"]["mitigated_by"] == "Roll back 10%"
    md = export(env, "md")
    assert "- Mitigated (the first action that succeeded): 2026-03-01 10:03:00 (Roll back 10%)" in md
    assert "| Mitigated (first action succeeded) | 2026-03-01 10:03:00 | - |" in md
    assert "a\\|b &lt;script>alert(1)&lt;/script> \ufffd[31mred\ufffd |" in md and "\x1b" not in md
    html = export(env, "html")
    assert (
        "<h2>Detection</h2>" in html
        and "<td>Mitigated (first action succeeded)</td><td>2026-03-01 10:03:00</td>" in html
    )
    assert "channel #ops" in html and "still open (" in html and " so far)" in html


def test_an_incident_nobody_acknowledged_says_so_in_words(env: Env) -> None:
    env.metrics["errors"] = 0.05
    env.poll()
    for fmt in ("md", "html"):
        text = export(env, fmt)
        assert "not acknowledged; still open." in text, fmt
        assert "acknowledged - by -" not in text and "No action succeeded" not in text
        assert "Mitigated (the first action that succeeded): no action succeeded" in text


def test_a_chart_is_titled_with_the_signals_label() -> None:
    from datetime import UTC, datetime

    from rollback_bot.export import charts
    from tests.export.test_thresholds import tiny_playbook

    pb = tiny_playbook(", label: Fatal error rate")
    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    plot = charts.plot(pb, "errors", [(t0, 0.01)], t0, t0, t0 + timedelta(hours=1))
    assert plot.shown == "Fatal error rate (errors)"
