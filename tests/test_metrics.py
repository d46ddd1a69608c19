"""PSNR/SSIM on Y as the SR literature measures them: known values, grayscale handling, crop, references."""

from __future__ import annotations

import math

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from repro.evaluate.metrics import psnr_ssim_y, psnr_y, ssim_y
from repro.imaging import mod_crop, rgb_to_y


def noisy(img, amplitude, seed):
    noise = np.random.default_rng(seed).integers(-amplitude, amplitude + 1, img.shape)
    return np.clip(img.astype(int) + noise, 0, 255).astype(np.uint8)


def test_rgb_to_y_known_pixels():
    img = np.array([[[0, 0, 0], [255, 255, 255], [255, 0, 0], [0, 255, 0], [0, 0, 255]]], dtype=np.uint8)
    np.testing.assert_allclose(rgb_to_y(img), [[16.0, 235.0, 16 + 65.481, 16 + 128.553, 16 + 24.966]],
                               atol=1e-12)
    assert rgb_to_y(img).dtype == np.float64  # kept as float, not rounded


def test_grayscale_is_measured_as_is(random_image):
    gray = random_image((8, 9))
    y = rgb_to_y(gray)
    assert y.dtype == np.float64
    np.testing.assert_array_equal(y, gray)
    np.testing.assert_array_equal(rgb_to_y(gray[:, :, None]), gray)
    # the same picture stored as RGB with R=G=B measures 20 log10(255/219) = 1.32 dB higher
    hr = random_image((40, 40), seed=1)
    sr = noisy(hr, 6, seed=2)
    as_rgb = psnr_y(np.repeat(sr[..., None], 3, 2), np.repeat(hr[..., None], 3, 2), 0)
    assert as_rgb - psnr_y(sr, hr, 0) == pytest.approx(20 * math.log10(255 / 219), abs=1e-9)


def test_psnr_of_known_arrays():
    hr = np.full((10, 12), 100, dtype=np.uint8)
    assert psnr_y(hr + 1, hr, 0) == pytest.approx(20 * math.log10(255))  # mse 1: 48.13 dB
    sr = hr.copy()
    sr[0, 0] = 110  # mse 100/120
    assert psnr_y(sr, hr, 0) == pytest.approx(10 * math.log10(255**2 * 120 / 100))
    rgb_hr = np.zeros((6, 6, 3), dtype=np.uint8)
    rgb_sr = rgb_hr.copy()
    rgb_sr[..., 1] = 255  # Y differs by 128.553 everywhere
    assert psnr_y(rgb_sr, rgb_hr, 0) == pytest.approx(20 * math.log10(255 / 128.553))


def test_identical_images_give_inf_and_ssim_one(random_image):
    img = random_image((32, 30, 3))
    assert psnr_y(img, img.copy(), 2) == math.inf
    assert ssim_y(img, img.copy(), 2) == pytest.approx(1.0, abs=1e-12)
    assert psnr_ssim_y(img, img, 2) == (math.inf, pytest.approx(1.0, abs=1e-12))


def test_crop_border_ignores_the_border(random_image):
    hr = random_image((20, 20, 3))
    sr = hr.copy()
    sr[:3] = 0
    sr[:, -3:] = 255
    assert psnr_y(sr, hr, 3) == math.inf
    assert psnr_y(sr, hr, 2) < 40
    sr2 = hr.copy()
    sr2[3, 10] ^= 0xFF  # one pixel just inside a crop of 3: mse over the 14x14 centre
    expected = np.mean((rgb_to_y(sr2)[3:-3, 3:-3] - rgb_to_y(hr)[3:-3, 3:-3]) ** 2)
    assert psnr_y(sr2, hr, 3) == pytest.approx(10 * math.log10(255**2 / expected))


def _ssim_reference(x: np.ndarray, y: np.ndarray) -> float:
    """Straight from Wang et al. 2004: every valid 11x11 window, Gaussian weights sigma 1.5, L = 255."""
    ax = np.arange(11) - 5.0
    w = np.exp(-(ax[:, None] ** 2 + ax[None, :] ** 2) / (2 * 1.5**2))
    w /= w.sum()
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    values = []
    for i in range(x.shape[0] - 10):
        for j in range(x.shape[1] - 10):
            a, b = x[i:i + 11, j:j + 11], y[i:i + 11, j:j + 11]
            ma, mb = (w * a).sum(), (w * b).sum()
            va, vb = (w * (a - ma) ** 2).sum(), (w * (b - mb) ** 2).sum()
            cov = (w * (a - ma) * (b - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_matches_a_direct_computation(random_image):
    hr = random_image((19, 17, 3), seed=3)
    sr = noisy(hr, 40, seed=4)
    expected = _ssim_reference(rgb_to_y(sr)[2:-2, 2:-2], rgb_to_y(hr)[2:-2, 2:-2])
    assert ssim_y(sr, hr, 2) == pytest.approx(expected, abs=1e-12)
    assert ssim_y(sr, hr, 2) < 0.99


def test_ssim_matches_scikit_image_gaussian_setting(random_image):
    # skimage with these settings is the same estimator (it averages over the valid part only)
    hr = random_image((64, 48), seed=5)
    sr = noisy(hr, 20, seed=6)
    ref = structural_similarity(hr.astype(np.float64), sr.astype(np.float64), data_range=255,
                                gaussian_weights=True, sigma=1.5, use_sample_covariance=False)
    assert ssim_y(sr, hr, 0) == pytest.approx(ref, abs=1e-10)


def test_clear_errors():
    with pytest.raises(ValueError, match=r"shapes differ: \(10, 10, 3\) vs \(12, 10, 3\)"):
        psnr_y(np.zeros((10, 10, 3), np.uint8), np.zeros((12, 10, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="shapes differ"):
        ssim_y(np.zeros((20, 20), np.uint8), np.zeros((20, 20, 3), np.uint8), 0)
    with pytest.raises(ValueError, match="too small to crop"):
        psnr_y(np.zeros((6, 6), np.uint8), np.zeros((6, 6), np.uint8), 3)
    with pytest.raises(ValueError, match="SSIM needs at least 11x11"):
        ssim_y(np.zeros((14, 14), np.uint8), np.zeros((14, 14), np.uint8), 2)
    with pytest.raises(ValueError, match="HxW or HxWx3"):
        rgb_to_y(np.zeros((4, 4, 4), np.uint8))


def test_mod_crop_keeps_top_left(random_image):
    img = random_image((13, 10, 3))
    out = mod_crop(img, 4)
    assert out.shape == (12, 8, 3)
    np.testing.assert_array_equal(out, img[:12, :8])
    assert mod_crop(img[:, :, 0], 3).shape == (12, 9)
