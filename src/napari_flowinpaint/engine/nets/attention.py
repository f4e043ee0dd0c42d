"""Contextual attention (Yu et al. 2018; FlowInpaint Eq. 8-11)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .._checks import check_map_for
from ._blocks import layout_of

__all__ = ["ContextualAttention", "contextual_attention"]


def contextual_attention(
    features: torch.Tensor,
    mask: torch.Tensor,
    *,
    scale: float = 10.0,
    max_positions: int = 4096,
    chunk: int = 1024,
) -> torch.Tensor:
    """Rebuild the missing part of a feature map from its known part.

    Every 3 x 3 patch lying wholly in the known region is a key. For every missing position,
    the cosine similarity between its 3 x 3 patch and each key (Eq. 8) is turned into weights by
    a softmax with temperature ``scale`` (Eq. 9), and the position's feature becomes the
    weighted sum of the keys' centre features (Eq. 10). Known positions are left unchanged.

    Parameters
    ----------
    features : Tensor, shape (B, C, h, w)
    mask : Tensor, shape (B, 1, h, w)
        Nonzero where the feature is missing (a damaged pixel lies in its footprint).
    scale : float, keyword
        Softmax temperature (Yu et al. use 10).
    max_positions : int, keyword
        Budget on ``h * w``. A larger map is average-pooled by the smallest integer factor
        ``p`` that brings it within budget (its mask max-pooled), attention runs on the pooled
        map and its result is upsampled (nearest) by ``p`` into the missing positions, so
        attention costs at most O(max_positions**2 * C) time and O(chunk * max_positions)
        memory at any input size. With 4096 (64 x 64; the ``"gpu"`` configuration), 256 px
        training crops never pool at stride >= 4 and a 1024 x 1024 input pools its stride-8
        level by 2. With 1024 (32 x 32; the ``"cpu"`` configuration, attention at strides 8,
        16 and 32), 256 px crops never pool and a 1024 x 1024 input pools its stride-8 level
        by 4 (32 px cells), a 2048 x 2048 one by 8: on big inputs the attention copies
        coarser context, and the convolutional path carries the detail.
    chunk : int, keyword
        Missing positions processed at once: the similarity matrix held in memory is at most
        ``chunk x max_positions`` (4 M values by default).

    Returns
    -------
    Tensor, shape (B, C, h, w)
        ``features`` with the missing positions replaced. Samples with no missing or no
        known key position are returned unchanged.

    Notes
    -----
    Eq. 10 sums whole key patches (Yu et al. paste them with a transposed convolution and
    average the overlaps); we paste each key's centre feature, which is 9 times cheaper and
    equal up to that 3 x 3 smoothing.

    References
    ----------
    .. [1] Yu, J., Lin, Z., Yang, J., Shen, X., Lu, X., Huang, T. S. (2018). Generative image
       inpainting with contextual attention. CVPR.
    """
    check_map_for(features, "features", mask, "mask", 1)
    if max_positions < 9 or chunk < 1:
        raise ValueError(
            f"max_positions must be >= 9 and chunk >= 1, got {max_positions}, {chunk}."
        )
    hole = mask > 0
    h, w = features.shape[-2:]
    p = max(1, math.ceil(math.sqrt(h * w / max_positions)))
    while math.ceil(h / p) * math.ceil(w / p) > max_positions:
        p += 1
    f, m = features, hole.to(features.dtype)
    if p > 1:
        f = F.avg_pool2d(features, p, ceil_mode=True)
        m = F.max_pool2d(m, p, ceil_mode=True)
    b, c, hp, wp = f.shape
    hole_p = m.flatten(1) > 0  # (B, N)
    # a key patch must lie wholly in the known region
    key_ok = (F.max_pool2d(m, 3, stride=1, padding=1).flatten(1) == 0) & ~hole_p
    n = hp * wp
    # one row per position: its 3 x 3 patch (B, N, 9C) and its feature (B, N, C), so that
    # gathering keys and queries takes whole rows (channels-last features are not copied)
    fl = F.pad(f, (1, 1, 1, 1)).permute(0, 2, 3, 1)
    patches = torch.cat([fl[:, dy:dy + hp, dx:dx + wp] for dy in range(3) for dx in range(3)],
                        -1).reshape(b, n, 9 * c)
    patches = patches / patches.float().norm(dim=2, keepdim=True).clamp_min(1e-4).to(f.dtype)
    values = f.permute(0, 2, 3, 1).reshape(b, n, c)
    outs = []
    for i in range(b):
        qi = hole_p[i].nonzero().squeeze(1)
        ki = key_ok[i].nonzero().squeeze(1)
        if qi.numel() == 0 or ki.numel() == 0:
            outs.append(values[i])
            continue
        keys = patches[i].index_select(0, ki)  # (Nk, 9C)
        vals = values[i].index_select(0, ki)  # (Nk, C)
        filled = []
        for j in range(0, qi.numel(), chunk):
            q = patches[i].index_select(0, qi[j : j + chunk])  # (nq, 9C)
            att = torch.softmax(scale * (q @ keys.transpose(0, 1)).float(), dim=1)
            filled.append(att.to(vals.dtype) @ vals)  # (nq, C)
        out = values[i].clone()
        out[qi] = torch.cat(filled, 0).to(out.dtype)
        outs.append(out)
    out = torch.stack(outs).view(b, hp, wp, c).permute(0, 3, 1, 2)
    if p > 1:
        out = F.interpolate(out, scale_factor=p, mode="nearest")[..., :h, :w]
    out = out.to(features.dtype).contiguous(memory_format=layout_of(features))
    return torch.where(hole, out, features)


class ContextualAttention(nn.Module):
    """Module form of :func:`contextual_attention` (no parameters)."""

    def __init__(self, scale: float = 10.0, max_positions: int = 4096, chunk: int = 1024):
        super().__init__()
        self.scale = float(scale)
        self.max_positions = int(max_positions)
        self.chunk = int(chunk)

    def forward(self, features, mask):
        return contextual_attention(
            features, mask, scale=self.scale, max_positions=self.max_positions, chunk=self.chunk
        )

    def extra_repr(self) -> str:
        return f"scale={self.scale}, max_positions={self.max_positions}"
