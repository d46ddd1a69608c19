"""PSNR and SSIM on the Y channel, exactly as the SR literature measures them (docs/protocol.md,
"Evaluation").

The details that move printed numbers are named parameters or fixed here: Y is kept as float (not
rounded), grayscale images are measured as they are (converting them to Y adds 1.32 dB), `crop_border`
pixels are cropped from every border. SSIM itself is scikit-image's: an 11x11 Gaussian window
(sigma 1.5), population covariances, K1 0.01, K2 0.03, L 255, and the mean over the positions where
the window fits (MATLAB's `ssim_index`, as the SR papers use it).
"""

from __future__ import annotations

import math

import numpy as np
from skimage.metrics import structural_similarity

from repro.imaging import rgb_to_y

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5  # skimage derives the 11x11 window from sigma 1.5 (truncate 3.5)


def _prepare(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> tuple[np.ndarray, np.ndarray]:
    sr, hr = np.asarray(sr), np.asarray(hr)
    if sr.shape != hr.shape:
        raise ValueError(f"SR and HR shapes differ: {sr.shape} vs {hr.shape} "
                         "(mod-crop the HR to a multiple of the scale)")
    if crop_border < 0:
        raise ValueError(f"crop_border must be >= 0, got {crop_border}")
    h, w = sr.shape[:2]
    if h <= 2 * crop_border or w <= 2 * crop_border:
        raise ValueError(f"image {h}x{w} is too small to crop {crop_border} pixels from each border")
    ys, yh = rgb_to_y(sr), rgb_to_y(hr)
    if crop_border:
        ys = ys[crop_border:-crop_border, crop_border:-crop_border]
        yh = yh[crop_border:-crop_border, crop_border:-crop_border]
    return ys, yh


def _psnr(x: np.ndarray, y: np.ndarray) -> float:
    mse = float(np.mean(np.square(x - y)))
    return math.inf if mse == 0 else 10.0 * math.log10(255.0**2 / mse)


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    if min(x.shape) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {SSIM_WINDOW}x{SSIM_WINDOW} pixels after the crop, "
                         f"got {x.shape[0]}x{x.shape[1]}")
    return float(structural_similarity(x, y, gaussian_weights=True, sigma=SSIM_SIGMA,
                                       use_sample_covariance=False, data_range=255.0))


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """PSNR (peak 255) on Y after cropping `crop_border` pixels per side; inf for identical images."""
    return _psnr(*_prepare(sr, hr, crop_border))


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """SSIM (Wang et al. 2004) on Y: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, L 255, valid positions."""
    return _ssim(*_prepare(sr, hr, crop_border))


def psnr_ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> tuple[float, float]:
    """Both metrics from one Y conversion (what evaluation loops want)."""
    x, y = _prepare(sr, hr, crop_border)
    return _psnr(x, y), _ssim(x, y)
