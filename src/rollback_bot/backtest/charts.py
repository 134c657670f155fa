"""A PNG per trigger: the signals it reads over the backtest, its thresholds, when it fired, the known incidents."""

from __future__ import annotations

import io
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from rollback_bot.backtest.inputs import KnownIncident
from rollback_bot.backtest.replay import Replay
from rollback_bot.export.charts import thresholds
from rollback_bot.playbook.models import Playbook
from rollback_bot.rules.readings import Reading

MAX_POINTS = 5000  # per line: a month of 30s readings is thinned to this many


def draw(
    pb: Playbook,
    result: Replay,
    series: Mapping[str, Sequence[Reading]],
    known: Sequence[KnownIncident],
    out: Path,
) -> list[Path]:
    """Write `<trigger>.png` into `out` for every trigger; the paths written."""
    # imported here: matplotlib and numpy cost ~55 MB, and only --charts draws
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, trig in pb.triggers.items():
        signals = trig.signals
        fig = Figure(figsize=(10, 1.2 + 1.8 * len(signals)), dpi=100)
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(signals), 1, sharex=True, squeeze=False)[:, 0]
        for ax, signal in zip(axes, signals, strict=True):
            points = [
                (r.at, r.value)
                for r in series.get(signal, ())
                if r.usable and r.value is not None and result.start <= r.at <= result.end
            ]
            stride = max(1, len(points) // MAX_POINTS)
            points = points[::stride]
            if points:
                ax.plot([mdates.date2num(p[0]) for p in points], [p[1] for p in points], color="#1f4e79", lw=1)
            for text, value in thresholds(pb, signal):
                ax.axhline(value, color="#c0392b", linestyle="--", linewidth=1, label=f"threshold: {text}")
            for k in known:
                ax.axvspan(mdates.date2num(k.start), mdates.date2num(k.end), color="#f39c12", alpha=0.25)
            for f in result.firings:
                if f.trigger == name:
                    end = f.cleared_at or result.end
                    ax.axvspan(mdates.date2num(f.fired_at), mdates.date2num(end), color="#c0392b", alpha=0.2)
            ax.set_ylabel(signal, fontsize=8)
            ax.grid(alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="upper left")
        axes[0].set_title(f"{name}: {trig.describe()}  (red: firing; orange: known incidents)", fontsize=9)
        axes[-1].xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz="UTC"))
        axes[-1].set_xlim(mdates.date2num(result.start), mdates.date2num(result.end))
        axes[-1].set_xlabel("UTC")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        path = out / f"{re.sub(r'[^A-Za-z0-9_.-]', '_', name)}.png"
        path.write_bytes(buf.getvalue())
        written.append(path)
    return written
