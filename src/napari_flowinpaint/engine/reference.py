"""Initial reference: the section between two neighbours, interpolated by optical flow.

FlowInpaint section 3.1, Eq. 1-3.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np

from ._checks import as_slice, check_same_shape
from ._intensity import IntensityScale
from .flow import optical_flow, warp_numpy

__all__ = ["initial_reference", "initial_reference_unit", "intermediate_flows", "check_alpha"]


def check_alpha(alpha: float) -> float:
    alpha = float(alpha)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(
            f"alpha must lie in [0, 1] (0 = at the previous section, 1 = at the next), got {alpha}."
        )
    return alpha


def intermediate_flows(flow_pn: np.ndarray, flow_np: np.ndarray, alpha: float):
    """Flows from the intermediate section at position ``alpha`` to both neighbours.

    With ``F01`` the flow previous->next and ``F10`` next->previous, the flows from the
    section at ``t = alpha`` are approximated as in Jiang et al. (2018):
    ``F_t0 = -(1 - t) t F01 + t^2 F10`` and ``F_t1 = (1 - t)^2 F01 - t (1 - t) F10``.
    For a uniform motion this gives exactly ``-t`` and ``1 - t`` times the motion, and both
    bidirectional flows contribute to each warp.

    Returns
    -------
    flow_to_prev, flow_to_next : ndarray, shape (H, W, 2)
    """
    t = alpha
    pn = np.asarray(flow_pn, np.float32)
    np_ = np.asarray(flow_np, np.float32)
    work = np.empty_like(pn)  # in place: four maps of a 2048^2 section would be 130 MB
    to_prev = np.multiply(pn, -(1 - t) * t)
    to_prev += np.multiply(np_, t * t, out=work)
    to_next = np.multiply(pn, (1 - t) * (1 - t))
    to_next -= np.multiply(np_, t * (1 - t), out=work)
    return to_prev, to_next


def _both_flows(prev: np.ndarray, next: np.ndarray, method: str):
    """The flows prev -> next and next -> prev.

    OpenCV computes one flow on one core; when it may use more than one thread
    (``cv2.getNumThreads() > 1``: not in a worker held to one thread) the two flows run at
    once, the second in a thread of its own (OpenCV releases the GIL). Same result to the bit.
    Only up to 2 megapixels: the two flows' buffers at once cost about 30 MB more at 1024^2
    but 200 MB at 2048^2.
    """
    if cv2.getNumThreads() < 2 or not 256 * 256 <= prev.size <= 2 * 1024 * 1024:
        return optical_flow(prev, next, method=method), optical_flow(next, prev, method=method)
    with ThreadPoolExecutor(1) as pool:
        back = pool.submit(optical_flow, next, prev, method=method)
        forward = optical_flow(prev, next, method=method)
        return forward, back.result()


def initial_reference_unit(
    prev: np.ndarray, next: np.ndarray, *, alpha: float = 0.5, method: str = "dis",
    return_warps: bool = False,
):
    """:func:`initial_reference` on normalised float32 sections (no checks, no dtype work).

    With ``return_warps=True`` also returns the two warped neighbours (Eq. 1 and 2), whose
    disagreement says where the interpolation is uncertain.
    """
    flow_pn, flow_np = _both_flows(prev, next, method)
    to_prev, to_next = intermediate_flows(flow_pn, flow_np, alpha)
    del flow_pn, flow_np  # not needed for the warps
    from_prev = warp_numpy(prev, to_prev)  # Eq. 1
    from_next = warp_numpy(next, to_next)  # Eq. 2
    ref = ((1 - alpha) * from_prev + alpha * from_next).astype(np.float32)  # Eq. 3
    return (ref, from_prev, from_next) if return_warps else ref


def initial_reference(prev, next, *, alpha: float = 0.5, method: str = "dis") -> np.ndarray:
    """Interpolate the section between ``prev`` and ``next`` by bidirectional optical flow.

    Both neighbours are warped toward the intermediate position by their share of the flow
    and blended (FlowInpaint Eq. 1-3).

    Parameters
    ----------
    prev, next : array_like, shape (H, W)
        The neighbouring sections (uint8, uint16, float32 or float64), same shape and dtype.
    alpha : float, keyword-only
        Relative position of the wanted section: 0 is at ``prev``, 1 at ``next`` and 0.5
        (the paper's setting) midway. It scales both warps and weights the blend: the warp
        of ``prev`` gets weight ``1 - alpha`` and that of ``next`` weight ``alpha``.
    method : {"dis", "farneback"}, keyword-only
        Optical-flow back-end, see :func:`napari_flowinpaint.engine.optical_flow`.

    Returns
    -------
    ndarray, shape (H, W), dtype of ``prev``

    Notes
    -----
    The paper writes Eq. 3 as ``alpha * I_prev + (1 - alpha) * I_next``; it only uses
    ``alpha = 0.5``, where the two readings agree. Here ``alpha`` is consistently the position
    of the section, so the nearer neighbour counts more.

    References
    ----------
    .. [1] FlowInpaint: Serial section microscopy image inpainting guided by axial optical
       flow. ACM MM 2024, section 3.1.
    .. [2] Jiang, H. et al. (2018). Super SloMo: High quality estimation of multiple
       intermediate frames for video interpolation. CVPR.
    """
    prev = as_slice(prev, "prev")
    next = as_slice(next, "next")
    check_same_shape(prev=prev, next=next)
    alpha = check_alpha(alpha)
    scale = IntensityScale.fit(prev, next)
    ref = initial_reference_unit(scale.to_unit(prev), scale.to_unit(next), alpha=alpha,
                                 method=method)
    lo = float(min(prev.min(), next.min()))
    hi = float(max(prev.max(), next.max()))
    return scale.from_unit(ref, clip_to=(lo, hi))
