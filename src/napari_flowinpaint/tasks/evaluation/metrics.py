"""Image-quality metrics for repaired sections: PSNR (whole and in the hole), SSIM, FSIM, and
two texture ratios in the hole (sharpness and grain).

All metrics compare a *composited* result (known pixels kept from the damaged section) with
the undamaged truth. Inputs are single grey-level sections of the same shape.
"""

from __future__ import annotations

import functools

import numpy as np
from scipy import fft as sfft
from scipy import ndimage as ndi
from skimage.metrics import structural_similarity

from ...engine import as_mask, as_slice, check_same_shape

__all__ = ["psnr", "psnr_from_mse", "psnr_hole", "ssim", "fsim", "phase_congruency",
           "gradient_magnitude", "sharpness_ratio", "grain_ratio"]


def _pair(truth, result) -> tuple[np.ndarray, np.ndarray]:
    truth = as_slice(truth, "truth")
    result = as_slice(result, "result")
    check_same_shape(truth=truth, result=result)
    return truth.astype(np.float64), result.astype(np.float64)


def _check_range(data_range) -> float:
    try:
        value = float(data_range)
    except (TypeError, ValueError):
        raise TypeError(
            f"data_range must be a number (e.g. 255 for uint8 images), got {data_range!r}."
        ) from None
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"data_range must be a positive number, got {data_range!r}.")
    return value


def psnr_from_mse(mse: float, data_range: float) -> float:
    """PSNR in dB from a mean squared error, ``10 log10(data_range^2 / mse)``; ``inf`` for 0."""
    if mse == 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def psnr(truth, result, *, data_range: float) -> float:
    """Peak signal-to-noise ratio in dB, ``10 log10(data_range^2 / MSE)``.

    Parameters
    ----------
    truth, result : array_like, shape (H, W)
        The undamaged section and the (composited) repair.
    data_range : float, keyword-only
        Difference between the largest and smallest possible values (255 for uint8).

    Returns
    -------
    float
        ``inf`` for identical images.
    """
    t, r = _pair(truth, result)
    data_range = _check_range(data_range)
    return psnr_from_mse(float(np.mean((t - r) ** 2)), data_range)


def psnr_hole(truth, result, mask, *, data_range: float) -> float:
    """PSNR over the damaged pixels only (True in ``mask``).

    Outside the hole a composited result equals the truth, so the whole-image PSNR grows
    with the undamaged fraction; this one measures the repair itself.

    Raises
    ------
    ValueError
        If ``mask`` marks no pixel.
    """
    t, r = _pair(truth, result)
    data_range = _check_range(data_range)
    m = as_mask(mask, t.shape)
    if not m.any():
        raise ValueError("mask marks no damaged pixel: the PSNR of an empty hole is undefined.")
    return psnr_from_mse(float(np.mean((t[m] - r[m]) ** 2)), data_range)


def ssim(truth, result, *, data_range: float) -> float:
    """Mean structural similarity (Wang et al. 2004) with the standard 7x7 uniform window.

    A thin wrapper of :func:`skimage.metrics.structural_similarity` (K1=0.01, K2=0.03,
    sample covariance), so numbers are comparable with scikit-image's.

    References
    ----------
    .. [1] Wang, Z., Bovik, A. C., Sheikh, H. R., Simoncelli, E. P. (2004). Image quality
       assessment: from error visibility to structural similarity. IEEE TIP 13(4), 600-612.
    """
    t, r = _pair(truth, result)
    data_range = _check_range(data_range)
    if min(t.shape) < 7:
        raise ValueError(f"ssim needs sections of at least 7x7 pixels, got {t.shape}.")
    return float(structural_similarity(t, r, data_range=data_range, win_size=7))


# -- FSIM -------------------------------------------------------------------------------

