"""PSNR and SSIM on the Y channel, exactly as the SR literature measures them (SPEC 5).

The details that move printed numbers: Y is kept as float (not rounded), grayscale images are
measured as they are (converting them to Y adds 1.32 dB), `scale` pixels are cropped from every
border, SSIM uses an 11x11 Gaussian (sigma 1.5) with valid filtering.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
from scipy.ndimage import correlate1d

_SSIM_WINDOW, _SSIM_SIGMA = 11, 1.5
_C1, _C2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
_Y_WEIGHTS = np.array([65.481, 128.553, 24.966]) / 255.0


def mod_crop(img: np.ndarray, scale: int) -> np.ndarray:
    """Crop the bottom/right so height and width are multiples of `scale` (top-left kept)."""
    if scale < 1:
        raise ValueError(f"mod_crop scale must be >= 1, got {scale}")
    h, w = img.shape[:2]
    return img[: h - h % scale, : w - w % scale]


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 as float64, from 0..255 RGB.

    A grayscale image (HxW or HxWx1) is returned as float64 unchanged: it has no colour to convert.
    """
    img = np.asarray(img)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[:, :, 0]
    if img.ndim == 2:
        return img.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    return 16.0 + img.astype(np.float64) @ _Y_WEIGHTS


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


def gaussian_window_1d(size: int = _SSIM_WINDOW, sigma: float = _SSIM_SIGMA) -> np.ndarray:
    """Normalised 1-D Gaussian; its outer product is MATLAB's fspecial('gaussian', size, sigma)."""
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2.0
    g = np.exp(-(x**2) / (2.0 * sigma**2))
    return g / g.sum()


@lru_cache(maxsize=64)
def _row_filter(height: int) -> sp.csr_matrix:
    """Banded [height - 10, height] matrix: valid Gaussian correlation down the rows as one sparse product."""
    g = gaussian_window_1d()
    out = height - len(g) + 1
    bands = [np.full(out, v) for v in g]
    return sp.diags(bands, offsets=list(range(len(g))), shape=(out, height), format="csr")


def _filter_valid(maps: list[np.ndarray]) -> np.ndarray:
    """Separable 11x11 Gaussian correlation of equally sized maps, only where the window fits (MATLAB
    'valid'); returns [len(maps), H - 10, W - 10]. Rows: one sparse product over the maps side by side
    (faster than a strided correlate1d); columns: correlate1d along the contiguous axis."""
    h, w = maps[0].shape
    g = gaussian_window_1d()
    r = len(g) // 2
    rows = np.asarray(_row_filter(h) @ np.stack(maps, axis=1).reshape(h, -1)).reshape(h - 2 * r, len(maps), w)
    return correlate1d(rows, g, axis=-1, mode="constant")[..., r:-r].transpose(1, 0, 2)


def _ssim(x: np.ndarray, y: np.ndarray) -> float:
    if min(x.shape) < _SSIM_WINDOW:
        raise ValueError(f"SSIM needs at least {_SSIM_WINDOW}x{_SSIM_WINDOW} pixels after the crop, "
                         f"got {x.shape[0]}x{x.shape[1]}")
    # the five local statistics: mean x, mean y, E[x^2], E[y^2], E[xy]
    mu_x, mu_y, exx, eyy, exy = _filter_valid([x, y, x * x, y * y, x * y])
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    num = (2 * mu_xy + _C1) * (2 * (exy - mu_xy) + _C2)
    den = (mu_xx + mu_yy + _C1) * ((exx - mu_xx) + (eyy - mu_yy) + _C2)
    return float(np.mean(num / den))


def psnr_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """PSNR (peak 255) on Y after cropping `crop_border` pixels per side; inf for identical images."""
    return _psnr(*_prepare(sr, hr, crop_border))


def ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> float:
    """SSIM (Wang et al. 2004) on Y: 11x11 Gaussian sigma 1.5, K1 0.01, K2 0.03, L 255, valid filtering."""
    return _ssim(*_prepare(sr, hr, crop_border))


def psnr_ssim_y(sr: np.ndarray, hr: np.ndarray, crop_border: int) -> tuple[float, float]:
    """Both metrics from one Y conversion (what evaluation loops want)."""
    x, y = _prepare(sr, hr, crop_border)
    return _psnr(x, y), _ssim(x, y)
