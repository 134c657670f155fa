"""A drill's pace: its default speed keeps the playbook's polls as written, so detection reads the playbook and
not the drill's machinery; a speed that does not is said at the start and in the report; nonsense speeds and
drills that would take hours of real time are refused with one line that says what fits."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest

from rollback_bot import cli
from rollback_bot.drill import run_drill
from rollback_bot.drill.pace import DrillRefused, plan
from rollback_bot.playbook.loader import parse_playbook
from tests.drill.test_drill import SHORT

# polls every 20s, a trigger held for 5m, detection due within 10m: at x1440 a 0.2 s real-time floor between
# polls spaced them 4m48s of drill time apart, and detection read 13m36s (MISSED)
EVERY_20S = (
    SHORT.replace("every: 30s", "every: 20s")
    .replace(
        "fatal: {{when: fatal_error_rate > 0, severity: critical}}",
        "fatal: {{when: fatal_error_rate > 0, for: 5m, severity: critical}}",
    )
    .replace("window: 0h-30m", "window: 0h-10m")
    .replace("window: 30m-1h", "window: 10m-20m")
    .replace("stage_every: 5m", "stage_every: 2m")
    .replace("detect_within: 1s", "detect_within: 10m")
)


def every_20s(tmp_path: Path, ladder_days: int | None = None) -> Path:
    text = EVERY_20S.format(templates=Path("templates").resolve())
    if ladder_days is not None:
        text = text.replace("window: 10m-20m", f"window: 10m-{ladder_days * 24}h")
    path = tmp_path / f"every20s-{ladder_days or 0}d.yaml"
    path.write_text(text)
    return path


def test_the_default_speed_keeps_the_playbooks_polls(tmp_path: Path) -> None:
    pb = parse_playbook(every_20s(tmp_path).read_text()).playbook
    pace = plan(pb, timedelta(minutes=2), None, 0.2)
    assert (pace.speed, pace.polled, pace.late_polls) == (100, timedelta(seconds=20), None)
    fast = plan(pb, timedelta(minutes=2), 1440, 0.2)
    assert fast.polled == timedelta(minutes=4, seconds=48)
    assert fast.late_polls == (
        "at x1440, polls every 20s come every 4m48s of drill time (the scheduler polls at most every 0.2 s of real "
        "time): detection will read late; --speed 100 keeps them"
    )


@pytest.mark.slow
def test_at_the_default_speed_detection_reads_the_playbook_not_the_drill(tmp_path: Path) -> None:
    lines: list[str] = []
    run_drill(
        every_20s(tmp_path),
        fault_after=timedelta(minutes=2),
        database_url=f"sqlite:///{tmp_path}/drill.db",
        out=lines.append,
    )
    text = "\n".join(lines)
    assert "clock x100 " in text and "WARNING" not in text and "Note:" not in text
    found = re.search(r"fault -> detection\s+<= 10m\s+(\S+)\s+(ok|MISSED)", text)
    assert found and found.group(2) == "ok", text
    # 5m held, and polls every 20s: not a poll 4m48s apart
    assert re.fullmatch(r"[56]m(\d+s)?", found.group(1)), text
    assert (
        "  pace: x100 keeps the polls every 20s (the scheduler polls at most every 0.2 s of real time); "
        "--speed 1440 is quicker, with detection reading late"
    ) in lines
    # the same drill asked for at x1440: said at the start and under the report
    lines.clear()
    run_drill(
        every_20s(tmp_path),
        speed=1440,
        fault_after=timedelta(minutes=2),
        database_url=f"sqlite:///{tmp_path}/drill-fast.db",
        out=lines.append,
    )
    warning = "at x1440, polls every 20s come every 4m48s of drill time"
    assert any(line.startswith(f"  WARNING: {warning}") for line in lines), lines
    assert any(line.startswith(f"Note: {warning}") and line.endswith("--speed 100 keeps them.") for line in lines)


@pytest.mark.parametrize("speed", ["nan", "inf", "-inf", "1e9", "0", "-3", "0.5", "5001"])
def test_a_nonsensical_speed_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], speed: str
) -> None:
    assert cli.main(["drill", str(every_20s(tmp_path)), f"--speed={speed}"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert re.fullmatch(r"--speed \S+: a drill runs from x1 \(real time\) to x5000\n", captured.err)
    with pytest.raises(DrillRefused, match="a drill runs from x1"):
        run_drill(every_20s(tmp_path), speed=float(speed))


def test_a_drill_longer_than_an_hour_is_refused_saying_what_fits(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    week = every_20s(tmp_path, ladder_days=7)
    assert cli.main(["drill", str(week), "--speed", "100"]) == 2
    assert capsys.readouterr().err == (
        "drill: at x100 this drill (the fault at T+20m, then the 168h ladder) takes ~1h41m of real time; "
        "--speed 169 or more fits it in 1h, or --long runs it however long it takes\n"
    )
    decade = every_20s(tmp_path, ladder_days=3650)
    assert cli.main(["drill", str(decade)]) == 2
    assert capsys.readouterr().err == (
        "drill: at x5000 this drill (the fault at T+20m, then the 87600h ladder) takes ~17h31m of real time; "
        "no speed up to x5000 fits it in 1h, or --long runs it however long it takes\n"
    )
    # by default a long ladder goes faster than its polls allow rather than past the hour, and says so
    pace = plan(parse_playbook(week.read_text()).playbook, timedelta(minutes=20), None, 0.2)
    assert pace.speed == 169 and pace.real <= timedelta(hours=1)
    assert pace.late_polls and pace.late_polls.startswith("at x169, polls every 20s come every 34s")
    # asked for, it runs as long as it takes
    assert plan(parse_playbook(week.read_text()).playbook, timedelta(minutes=20), 100, 0.2, long=True).speed == 100
