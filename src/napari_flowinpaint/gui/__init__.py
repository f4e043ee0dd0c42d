"""napari adapters: the repair and fine-tuning dock widgets, the batch menu command and the
sample data.

This subpackage imports napari and Qt; the rest of napari_flowinpaint does not.
"""

from ._finetune_widget import FinetuneWidget
from ._menu import repair_all_masked_slices
from ._sample_data import make_sample_data
from ._widget import RepairWidget

__all__ = ["RepairWidget", "FinetuneWidget", "repair_all_masked_slices", "make_sample_data"]
