"""A live plot of the training loss for the Fine-tune dialog: a matplotlib ``Figure`` drawn on a
Qt canvas in the dock (no pyplot, so nothing global is touched and no window opens)."""

from __future__ import annotations

import time

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from matplotlib.ticker import AutoLocator, MaxNLocator

__all__ = ["LossPlot"]


class LossPlot:
    """The generator's loss against the iteration, redrawn at most every ``every`` seconds.

    Attributes
    ----------
    canvas : FigureCanvasQTAgg
        The Qt widget to put in a layout.
    steps, losses : list
        What was plotted.
    """

    def __init__(self, *, every: float = 0.5):
        self.figure = Figure(figsize=(3.2, 1.8), dpi=90, layout="constrained")
        self.canvas = FigureCanvasQTAgg(self.figure)
        self.canvas.setMinimumHeight(140)
        self.axes = self.figure.add_subplot()
        self.every = every
        self.clear()

    def clear(self) -> None:
        """Start an empty plot (a new run)."""
        self.steps: list[int] = []
        self.losses: list[float] = []
        self._last = 0.0
        ax = self.axes
        ax.clear()
        ax.set_xlabel("iteration", fontsize=8)
        ax.set_ylabel("training loss", fontsize=8)
        ax.tick_params(labelsize=7)
        (self._line,) = ax.plot([], [], color="#3d8fe8", linewidth=1.2, markersize=3)
        # no empty axes (-0.05..0.05) before the first point: say what will show here
        ax.set_xticks([])
        ax.set_yticks([])
        self._hint = ax.text(0.5, 0.5, "the training loss shows here\nonce training starts",
                             ha="center", va="center", fontsize=8, color="#888888",
                             transform=ax.transAxes)
        self._draw()

    def add(self, step: int, loss: float) -> None:
        """Add a point; the canvas is redrawn when ``every`` seconds have passed."""
        self.steps.append(int(step))
        self.losses.append(float(loss))
        now = time.perf_counter()
        if now - self._last >= self.every or len(self.steps) == 1:
            self._last = now
            self.redraw()

    def redraw(self) -> None:
        if self._hint is not None and self.steps:  # the first point: real axes from now on
            self._hint.remove()
            self._hint = None
            self.axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # iterations
            self.axes.yaxis.set_major_locator(AutoLocator())
        self._line.set_data(self.steps, self.losses)
        # dots while there are few points: a run of one logged iteration shows its point
        self._line.set_marker("o" if len(self.steps) < 20 else "")
        self.axes.relim()
        self.axes.autoscale_view()
        if self.steps:  # from iteration 0, and a little past the last one
            self.axes.set_xlim(0, max(self.steps[-1], 1) * 1.05)
        self._draw()

    def _draw(self) -> None:
        # drawn now, not later (draw_idle): a deferred draw may find the dock closed
        try:
            self.canvas.draw()
        except RuntimeError:  # the Qt canvas is gone with its dock widget
            pass
