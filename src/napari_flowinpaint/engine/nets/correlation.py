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
    # both maps in one memory layout (warp returns a plain one): mixed layouts run on slow
    # strided paths
    return _by_row_segments(f1, f2.contiguous(memory_format=layout_of(f1)), radius)


def _by_row_segments(f1, f2, r: int, segment: int = 16) -> torch.Tensor:
    """The cost volume as matrix products: for each row offset ``dy`` and each run of
    ``segment`` pixels of a row, the (segment + 2r) x C shifted row of ``f2`` times the
    C x segment features of ``f1``; 2r + 1 diagonals of each product are the displacements.

    A few large products (7 per level for r = 3) instead of one elementwise pass per
    displacement (49): about 1.5x less time on one core, and a few operations instead of a
    hundred, which matters on a busy machine where every operation waits for all threads.
    Works in channels-last order (the shifted rows are then plain row-major matrices); the
    result is channels-last when ``f1`` is.
    """
    b, c, h, w = f1.shape
    k = 2 * r + 1
    s = min(segment, w)
    n = -(-w // s)
    wp = n * s
    a = f1.permute(0, 2, 3, 1)  # (B, H, W, C): a view when f1 is channels-last
    if wp != w:
        a = F.pad(a, (0, 0, 0, wp - w))
    a = a.reshape(b, h, n, s, c).transpose(-1, -2)  # (B, H, n, C, s)
    g = F.pad(f2, (r, r + wp - w, r, r)).permute(0, 2, 3, 1)  # (B, H + 2r, Wp + 2r, C)
    cols = []
    for dy in range(k):
        # (B, H, n, s + 2r, C): each segment's shifted row, overlapping windows
        rows = g[:, dy : dy + h].unfold(2, s + 2 * r, s).transpose(-1, -2)
        prod = torch.matmul(rows, a)  # (B, H, n, s + 2r, s): [x + dx, x]
        st = prod.stride()
        # the 2r + 1 diagonals [x + dx, x] as one view (B, H, n, s, 2r + 1)
        cols.append(prod.as_strided((b, h, n, s, k), (*st[:3], st[3] + st[4], st[3]),
                                    prod.storage_offset()))
    out = torch.stack(cols, -2).reshape(b, h, wp, k * k)[:, :, :w] * (1.0 / c)
    out = out.permute(0, 3, 1, 2)  # (B, D, H, W), channels-last strides
    return out if layout_of(f1) == torch.channels_last else out.contiguous()


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
