"""The CLI's charts are drawn by a process forked before its imports (plotting.Plotter): the same charts,
drawn here where that process is gone, and no process left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from rollback_bot import flows
from rollback_bot.export import export_text
from rollback_bot.plotting import Plotter
from tests.export.test_export import drive
from tests.flows.conftest import Env


def _reaped(pid: int) -> bool:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return True
    return False


# the drawer's life does not depend on the database (the exports themselves are tested on both): SQLite only
ON_SQLITE = pytest.mark.parametrize("store", ["sqlite"], indirect=True)


@ON_SQLITE
@pytest.mark.parametrize("fmt", ["md", "html"])
def test_charts_from_a_plotter_started_first_are_the_same(env: Env, tmp_path: Path, fmt: str) -> None:
    drive(env)
    flows.resolve(env.deps, 1, "UIC")  # a fixed chart window (an open incident's ends now)
    out = tmp_path / f"pm.{fmt}"
    here = export_text(env.deps.store, 1, fmt, tz="Europe/Paris", out=out)
    plotter = Plotter()
    pid = plotter.pid
    assert pid is not None
    try:
        drawn = export_text(env.deps.store, 1, fmt, tz="Europe/Paris", out=out, background=True, plotter=plotter)
    finally:
        plotter.close()
    assert drawn == here and (fmt == "html" or set(here[1]) == {"pm-errors.png"})
    assert _reaped(pid)


@ON_SQLITE
def test_a_plotter_that_died_leaves_its_charts_to_the_export(env: Env, tmp_path: Path) -> None:
    drive(env)
    flows.resolve(env.deps, 1, "UIC")
    out = tmp_path / "pm.md"
    here = export_text(env.deps.store, 1, "md", out=out)
    plotter = Plotter()
    assert plotter.pid is not None
    os.kill(plotter.pid, signal.SIGKILL)
    drawn = export_text(env.deps.store, 1, "md", out=out, background=True, plotter=plotter)
    assert drawn == here and here[1]["pm-errors.png"].startswith(b"\x89PNG")


@ON_SQLITE
def test_a_plotter_with_nothing_to_draw_is_stopped(env: Env, tmp_path: Path) -> None:
    """An export that fails first, or has no charts: the process is stopped and reaped, not left running."""
    plotter = Plotter()
    pid = plotter.pid
    assert pid is not None
    with pytest.raises(Exception, match="no incident #9"):
        export_text(env.deps.store, 9, "md", out=tmp_path / "pm.md", background=True, plotter=plotter)
    plotter.close()
    assert plotter.pid is None and _reaped(pid)
    nothing = Plotter()
    assert nothing.send({})() == {} and nothing.pid is None


def test_a_plotter_whose_charts_are_not_waited_for_is_stopped_by_close() -> None:
    """An export that fails after handing over its charts: close() stops and reaps the drawer; asked later
    all the same, the charts are drawn here."""
    from datetime import UTC, datetime, timedelta

    from rollback_bot.plotting import Plot

    t0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    points = [(t0 + timedelta(minutes=m), float(m % 5)) for m in range(30)]
    plot = Plot("errors", "ratio", points, [("errors > 3", 3.0)], [(1, t0)], t0, t0 + timedelta(minutes=30))
    plotter = Plotter()
    pid = plotter.pid
    assert pid is not None
    wait = plotter.send({"errors": plot})
    plotter.close()
    assert plotter.pid is None and _reaped(pid)
    assert wait()["errors"].startswith(b"\x89PNG")
