"""What the shipped comms drafts say where nothing is known yet: never 'None', never an empty 'Next:'."""

from __future__ import annotations

from pathlib import Path

from rollback_bot.playbook.loader import parse_playbook
from rollback_bot.render.comms import render_comms
from rollback_bot.render.context import sample_context

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOK = """\
name: p
service: svc
channel: "#ops"
roles: {incident_commander: {users: [U1]}, responder: {users: [U2]}}
signals: {errors: {http: "http://x/kpi", json: errors, label: Error rate}}
triggers: {fatal: {when: errors > 0}}
ladder:
  - {name: Flag, window: 0h-1h, watch: [errors == 0], comms: [internal-alert]}
  - {name: Verify, window: 1h-2h, watch: [errors == 0], comms: [internal-alert]}
"""


def test_drafts_without_actions_say_what_comes_next_and_none_is_never_printed(tmp_path: Path) -> None:
    pb = parse_playbook(PLAYBOOK).playbook
    templates = ROOT / "templates"
    first = render_comms(templates, "internal-alert", sample_context(pb, 0))
    assert "Next: *Verify* (1h-2h); until then, watch the metrics above." in first
    last = render_comms(templates, "internal-alert", sample_context(pb, 1))
    assert "Next: this is the last step; resolve the incident when the metrics hold." in last
    assert not any(line.rstrip().endswith("Next:") for line in first.splitlines() + last.splitlines())
    (tmp_path / "comms").mkdir()
    (tmp_path / "comms" / "mine.md.j2").write_text("Acknowledged by: {{ incident.acknowledged_by }}\n")
    assert render_comms(tmp_path, "mine", sample_context(pb, 0)) == "Acknowledged by: -"  # not yet: not 'None'
    assert render_comms(tmp_path, "mine", sample_context(pb, 1)) == "Acknowledged by: Sam Ple"
