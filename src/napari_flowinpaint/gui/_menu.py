"""The "Layers > Filter > Repair all masked slices" menu command."""

# No ``from __future__ import annotations``: napari reads the annotation below at run time
# to inject the current viewer.
from napari.viewer import Viewer

__all__ = ["repair_all_masked_slices"]

_PLUGIN = "napari-flowinpaint"
_WIDGET = "Repair section"


def repair_all_masked_slices(viewer: Viewer):
    """Repair every painted section of the selected stack, showing the repair widget.

    Opens (or reuses) the "Repair section" dock widget, takes the image or mask from the
    active layer when it is one, and starts :meth:`RepairWidget.repair_all`. The work runs
    in the background; the widget shows progress and offers Cancel.

    Returns
    -------
    RepairWidget
        The dock widget doing the work.
    """
    _, widget = viewer.window.add_plugin_dock_widget(_PLUGIN, _WIDGET)
    widget.use_selection()
    widget.repair_all()
    return widget
