"""Local cost volume between two feature maps (FlowInpaint Eq. 4, PWC-Net's correlation)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..flow import warp
from ._blocks import layout_of

__all__ = ["Correlation", "local_correlation"]


def local_correlation(
    f1: torch.Tensor, f2: torch.Tensor, flow: torch.Tensor | None = None, *, radius: int = 4
) -> torch.Tensor:
    """Correlation of ``f1`` with ``f2`` (warped by ``flow``) over a square search window.

    ``C[b, i, y, x] = (1 / N) * sum_c f1[b, c, y, x] * g[b, c, y + dy, x + dx]`` with
    ``g = warp(f2, flow)`` (or ``f2`` when ``flow`` is None), ``N`` the number of channels, and
    displacement ``i = (dy + r) * (2 r + 1) + (dx + r)`` for ``dx, dy`` in ``[-r, r]``.
    Displacements falling outside the image correlate with zeros.

    Parameters
    ----------
    f1, f2 : Tensor, shape (B, C, H, W)
        Feature maps (``f1``: the damaged image's, ``f2``: the reference's).
    flow : Tensor, shape (B, 2, H, W), optional
        Backward flow in pixels of this level applied to ``f2`` first
        (:func:`napari_flowinpaint.engine.flow.warp`).
    radius : int, keyword
        Search radius ``r`` (PWC-Net: 4).

    Returns
    -------
    Tensor, shape (B, (2 r + 1)**2, H, W)

    References
    ----------
    .. [1] Sun, D., Yang, X., Liu, M.-Y., Kautz, J. (2018). PWC-Net: CNNs for optical flow
       using pyramid, warping, and cost volume. CVPR.
    """
    if f1.ndim != 4 or f1.shape != f2.shape:
        raise ValueError(
            f"expected two feature maps of one shape (B, C, H, W), got {tuple(f1.shape)} and "
            f"{tuple(f2.shape)}."
        )
    if radius < 0:
        raise ValueError(f"radius must be >= 0, got {radius}.")
    if flow is not None:
        f2 = warp(f2, flow)
    # both maps in one memory layout: a channels-last f1 against a plain f2 (what warp
    # returns) costs every product 3-4x more; the values are the same to the bit
    fmt = layout_of(f1)
    f2 = f2.contiguous(memory_format=fmt)
    h, w = f1.shape[-2:]
    r = radius
    f2p = F.pad(f2, (r, r, r, r))
    scale = 1.0 / f1.shape[1]
    # one shifted product per displacement: (2r+1)^2 passes over B*C*H*W values, no big
    # intermediate (an unfold-based version needs (2r+1)^2 times the memory of f2)
    out = [
        (f1 * f2p[:, :, dy : dy + h, dx : dx + w]).sum(1) * scale
        for dy in range(2 * r + 1)
        for dx in range(2 * r + 1)
    ]
    if fmt == torch.channels_last:
        # stacked last, the (B, H, W, D) block is the channels-last form of (B, D, H, W)
        return torch.stack(out, dim=-1).permute(0, 3, 1, 2)
    return torch.stack(out, dim=1)


class Correlation(nn.Module):
    """Module form of :func:`local_correlation` (no parameters)."""

    def __init__(self, radius: int = 4):
        super().__init__()
        if radius < 0:
            raise ValueError(f"radius must be >= 0, got {radius}.")
        self.radius = int(radius)

    @property
    def out_channels(self) -> int:
        return (2 * self.radius + 1) ** 2

    def forward(self, f1, f2, flow=None):
        return local_correlation(f1, f2, flow, radius=self.radius)

    def extra_repr(self) -> str:
        return f"radius={self.radius}"
