"""Input validation shared by the engine, the tasks and the napari adapters.

The mask convention of the whole package is stated here once: ``True`` (or a nonzero
label) marks a *damaged* pixel, ``False`` (or 0) a known one.
"""

from __future__ import annotations

import os

import numpy as np

__all__ = ["as_slice", "as_mask", "cast_to", "check_same_shape", "check_map_for", "section_index",
           "SUPPORTED_DTYPES"]

#: Slice dtypes the engine accepts; the result always comes back in the input's dtype.
SUPPORTED_DTYPES = (np.uint8, np.uint16, np.float32, np.float64)


def as_slice(image, name: str = "image") -> np.ndarray:
    """Check that ``image`` is one grey-level 2-D section and return it as an ndarray.

    Parameters
    ----------
    image : array_like, shape (H, W)
        uint8, uint16, float32 or float64 data. It is not copied or modified.
    name : str
        How the argument is called in error messages.

    Raises
    ------
    TypeError
        For a dtype other than uint8, uint16, float32 or float64.
    ValueError
        For RGB(A) data, anything that is not 2-D, an empty slice, or NaN/inf values.
    """
    arr = np.asarray(image)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        raise ValueError(
            f"{name} looks like an RGB(A) image of shape {arr.shape}; expected one grey-level "
            "section of shape (H, W). Convert it to greyscale first "
            "(e.g. skimage.color.rgb2gray)."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D section of shape (H, W), got an array with ndim={arr.ndim} "
            f"and shape {arr.shape}. For a stack, pick one slice (stack[z]) or use repair_slice."
        )
    if arr.shape[0] < 2 or arr.shape[1] < 2:
        raise ValueError(f"{name} must be at least 2x2 pixels, got shape {arr.shape}.")
    if arr.dtype.type not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{name} has dtype {arr.dtype}; expected uint8, uint16, float32 or float64. "
            "Convert it first, e.g. image.astype(np.float32)."
        )
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        raise ValueError(
            f"{name} contains NaN or infinite values; fill them (e.g. np.nan_to_num) and mark "
            "those pixels as damaged in the mask instead."
        )
    return arr


def section_index(z, name: str = "z") -> int:
    """``z`` as a section index: a whole number (int or integer numpy scalar), never a float
    that would be cut silently (2.5 is not section 2)."""
    if isinstance(z, (bool, np.bool_)) or not isinstance(z, (int, np.integer)):
        raise TypeError(f"{name} must be a whole section index (an int), got {z!r} "
                        f"({type(z).__name__}).")
    return int(z)


def as_mask(mask, shape: tuple[int, ...] | None = None, name: str = "mask") -> np.ndarray:
    """Return ``mask`` as a boolean array where True marks damaged pixels.

    Accepted: a boolean array; an integer array of labels >= 0 (nonzero = damaged, as painted
    in a napari Labels layer); a float array holding only 0.0 and 1.0.

    Raises
    ------
    ValueError
        If the shape differs from ``shape``, labels are negative, or a float mask holds values
        other than 0 and 1 (e.g. a soft or probability mask: threshold it first).
    TypeError
        For complex or object arrays.
    """
    if mask is None:
        raise ValueError(f"no {name} was given (None); pass a boolean array where True marks "
                         "the damaged pixels.")
    if isinstance(mask, (str, bytes, os.PathLike)):
        raise TypeError(f"{name} is a path ({str(mask)!r}), not an array; read it first (e.g. "
                        "tifffile.imread(path)) and pass the array, True = damaged.")
    arr = np.asarray(mask)
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(
            f"{name} has shape {arr.shape} but the image has shape {tuple(shape)}; "
            "they must match pixel for pixel."
        )
    kind = arr.dtype.kind
    if kind == "b":
        return arr.astype(bool, copy=False)
    if kind in "iu":
        if kind == "i" and arr.size and arr.min() < 0:
            raise ValueError(
                f"{name} holds negative values (min {arr.min()}); expected a boolean mask or "
                "non-negative labels where nonzero marks damaged pixels."
            )
        return arr != 0
    if kind == "f":
        if not np.isin(arr, (0.0, 1.0)).all():
            bad = arr[~np.isin(arr, (0.0, 1.0))]
            raise ValueError(
                f"{name} is a float array with values other than 0 and 1 (e.g. {bad.flat[0]!r}); "
                "expected a boolean mask (True = damaged) or integer labels. Threshold a soft "
                "mask first, e.g. mask > 0.5."
            )
        return arr == 1.0
    raise TypeError(f"{name} has dtype {arr.dtype}; expected bool or integer labels.")


def check_same_shape(**arrays: np.ndarray) -> tuple[int, ...]:
    """Raise ValueError unless all named arrays have the same shape; return that shape."""
    shapes = {name: np.shape(a) for name, a in arrays.items()}
    first = next(iter(shapes.values()))
    if any(s != first for s in shapes.values()):
        listing = ", ".join(f"{n}={s}" for n, s in shapes.items())
        raise ValueError(
            f"the sections must all have the same shape, got {listing}. "
            "Register/crop the stack so that the slices align."
        )
    return first


def cast_to(values, dtype, *, clip: tuple[float, float] | None = None) -> np.ndarray:
    """Values computed in floating point, back in ``dtype`` (a new array).

    Values are first clipped to ``clip`` (``(low, high)``) when given. For an integer
    ``dtype`` they are then rounded to the nearest integer (halves to even) and clipped to
    the dtype's range, so nothing wraps around; a float ``dtype`` is a plain cast.

    Parameters
    ----------
    values : array_like
    dtype : dtype
    clip : (float, float), optional, keyword-only

    Returns
    -------
    ndarray of ``dtype``
    """
    dtype = np.dtype(dtype)
    out = np.asarray(values)
    if clip is not None:
        out = np.clip(out, *clip)
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        out = np.clip(np.rint(out), info.min, info.max)
    elif dtype.kind == "f" and out.dtype.itemsize > dtype.itemsize:
        info = np.finfo(dtype)  # a value past float32's range would become inf
        out = np.clip(out, info.min, info.max)
    return out.astype(dtype)


def check_map_for(data, data_name: str, field, field_name: str, channels: int) -> None:
    """Check that ``field`` (B, ``channels``, H, W) is a per-pixel map for the batch ``data``
    (B, C, H, W): same batch size and image size. Works on any array with ``ndim`` and
    ``shape`` (numpy arrays, torch tensors).

    Raises
    ------
    ValueError
        Saying which shapes were expected and which were given.
    """
    if data.ndim != 4 or field.ndim != 4 or field.shape[1] != channels:
        raise ValueError(
            f"expected {data_name} (B, C, H, W) and {field_name} (B, {channels}, H, W), got "
            f"{tuple(data.shape)} and {tuple(field.shape)}."
        )
    if data.shape[0] != field.shape[0] or tuple(data.shape[-2:]) != tuple(field.shape[-2:]):
        raise ValueError(
            f"{field_name} {tuple(field.shape)} does not match {data_name} "
            f"{tuple(data.shape)} in batch size or image size."
        )
