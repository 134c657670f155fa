"""`rollback-bot check` on rollouts: each mistake named with file:line, all in one run."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollback_bot.checking import check_file

SHIPPED = Path("playbooks/copilot-rollout.yaml")
BROKEN = [
    # (replace, with, expected message part, line anchor in the new text)
    ("sample: served ", "sample: servd ", "the rollout's sample uses unknown signal 'servd'", "sample: servd"),
    (
        "kpi: {resolution_score: 0.40",
        "kpi: {resolution_scor: 0.40",
        "the gate's kpi uses unknown signal 'resolution_scor'",
        "kpi: {resolution_scor",
    ),
    (
        "- {signal: error_rate, worse: higher, by: 0.01}",
        "- {signal: fatal_error_rate, worse: higher, by: 0.01}",
        "compares 'fatal_error_rate' between baseline and candidate, but the signal is read once",
        "signal: fatal_error_rate, worse",
    ),
    (
        "{percent: 25, min_duration: 30m",
        "{percent: 5, min_duration: 30m",
        "rollout.stages: stages must increase",
        "stages:",
    ),
    ("rollback_below: -0.08", "rollback_below: 0.08", "rollback_below must not be above hold_below", "gate:"),
    ("kpi: {resolution_score: 0.40", "kpi: {resolution_score: 0", "kpi weight of 'resolution_score' is 0", "gate:"),
    (
        "advance: {requires: [release_manager]}",
        "advance: {requires: [release_boss]}",
        "role 'release_boss' is used but not defined",
        "release_boss",
    ),
    (
        "- {signal: drift_psi, above: 0.25, warn: 0.1}",
        "- {signal: drift_psi, above: 0.25, warn: 0.3}",
        "'warn' must be below 'above'",
        "warn: 0.3",
    ),
    ("diagnostics: [p95_latency_ms]", "diagnostics: [p99_latency_ms]", "unknown signal 'p99_latency_ms'", "p99_"),
    (
        "when: fatal_error_rate > 0",
        "when: error_rate > 0",
        "trigger 'fatal-errors' reads 'error_rate', a compared signal",
        "fatal-errors:",
    ),
    (
        "candidate: copilot-v2",
        "candidate: 'copilot v2\"'",
        "candidate 'copilot v2\"' would break the queries",
        "candidate: 'copilot",
    ),
    (
        "fatal_error_rate, every: 30s}",
        "fatal_error_rate, segments: [region], every: 30s}",
        "trigger 'fatal-errors' reads 'fatal_error_rate', which is read per segment",
        "fatal-errors:",
    ),
]


@pytest.mark.parametrize(("old", "new", "message", "anchor"), BROKEN, ids=[b[2][:40] for b in BROKEN])
def test_broken_rollout_reports_file_and_line(tmp_path: Path, old: str, new: str, message: str, anchor: str) -> None:
    text = SHIPPED.read_text()
    assert old in text, old
    text = text.replace(old, new, 1)
    path = tmp_path / "playbooks" / "broken.yaml"
    path.parent.mkdir()
    path.write_text(text)
    (tmp_path / "templates").symlink_to(Path("templates").resolve())
    _, errors = check_file(path)
    match = [e for e in errors if message in e.message]
    assert match, [str(e) for e in errors]
    line = next(i for i, row in enumerate(text.splitlines(), 1) if anchor in row)
    assert (match[0].file, match[0].line) == (str(path), line), str(match[0])


def test_the_shipped_rollout_is_valid() -> None:
    loaded, errors = check_file(SHIPPED)
    assert errors == []
    assert loaded is not None and loaded.playbook.rollout is not None
    assert [s.percent for s in loaded.playbook.rollout.stages] == [10, 25, 50, 100]
