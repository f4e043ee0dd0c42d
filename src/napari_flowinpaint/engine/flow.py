"""Optical flow between sections and warping by a flow field.

Conventions (used everywhere in the package):

* A numpy flow has shape ``(H, W, 2)`` holding ``(dx, dy)`` in pixels, as OpenCV returns it.
* A torch flow has shape ``(B, 2, H, W)`` with channel 0 = dx and channel 1 = dy.
* Flows are *backward*: ``flow_ab`` from image ``a`` to image ``b`` satisfies
  ``a(x) ~= b(x + flow_ab(x))``, and :func:`warp` samples ``image(x + flow(x))``.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_map_for
from .names import FLOW_METHODS

__all__ = ["FLOW_METHODS", "optical_flow", "warp", "warp_numpy", "Warp"]


_MIN_FLOW_SIZE = 32  # smaller sections are mirrored out to this size for the flow


def _to_uint8(unit: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.clip(unit * 255.0 + 0.5, 0, 255).astype(np.uint8))


def optical_flow(a: np.ndarray, b: np.ndarray, *, method: str = "dis") -> np.ndarray:
    """Dense optical flow from section ``a`` to section ``b``.

    Parameters
    ----------
    a, b : ndarray, shape (H, W), float32 in about [0, 1]
        Two normalised sections of the same shape.
    method : {"dis", "farneback"}
        ``"dis"``: OpenCV's Dense Inverse Search (Kroeger et al. 2016), preset *medium* with
        variational refinement. ``"farneback"``: OpenCV's Farneback polynomial expansion
        (Farneback 2003) with 4 pyramid levels and a 21-pixel window.

    Returns
    -------
    flow : ndarray, shape (H, W, 2), float32
        Backward flow ``(dx, dy)`` with ``a(x) ~= b(x + flow(x))``.

    References
    ----------
    .. [1] Kroeger, T., Timofte, R., Dai, D., Van Gool, L. (2016). Fast optical flow using
       dense inverse search. ECCV.
    .. [2] Farneback, G. (2003). Two-frame motion estimation based on polynomial expansion.
       SCIA.
    """
    if method not in FLOW_METHODS:
        raise ValueError(f"unknown optical-flow method {method!r}; expected one of {FLOW_METHODS}.")
    a8, b8 = _to_uint8(a), _to_uint8(b)
    h, w = a8.shape
    if h < _MIN_FLOW_SIZE or w < _MIN_FLOW_SIZE:
        # OpenCV's flows fail on small images (DIS crashes the interpreter on sections 11-15
        # pixels tall): compute on a mirrored extension, keep the section's part
        pad = (0, max(0, _MIN_FLOW_SIZE - h), 0, max(0, _MIN_FLOW_SIZE - w))
        a8, b8 = (cv2.copyMakeBorder(x, *pad, cv2.BORDER_REFLECT) for x in (a8, b8))
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        flow = dis.calc(a8, b8, None)
    else:
        flow = cv2.calcOpticalFlowFarneback(
            a8, b8, None, pyr_scale=0.5, levels=4, winsize=21, iterations=3,
            poly_n=5, poly_sigma=1.1, flags=0,
        )
    return np.ascontiguousarray(flow[:h, :w], dtype=np.float32)


def warp(image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """Backward-warp ``image`` by ``flow``: ``out(x) = image(x + flow(x))``.

    Bilinear sampling; samples outside the image take the nearest border value.

    Parameters
    ----------
    image : Tensor, shape (B, C, H, W)
    flow : Tensor, shape (B, 2, H, W)
        Displacement in pixels, channel 0 = dx, channel 1 = dy.

    Returns
    -------
    Tensor, shape (B, C, H, W), same dtype as ``image``.
    """
    check_map_for(image, "image", flow, "flow", 2)
    h, w = image.shape[2:]
    ys = torch.arange(h, device=flow.device, dtype=flow.dtype)
    xs = torch.arange(w, device=flow.device, dtype=flow.dtype)
    gy, gx = torch.meshgrid(ys, xs, indexing="ij")
    return _sample(image, gx.unsqueeze(0) + flow[:, 0], gy.unsqueeze(0) + flow[:, 1])


def _sample(image: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``image`` (B, C, H, W) sampled bilinearly at pixel coordinates ``x``, ``y`` (B, h, w;
    any h, w), nearest border value outside: (B, C, h, w)."""
    h, w = image.shape[2:]
    # align_corners=True: -1 and 1 are the centres of the first and last pixels
    grid = torch.stack(
        (2.0 * x / max(w - 1, 1) - 1.0, 2.0 * y / max(h - 1, 1) - 1.0), dim=-1
    )
    return F.grid_sample(
        image, grid.to(image.dtype), mode="bilinear", padding_mode="border", align_corners=True
    )


class Warp(nn.Module):
    """Module form of :func:`warp` (no parameters)."""

    def forward(self, image: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return warp(image, flow)


def warp_numpy(image: np.ndarray, flow: np.ndarray, *, rows: int = 256) -> np.ndarray:
    """:func:`warp` for one numpy section: ``image`` (H, W) float32, ``flow`` (H, W, 2).

    Works through ``rows`` rows at a time: the sampling grid of a whole 2048^2 section
    would take some 200 MB beside the section; the result is the same to the bit.
    """
    img = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None, None]
    h, w = img.shape[2:]
    check_map_for(img, "image", flow.transpose(2, 0, 1)[None], "flow", 2)
    out = np.empty((h, w), np.float32)
    xs = torch.arange(w, dtype=torch.float32)
    with torch.no_grad():
        for r0 in range(0, h, rows):
            r1 = min(h, r0 + rows)
            band = torch.from_numpy(np.ascontiguousarray(flow[r0:r1], dtype=np.float32))
            ys = torch.arange(r0, r1, dtype=torch.float32)[:, None]
            x, y = xs[None, None] + band[None, ..., 0], ys[None] + band[None, ..., 1]
            out[r0:r1] = _sample(img, x, y)[0, 0].numpy()
    return out
