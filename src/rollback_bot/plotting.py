"""A signal's chart as a PNG, drawn by matplotlib from plain data (no database, no playbook), and a process
that draws them: `Plotter` is forked before the CLI imports the rest, so matplotlib is imported on the other
core while the database layer is imported here. Only the standard library is imported at the top."""

from __future__ import annotations

import io
import logging
import os
import pickle
import signal as signals
import struct
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from rollback_bot.forked import INTERRUPTED, child

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Plot:
    """What one chart shows."""

    signal: str
    unit: str
    points: list[tuple[datetime, float]]  # at least one; NaN where the line breaks
    thresholds: list[tuple[str, float]]  # (the rule, its threshold): a dashed line each
    steps: list[tuple[int, datetime]]  # (number, start) of each ladder step within the window: a dotted line
    start: datetime
    end: datetime
    zone: ZoneInfo | None = None  # the hours' time zone (the export's --tz); None: UTC
    label: str = ""  # the signal's display name in the playbook, if it has one

    @property
    def shown(self) -> str:
        return f"{self.label} ({self.signal})" if self.label else self.signal


def draw(plot: Plot) -> bytes:
    """The PNG."""
    # imported here: matplotlib and numpy cost ~55 MB, and only an export draws charts
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.2), dpi=100)  # not pyplot: its global state is unsafe across threads
    FigureCanvasAgg(fig)  # renders to PNG, never to a screen
    ax = fig.subplots()
    xs = mdates.date2num([p[0] for p in plot.points])
    ax.plot(xs, [p[1] for p in plot.points], color="#1f4e79", linewidth=1.4, label=plot.shown)
    for text, value in plot.thresholds:
        ax.axhline(value, color="#c0392b", linestyle="--", linewidth=1, label=f"threshold: {text}")
    for number, at in plot.steps:
        x = mdates.date2num(at)
        ax.axvline(x, color="#7f8c8d", linewidth=0.8, linestyle=":")
        ax.annotate(
            f"{number}",
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            fontsize=8,
            color="#555",
            ha="left",
            va="top",
            xytext=(2, -2),
            textcoords="offset points",
        )
    ax.set_title(f"{plot.shown}, {plot.unit or 'value'}; dotted lines: ladder steps", fontsize=10)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=plot.zone or UTC))
    ax.set_xlabel(plot.zone.key if plot.zone else "UTC")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def draw_all(plots: dict[str, Plot]) -> dict[str, bytes]:
    return {name: draw(plot) for name, plot in plots.items()}


def _warm() -> None:
    """What draw() imports, imported ahead."""
    import matplotlib.dates  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: F401
    from matplotlib.figure import Figure  # noqa: F401


class Plotter:
    """A forked process that imports matplotlib at once, then draws the plots it is sent once (by `send`).
    For single-threaded callers (the CLI), started before their own heavy imports. The plots go through a
    temporary file both processes hold (a pipe would block the sender until the child has finished importing)
    and the PNGs come back through a pipe. Where there is no fork or the process fails, the plots are drawn
    here, and the log says so. `close()` (always, in a `finally`) stops and reaps whatever is left."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.go: int | None = None  # the write end of the pipe that says the plots are there
        self.back: int | None = None  # the read end of the pipe the PNGs come back on
        if not hasattr(os, "fork"):
            return
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        go_read, go = os.pipe()
        back, back_write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:

            def serve() -> int:
                os.close(go)
                os.close(back)
                _warm()
                return _serve(go_read, self.file.fileno(), back_write)

            child(serve, parent, "drawing charts")
        os.close(go_read)
        os.close(back_write)
        self.pid, self.go, self.back = pid, go, back

    def send(self, plots: dict[str, Plot]) -> Callable[[], dict[str, bytes]]:
        """Hand the plots over (once); the returned function waits for their PNGs. No plots: the process is
        stopped."""
        if self.pid is None or self.go is None or not plots:
            self.close()
            return lambda: draw_all(plots)
        data = pickle.dumps(plots)
        try:
            self.file.write(data)
            self.file.flush()
            os.write(self.go, struct.pack("!Q", len(data)))  # 8 bytes: never blocks on an empty pipe
        except OSError:  # the process is gone: wait() reads nothing from it and draws here
            pass
        finally:
            os.close(self.go)
            self.go = None

        def wait() -> dict[str, bytes]:
            drawn = b""
            if self.back is not None:
                with os.fdopen(self.back, "rb") as pipe:
                    self.back = None
                    drawn = pipe.read()
            status = self._reap()
            self.close()  # nothing left of it to stop: its file is closed
            if status is not None and os.waitstatus_to_exitcode(status) == INTERRUPTED:
                raise KeyboardInterrupt  # not drawn here: the interrupt was meant for both
            return pickle.loads(drawn) if status == 0 and drawn else draw_all(plots)  # our own child's bytes

        return wait

    def close(self) -> None:
        """Stop the process if it is still there (nothing was sent to it: an export that failed early or has
        no charts; or its PNGs were not waited for), without waiting for its imports or its drawing."""
        if self.pid is not None:
            os.kill(self.pid, signals.SIGKILL)
            self._reap()
        for fd in (self.go, self.back):
            if fd is not None:
                os.close(fd)
        self.go = self.back = None
        if hasattr(self, "file"):
            self.file.close()

    def _reap(self) -> int | None:
        """The process's exit status, once it has ended; None where it was reaped already."""
        if self.pid is None:
            return None
        pid, self.pid = self.pid, None
        return os.waitpid(pid, 0)[1]


def _serve(go: int, shared: int, back: int) -> int:
    """In the child: wait for the plots' size (nothing: the parent is gone or has none), read them, draw them,
    send the PNGs."""
    with os.fdopen(go, "rb") as pipe:
        header = pipe.read(8)
    if len(header) < 8:
        return 0
    (size,) = struct.unpack("!Q", header)
    plots = pickle.loads(os.pread(shared, size, 0))  # our own parent's bytes
    drawn = pickle.dumps(draw_all(plots))
    with os.fdopen(back, "wb") as pipe:
        pipe.write(drawn)
    return 0
