"""`rollback-bot playbook history NAME`: the versions of a playbook incidents ran on, and what changed."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from rollback_bot.cli import main
from rollback_bot.playbook.loader import version_of
from rollback_bot.store import Incident, Store

V1 = "name: bt\ntriggers:\n  fatal: {when: errors > 0.02, for: 2m}\n"
V2 = "name: bt\ntriggers:\n  fatal: {when: errors > 0.015}\n"
T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def incident(text: str, opened: datetime) -> Incident:
    return Incident(
        playbook="bt",
        playbook_version=version_of(text),
        playbook_path="playbooks/bt.yaml",
        playbook_text=text,
        service="svc",
        channel="#ops",
        severity="critical",
        status="resolved",
        trigger="fatal",
        summary="s",
        opened_at=opened,
    )


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def test_history_lists_versions_and_diffs_two(store: Store, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def run(*args: str) -> Ran:
        code = main(list(args))
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    with store.session() as s:
        for n, text in enumerate([V1, V1, V2]):
            s.add(incident(text, T0 + timedelta(days=n)))
        s.commit()
    listed = run("playbook", "history", "bt", "--database", store.url)
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0] == "Versions of playbook bt that incidents ran on, oldest first:"
    assert lines[1] == (
        f"  {version_of(V1)}  2026-03-01 09:00 to 2026-03-02 09:00 UTC  2 incident(s): #1, #2  (playbooks/bt.yaml)"
    )
    assert lines[2].startswith(f"  {version_of(V2)}  2026-03-03 09:00 to 2026-03-03 09:00 UTC  1 incident(s): #3")
    diff = run("playbook", "history", "bt", "--diff", version_of(V1)[:6], version_of(V2), "--database", store.url)
    assert diff.returncode == 0, diff.stderr
    assert "-  fatal: {when: errors > 0.02, for: 2m}\n+  fatal: {when: errors > 0.015}\n" in diff.stdout
    edited = tmp_path / "bt.yaml"
    edited.write_text(V2.replace("0.015", "0.01"))
    against_file = run("playbook", "history", "bt", "--diff", version_of(V2), str(edited), "--database", store.url)
    assert "+  fatal: {when: errors > 0.01}" in against_file.stdout
    unknown = run("playbook", "history", "bt", "--diff", "zzzz", str(edited), "--database", store.url)
    assert unknown.returncode == 2 and "no version 'zzzz' of bt (known: " in unknown.stderr
    nothing = run("playbook", "history", "other", "--database", store.url)
    assert nothing.returncode == 2 and nothing.stderr.strip() == "no incident of playbook other in the database"
