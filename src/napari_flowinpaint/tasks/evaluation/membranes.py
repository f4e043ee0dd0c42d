"""The downstream check of a repair: does a fixed membrane classifier still find the true cell
boundaries inside the repaired hole?

A pixel classifier (a seeded random forest on multiscale intensity, edge and texture features,
:func:`skimage.feature.multiscale_basic_features`) is trained once on labelled sections
(``isbi2012_train`` z < 24 and its ``membranes.tif``); it is then run on a repaired crop and on
the undamaged crop, and :func:`membrane_f1` compares each prediction inside the hole with the
manual labels, with a tolerance of a few pixels (boundaries a pixel or two off still count).
Repairs are judged by what they do to segmentation, the reason users repair sections.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage as ndi

from ...engine import as_mask, as_slice

__all__ = ["MembraneClassifier", "membrane_f1"]


def _features(image: np.ndarray, data_range: float) -> np.ndarray:
    from skimage.feature import multiscale_basic_features

    img = np.asarray(image, dtype=np.float32) / np.float32(data_range)
    return multiscale_basic_features(img, intensity=True, edges=True, texture=True,
                                     sigma_min=1.0, sigma_max=8.0, num_sigma=4,
                                     channel_axis=None).astype(np.float32)


class MembraneClassifier:
    """A fixed, seeded membrane classifier for the downstream check.

    Parameters
    ----------
    data_range : float, keyword-only
        Value range of the images it sees (255 for uint8); images are divided by it.
    trees, depth : int, keyword-only
        Size of the random forest.
    seed : int, keyword-only

    Examples
    --------
    >>> clf = MembraneClassifier().fit(raw, labels, sections=range(24))  # doctest: +SKIP
    >>> clf.predict(repaired_crop)                                         # doctest: +SKIP
    """

    def __init__(self, *, data_range: float = 255.0, trees: int = 40, depth: int = 14,
                 seed: int = 0):
        if not data_range > 0:
            raise ValueError(f"data_range must be positive, got {data_range}.")
        self.data_range = float(data_range)
        self.trees, self.depth, self.seed = int(trees), int(depth), int(seed)
        self.forest = None

    def fit(self, stack, labels, *, sections: Sequence[int], pixels: int = 6000):
        """Train on ``pixels`` random pixels (half membrane, half not) of each section.

        Parameters
        ----------
        stack : array_like, shape (Z, H, W)
        labels : array_like, shape (Z, H, W)
            Nonzero marks membrane (cell boundary) pixels.
        sections : sequence of int
            The sections to learn from (never the ones the check is run on).
        """
        from sklearn.ensemble import RandomForestClassifier

        if tuple(np.shape(stack)) != tuple(np.shape(labels)):
            raise ValueError(f"stack {np.shape(stack)} and labels {np.shape(labels)} differ "
                             "in shape; give the labels of this very stack.")
        rng = np.random.default_rng(self.seed)
        xs, ys = [], []
        for z in sections:
            f = _features(np.asarray(stack[z]), self.data_range)
            lab = np.asarray(labels[z]) != 0
            for value in (True, False):
                idx = np.flatnonzero(lab.ravel() == value)
                if idx.size == 0:
                    continue
                pick = rng.choice(idx, size=min(pixels // 2, idx.size), replace=False)
                xs.append(f.reshape(-1, f.shape[-1])[pick])
                ys.append(np.full(pick.size, value))
        if not xs:
            raise ValueError("no labelled pixel in the chosen sections.")
        self.forest = RandomForestClassifier(n_estimators=self.trees, max_depth=self.depth,
                                             random_state=self.seed, n_jobs=1)
        self.forest.fit(np.concatenate(xs), np.concatenate(ys))
        return self

    def predict(self, image) -> np.ndarray:
        """Boolean membrane map of ``image`` (H, W): probability above one half."""
        if self.forest is None:
            raise RuntimeError("the classifier is not trained yet: call fit() first.")
        img = as_slice(image, "image")
        f = _features(img, self.data_range)
        p = self.forest.predict_proba(f.reshape(-1, f.shape[-1]))
        col = list(self.forest.classes_).index(True)
        return (p[:, col] > 0.5).reshape(img.shape)


def membrane_f1(predicted, truth, mask, *, tolerance: float = 2.0) -> dict:
    """F1 of predicted membranes inside the hole against the true ones, with a tolerance.

    A predicted membrane pixel in the hole is right when a true membrane pixel lies within
    ``tolerance`` pixels of it (anywhere in the crop); a true one in the hole is found when a
    predicted one lies that close.

    Parameters
    ----------
    predicted, truth : array_like of bool, shape (H, W)
    mask : array_like of bool, shape (H, W)
        True on the repaired (damaged) pixels.

    Returns
    -------
    dict
        ``f1``, ``precision``, ``recall`` (``nan`` where undefined: no membrane in the hole).
    """
    m = as_mask(mask, np.shape(truth))
    pred = np.asarray(predicted, dtype=bool)
    true = np.asarray(truth, dtype=bool)
    if pred.shape != m.shape or true.shape != m.shape:
        raise ValueError(f"predicted {pred.shape}, truth {true.shape} and mask {m.shape} must "
                         "have one shape.")
    near_true = ndi.distance_transform_edt(~true) <= tolerance
    near_pred = ndi.distance_transform_edt(~pred) <= tolerance
    p_in, t_in = pred & m, true & m
    precision = float((p_in & near_true).sum() / p_in.sum()) if p_in.any() else float("nan")
    recall = float((t_in & near_pred).sum() / t_in.sum()) if t_in.any() else float("nan")
    if np.isnan(recall):
        f1 = float("nan")
    elif np.isnan(precision) or precision + recall == 0:
        f1 = 0.0
    else:
        f1 = 2 * precision * recall / (precision + recall)
    return {"f1": f1, "precision": precision, "recall": recall}
