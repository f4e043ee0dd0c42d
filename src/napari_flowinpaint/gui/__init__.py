"""napari adapters: the repair, batch repair and fine-tuning dock widgets, the menu command, the
sample data, the reader of HDF5, MRC and N5 files and the lazy view of a repaired stack
(:class:`RepairedView`).

This subpackage imports napari and Qt; the rest of napari_flowinpaint does not. Its names
are loaded lazily, so that napari opening the sample data (``make_sample_data``) imports
neither the widgets nor torch.
"""

import lazy_loader as _lazy

__getattr__, __dir__, __all__ = _lazy.attach(
    __name__,
    submod_attrs={
        "_batch": ["BatchRepairWidget"],
        "_finetune_widget": ["FinetuneWidget"],
        "_menu": ["repair_all_masked_slices"],
        "_reader": ["napari_get_reader"],
        "_sample_data": ["make_sample_data"],
        "_view": ["RepairedView"],
        "_widget": ["RepairWidget"],
    },
)