_SCHARR_X = np.array([[3.0, 0.0, -3.0], [10.0, 0.0, -10.0], [3.0, 0.0, -3.0]]) / 16.0


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Scharr gradient magnitude (kernels divided by 16, zero padding), as in FSIM."""
    img = np.asarray(image, dtype=np.float64)
    gx = ndi.correlate(img, _SCHARR_X, mode="constant", cval=0.0)
    gy = ndi.correlate(img, _SCHARR_X.T, mode="constant", cval=0.0)
    return np.hypot(gx, gy)


def _freq_grid(n: int) -> np.ndarray:
    """Normalised frequencies in FFT order, as Kovesi's code builds them (odd sizes use
    ``n - 1`` as the denominator)."""
    if n % 2:
        r = np.arange(-(n - 1) / 2, (n - 1) / 2 + 1) / (n - 1)
    else:
        r = np.arange(-n / 2, n / 2) / n
    return np.fft.ifftshift(r)


@functools.lru_cache(maxsize=8)
def _log_gabor_bank(rows: int, cols: int, n_scales: int, n_orient: int, min_wavelength: float,
                    mult: float, sigma_onf: float, d_theta_on_sigma: float):
    """Frequency-domain log-Gabor filters ``[orientation][scale]`` for a ``rows x cols``
    image, with, per orientation, the noise-model constants that depend on the filters only:
    the energy of the smallest-scale filter and the sums of squared / cross-multiplied
    spatial filters (Kovesi's noise estimate). Cached: FSIM filters two images of one shape.
    """
    fx = _freq_grid(cols)[None, :]
    fy = _freq_grid(rows)[:, None]
    radius = np.sqrt(fx**2 + fy**2)
    theta = np.arctan2(-fy, fx)
    lowpass = 1.0 / (1.0 + (radius / 0.45) ** (2 * 15))  # Butterworth, cut-off 0.45, order 15
    radius[0, 0] = 1.0  # avoid log(0) at DC; that sample is zeroed below
    sin_t, cos_t = np.sin(theta), np.cos(theta)
    log_sigma = 2.0 * np.log(sigma_onf) ** 2
    gabors = []
    for s in range(n_scales):
        f0 = 1.0 / (min_wavelength * mult**s)
        g = np.exp(-(np.log(radius / f0) ** 2) / log_sigma) * lowpass
        g[0, 0] = 0.0
        gabors.append(g)
    theta_sigma = np.pi / n_orient / d_theta_on_sigma
    sqrt_n = np.sqrt(rows * cols)
    bank = []
    for o in range(n_orient):
        angle = o * np.pi / n_orient
        ds = sin_t * np.cos(angle) - cos_t * np.sin(angle)
        dc = cos_t * np.cos(angle) + sin_t * np.sin(angle)
        spread = np.exp(-(np.arctan2(ds, dc) ** 2) / (2 * theta_sigma**2))
        filters = [g * spread for g in gabors]
        spatial = [np.real(sfft.ifft2(f)) * sqrt_n for f in filters]
        sum_an2 = sum(float(np.sum(sp**2)) for sp in spatial)
        sum_aiaj = sum(float(np.sum(spatial[i] * spatial[j]))
                       for i in range(n_scales) for j in range(i + 1, n_scales))
        energy0 = float(np.sum(filters[0] ** 2))
        filters = tuple(f.astype(np.float32) for f in filters)  # single precision: 5x faster
        for f in filters:
            f.setflags(write=False)
        bank.append((filters, energy0, sum_an2, sum_aiaj))
    return tuple(bank)


def phase_congruency(image, *, n_scales: int = 4, n_orient: int = 4,
                     min_wavelength: float = 6.0, mult: float = 2.0, sigma_onf: float = 0.55,
                     d_theta_on_sigma: float = 1.2, k: float = 2.0,
                     epsilon: float = 1e-4) -> np.ndarray:
    """Phase congruency of a grey-level image (Kovesi 1999), as used by FSIM.

    The image is filtered by a bank of log-Gabor filters (``n_scales`` scales times
    ``n_orient`` orientations) in the Fourier domain. Per orientation, the local energy
    along the mean phase direction minus a noise threshold (estimated from the median
    response of the smallest scale) is summed over orientations and divided by the summed
    amplitudes. The defaults are those of FSIM's reference code.

    Returns
    -------
    ndarray, shape (H, W), float64
        About 0 (no feature) to 1 (all scales in phase).

    References
    ----------
    .. [1] Kovesi, P. (1999). Image features from phase congruency. Videre 1(3).
    .. [2] Zhang, L., Zhang, L., Mou, X., Zhang, D. (2011). FSIM: a feature similarity index
       for image quality assessment. IEEE TIP 20(8), 2378-2386.
    """
    img = np.asarray(image, dtype=np.float64)
    if img.ndim != 2:
        raise ValueError(f"phase_congruency expects a 2-D image, got shape {img.shape}.")
    bank = _log_gabor_bank(img.shape[0], img.shape[1], int(n_scales), int(n_orient),
                           float(min_wavelength), float(mult), float(sigma_onf),
                           float(d_theta_on_sigma))
    spectrum = sfft.fft2(img).astype(np.complex64)
    energy_all = np.zeros(img.shape, np.float64)
    amp_all = np.zeros(img.shape, np.float64)
    for filters, filt_energy, sum_an2, sum_aiaj in bank:
        responses = [sfft.ifft2(spectrum * f) for f in filters]
        sum_even = sum(eo.real for eo in responses)
        sum_odd = sum(eo.imag for eo in responses)
        amp_all += sum(np.abs(eo) for eo in responses)
        norm = np.sqrt(sum_even**2 + sum_odd**2) + epsilon
        mean_e, mean_o = sum_even / norm, sum_odd / norm
        energy = np.zeros(img.shape, np.float32)
        for eo in responses:
            e, od = eo.real, eo.imag
            energy += e * mean_e + od * mean_o - np.abs(e * mean_o - od * mean_e)
        # noise threshold from the smallest scale (Rayleigh-distributed amplitudes)
        median_e2 = float(np.median(np.abs(responses[0]) ** 2))
        noise_power = (-median_e2 / np.log(0.5)) / filt_energy
        noise_energy2 = 2 * noise_power * sum_an2 + 4 * noise_power * sum_aiaj
        tau = np.sqrt(noise_energy2 / 2)
        threshold = (tau * np.sqrt(np.pi / 2) + k * np.sqrt((2 - np.pi / 2) * tau**2)) / 1.7
        energy_all += np.maximum(energy - threshold, 0.0)
    # a featureless image has no amplitude anywhere: its phase congruency is 0
    return np.divide(energy_all, amp_all, out=np.zeros_like(energy_all), where=amp_all > 0)


def _fsim_downsample(img: np.ndarray) -> np.ndarray:
    """FSIM's reference pre-processing: an F x F box filter (zero padding, MATLAB 'same'
    alignment) and subsampling by F = max(1, round(min(H, W) / 256))."""
    f = max(1, int(round(min(img.shape) / 256)))
    if f == 1:
        return img
    # MATLAB conv2(.., 'same') with an even-sized kernel averages x[i - (f-1)//2 : i + f//2];
    # scipy centres an even window at i - f//2, so shift it by origin -(f % 2 == 0).
    origin = -1 if f % 2 == 0 else 0
    smooth = ndi.uniform_filter(img, size=f, mode="constant", cval=0.0, origin=origin)
    return smooth[::f, ::f]


def fsim(truth, result, *, data_range: float | None = None) -> float:
    """Feature similarity index FSIM (Zhang et al. 2011), grey-level version.

    Both images are scaled to [0, 255] (the range FSIM's constants assume), box-filtered
    and subsampled by ``F = max(1, round(min(H, W) / 256))`` as in the authors' MATLAB code.
    The phase congruency maps ``PC`` (:func:`phase_congruency`, 4 scales, 4 orientations)
    and Scharr gradient magnitudes ``G`` are compared with
    ``S_PC = (2 PC1 PC2 + T1) / (PC1^2 + PC2^2 + T1)`` (T1 = 0.85) and
    ``S_G = (2 G1 G2 + T2) / (G1^2 + G2^2 + T2)`` (T2 = 160), and pooled with the weight
    ``max(PC1, PC2)``: ``FSIM = sum(S_PC S_G PCm) / sum(PCm)``.

    Parameters
    ----------
    truth, result : array_like, shape (H, W)
        Reference and distorted images, at least 16 x 16 pixels after subsampling.
    data_range : float, optional, keyword-only
        Span of possible values. Default: 255 for uint8, 65535 for uint16 and 1 for float
        images (which must then lie in [0, 1]); give it for other data.

    Returns
    -------
    float
        1 for identical images, lower for more distortion.

    References
    ----------
    .. [1] Zhang, L., Zhang, L., Mou, X., Zhang, D. (2011). FSIM: a feature similarity index
       for image quality assessment. IEEE TIP 20(8), 2378-2386.
    """
    t_in = as_slice(truth, "truth")
    r_in = as_slice(result, "result")
    check_same_shape(truth=t_in, result=r_in)
    if data_range is None:
        kinds = {t_in.dtype.kind, r_in.dtype.kind}
        if kinds == {"u"} and t_in.dtype == r_in.dtype:
            data_range = float(np.iinfo(t_in.dtype).max)
        elif kinds <= {"f"}:
            lo = min(float(t_in.min()), float(r_in.min()))
            hi = max(float(t_in.max()), float(r_in.max()))
            if lo < 0 or hi > 1:
                raise ValueError(
                    f"float images with values in [{lo:.4g}, {hi:.4g}] need an explicit "
                    "data_range (FSIM's constants assume a known value range)."
                )
            data_range = 1.0
        else:
            raise ValueError(
                f"truth ({t_in.dtype}) and result ({r_in.dtype}) differ in kind; give "
                "data_range explicitly."
            )
    data_range = _check_range(data_range)
    scale = 255.0 / data_range
    y1 = _fsim_downsample(t_in.astype(np.float64) * scale)
    y2 = _fsim_downsample(r_in.astype(np.float64) * scale)
    if min(y1.shape) < 16:
        raise ValueError(
            f"fsim needs images of at least 16x16 pixels (after subsampling), got {t_in.shape}."
        )
    pc1, pc2 = phase_congruency(y1), phase_congruency(y2)
    g1, g2 = gradient_magnitude(y1), gradient_magnitude(y2)
    t1, t2 = 0.85, 160.0
    s_pc = (2 * pc1 * pc2 + t1) / (pc1**2 + pc2**2 + t1)
    s_g = (2 * g1 * g2 + t2) / (g1**2 + g2**2 + t2)
    pcm = np.maximum(pc1, pc2)
    denom = float(np.sum(pcm))
    if denom == 0:  # two featureless images
        return 1.0
    return float(np.sum(s_pc * s_g * pcm) / denom)


# -- sharpness --------------------------------------------------------------------------

def sharpness_ratio(truth, result, mask) -> float:
    """Gradient energy of ``result`` inside the hole over that of ``truth`` there.

    The gradient energy is the sum of squared Scharr gradient magnitudes over the pixels
    marked in ``mask`` (gradients are taken on the whole section, so the hole's border
    counts). A blurry repair scores well below 1, the truth exactly 1 and a noisy one can
    exceed 1.

    Returns
    -------
    float
        ``nan`` when the truth is flat inside the hole (zero gradient energy).

    Raises
    ------
    ValueError
        If ``mask`` marks no pixel.
    """
    return _hole_ratio(truth, result, mask, "sharpness",
                       lambda img, m: float(np.sum(gradient_magnitude(img)[m] ** 2)))


def _hole_ratio(truth, result, mask, what: str, measure) -> float:
    """``measure(result, hole) / measure(truth, hole)``; nan when the truth's is 0."""
    t, r = _pair(truth, result)
    m = as_mask(mask, t.shape)
    if not m.any():
        raise ValueError(f"mask marks no damaged pixel: the {what} of an empty hole is "
                         "undefined.")
    of_truth = measure(t, m)
    if of_truth == 0:
        return float("nan")
    return measure(r, m) / of_truth


def grain_ratio(truth, result, mask, *, sigma: float = 2.0) -> float:
    """High-frequency grain of ``result`` in the hole relative to that of ``truth``.

    The grain is the standard deviation, over the pixels marked in ``mask``, of the image
    minus its Gaussian blur (``sigma`` pixels; taken on the whole section). A fill that looks
    like the truth blurred scores well below 1, the truth exactly 1, added noise above 1.

    Returns
    -------
    float
        ``nan`` when the truth has no grain in the hole.

    Raises
    ------
    ValueError
        If ``mask`` marks no pixel.
    """
    return _hole_ratio(truth, result, mask, "grain",
                       lambda img, m: float(np.std((img - ndi.gaussian_filter(img, sigma))[m])))
