"""Stack input and output: TIFF and zarr reading, atomic writing, the bundled sample stack.

Light on purpose (numpy and tifffile; zarr when a store is opened): opening the sample in
napari imports neither torch nor OpenCV.
"""

from .sample import SAMPLE_INFO, load_sample, sample_path
from .stacks import (
    SMALL_BYTES,
    SUPPORTED_EXTENSIONS,
    LazyStack,
    SectionRange,
    check_output_path,
    load_if_small,
    read_stack,
    read_voxel_size,
    stack_format,
    stack_nbytes,
)
from .writer import StackWriter, write_stack

__all__ = ["SAMPLE_INFO", "SMALL_BYTES", "SUPPORTED_EXTENSIONS", "LazyStack", "SectionRange",
           "StackWriter", "check_output_path", "load_if_small", "load_sample", "read_stack",
           "read_voxel_size", "sample_path", "stack_format", "stack_nbytes", "write_stack"]
