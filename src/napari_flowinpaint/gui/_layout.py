"""Dock widgets that fit a laptop screen (1366 x 768) side by side with napari's own panels:
the rows of a magicgui container re-arranged into a vertical scroll area, two short rows side
by side, and the advanced options in a section that opens on a click.

magicgui builds one row per widget; :func:`arrange` only moves those rows (Qt widgets) into
a new order, so every widget stays a member of its container (``widget["name"]`` works) and
keeps its label.
"""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt
from qtpy.QtWidgets import QFrame, QHBoxLayout, QScrollArea, QVBoxLayout, QWidget
from superqt import QCollapsible

__all__ = ["Fold", "arrange"]


class Fold:
    """A section of :func:`arrange`: ``title`` on a button that shows or hides ``rows``."""

    def __init__(self, title: str, rows: list, *, expanded: bool = False):
        self.title, self.rows, self.expanded = title, list(rows), expanded


class _Scroll(QScrollArea):
    """A vertical scroll area as wide as its content needs (measured when asked, once
    napari's style sheet applies) and at least ``min_height`` high when its content is."""

    def __init__(self, body: QWidget, min_height: int):
        super().__init__()
        self._min_height = int(min_height)
        self.setObjectName("scroll area")
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setWidget(body)

    def _bar(self) -> int:  # the scroll bar, and the frame a style sheet may draw
        return self.verticalScrollBar().sizeHint().width() + 2 * self.frameWidth()

    def minimumSizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        body = self.widget()
        return QSize(body.minimumSizeHint().width() + self._bar(),
                     min(body.sizeHint().height(), self._min_height))

    def sizeHint(self) -> QSize:  # noqa: N802 - Qt's name
        hint = self.widget().sizeHint()
        return QSize(hint.width() + self._bar(), hint.height())


def _row_of(layout, native) -> QWidget:
    """The widget of ``layout`` holding ``native`` (its row: the widget with its label)."""
    for i in range(layout.count()):
        row = layout.itemAt(i).widget()
        if row is not None and (row is native or row.isAncestorOf(native)):
            return row
    raise ValueError(f"{native!r} is not in this container.")


def _side_by_side(rows: list[QWidget]) -> QWidget:
    pair = QWidget()
    box = QHBoxLayout(pair)
    box.setContentsMargins(0, 0, 0, 0)
    for row in rows:
        box.addWidget(row)
    return pair


def arrange(container, rows: list, *, scroll: bool = True,
            min_height: int = 180) -> QScrollArea | None:
    """Lay out the widgets of the magicgui ``container`` as ``rows``, top to bottom.

    Each entry is a widget of the container (a row of its own), a tuple of widgets (one row,
    side by side), a :class:`Fold` (a collapsible section of such rows), or a Qt widget
    already in the container's layout (e.g. a plot canvas). Widgets left out keep their
    rows, after these. With ``scroll`` the rows go into a vertical scroll area filling the
    container, so that the dock may be shorter than its content (no horizontal scrolling:
    the area is as wide as the widest row needs, and at least ``min_height`` pixels high
    when its content is).

    Returns
    -------
    QScrollArea or None
        The scroll area, with ``scroll``.
    """
    outer = container.native
    layout = outer.layout()

    def native(entry):
        return entry if isinstance(entry, QWidget) else entry.native

    def build(entry) -> QWidget:
        if isinstance(entry, tuple):
            return _side_by_side([_row_of(layout, native(e)) for e in entry])
        if isinstance(entry, Fold):
            section = QCollapsible(entry.title)
            section.setObjectName(f"fold {entry.title}")
            for row in [build(e) for e in entry.rows]:
                section.addWidget(row)
            if entry.expanded:
                section.expand(animate=False)
            return section
        return _row_of(layout, native(entry))

    built = [build(entry) for entry in rows]
    rest = [layout.itemAt(i).widget() for i in range(layout.count())]
    while layout.count():
        layout.takeAt(0)
    for row in built + [w for w in rest if w is not None and w.parent() is outer
                        and not any(w is b for b in built)]:
        layout.addWidget(row)
    if not scroll:
        return None
    layout.addStretch(1)  # rows keep their height when the dock is taller than they need
    body = QWidget()
    body.setObjectName("scroll body")
    body.setLayout(layout)  # takes the layout, and the rows in it, from the container
    area = _Scroll(body, min_height)
    frame = QVBoxLayout(outer)
    frame.setContentsMargins(0, 0, 0, 0)
    frame.addWidget(area)
    return area
