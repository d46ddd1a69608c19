"""MATLAB-compatible bicubic imresize: hand-checked weights, size rules, uint8 rounding, torch path, and the
MATLAB-made LR files of the benchmark sets (REPRO_DATA)."""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch

from repro.data.images import read_image
from repro.imaging import mod_crop
from repro.imaging.resize import contributions, imresize, imresize_torch, output_size, weight_matrix

# MATLAB's cubic (a = -0.5) at distances 1.75, 0.75, 0.25, 1.25: the x2 upscaling taps.
X2_TAPS = np.array([-0.0234375, 0.2265625, 0.8671875, -0.0703125])


@pytest.mark.parametrize(("size", "scale", "out"), [
    ((10, 7), 0.5, (5, 4)), ((9, 7), 1 / 3, (3, 3)), ((10, 7), 4, (40, 28)), ((7, 5), 3, (21, 15)),
    ((13, 11), 0.25, (4, 3)), ((1, 1), 2, (2, 2)),
])
def test_output_size_is_ceil_of_in_times_scale(size, scale, out, random_image):
    assert imresize(random_image(size), scale).shape == out
    assert imresize(random_image((*size, 3)), scale).shape == (*out, 3)


def test_output_size_has_no_float_noise_at_one_third():
    # 3k * fl(1/3) is not exactly k in floating point; MATLAB's mod-cropped images must give k.
    assert all(output_size(3 * k, 1 / 3) == k for k in range(1, 2000))
    assert all(output_size(s * k, 1 / s) == k for s in (2, 4, 5, 6, 7) for k in range(1, 500))


def test_x2_upscale_weights_by_hand():
    idx, w = contributions(8, 16, 2.0)
    assert w.shape == (16, 4)  # the two all-zero taps are dropped, as in MATLAB
    np.testing.assert_allclose(w[4], X2_TAPS, atol=1e-15)  # output 5 (1-based) samples u = 2.75
    np.testing.assert_array_equal(idx[4], [0, 1, 2, 3])
    np.testing.assert_allclose(w[5], X2_TAPS[::-1], atol=1e-15)  # output 6: u = 3.25, mirrored taps
    np.testing.assert_array_equal(idx[5], [1, 2, 3, 4])
    # first row: taps at 1-based -1, 0, 1, 2 mirror to 2, 1, 1, 2
    np.testing.assert_array_equal(idx[0], [1, 0, 0, 1])
    np.testing.assert_allclose(weight_matrix(8, 16, 2.0)[0, :3], [1.09375, -0.09375, 0.0], atol=1e-15)


def test_x2_downscale_weights_are_the_stretched_kernel():
    idx, w = contributions(16, 8, 0.5)
    expected = 0.5 * np.array([-0.0234375, -0.0703125, 0.2265625, 0.8671875,
                               0.8671875, 0.2265625, -0.0703125, -0.0234375])
    row = dict(zip(idx[2].tolist(), w[2].tolist(), strict=True))  # output 3 samples u = 5.5 (1-based)
    np.testing.assert_allclose([row.get(i, 0.0) for i in range(1, 9)], expected, atol=1e-15)  # 0-based
    np.testing.assert_allclose(w.sum(axis=1), 1.0, atol=1e-14)


def test_impulse_response_height_first():
    img = np.zeros((8, 5))
    img[4, :] = 1.0  # constant along the width: the width pass keeps it, the column is the 1-D response
    out = imresize(img, 2)
    np.testing.assert_allclose(out[5:13, 2], [-0.0234375, -0.0703125, 0.2265625, 0.8671875,
                                              0.8671875, 0.2265625, -0.0703125, -0.0234375], atol=1e-15)
    assert np.all(out[:5] == 0) and np.all(out[13:] == 0)
    np.testing.assert_allclose(out, np.repeat(out[:, :1], 10, axis=1), atol=1e-15)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4])
@pytest.mark.parametrize("shape", [(12, 9), (13, 11, 3), (24, 17, 1)])
def test_constant_image_stays_constant(scale, shape):
    for value in (0, 1, 128, 255):
        img = np.full(shape, value, dtype=np.uint8)
        out = imresize(img, scale)
        assert out.dtype == np.uint8 and np.all(out == value)
        np.testing.assert_allclose(imresize(img.astype(np.float64), scale), value, atol=1e-9)


def test_float_and_uint8_paths(random_image):
    img = random_image((24, 18, 3), seed=1)
    f = imresize(img.astype(np.float64), 1 / 3)
    u = imresize(img, 1 / 3)
    assert f.dtype == np.float64 and u.dtype == np.uint8
    assert imresize(img.astype(np.float32), 1 / 3).dtype == np.float32
    # uint8 = round(Ww round(Wh img)) with rounding + saturation between the passes (dense re-derivation)
    wh, ww = weight_matrix(24, 8, 1 / 3), weight_matrix(18, 6, 1 / 3)
    for c in range(3):
        mid = np.clip(np.floor(wh @ img[:, :, c] + 0.5), 0, 255)
        np.testing.assert_array_equal(u[:, :, c], np.clip(np.floor(mid @ ww.T + 0.5), 0, 255))
        np.testing.assert_allclose(f[:, :, c], wh @ img[:, :, c] @ ww.T, atol=1e-10)
    assert np.abs(u.astype(float) - f).max() < 2.0


def test_uint8_saturates_after_each_pass():
    img = np.zeros((16, 16), dtype=np.uint8)
    img[::2, ::2] = 255  # strong overshoot of the negative lobes
    f = imresize(img.astype(np.float64), 2)
    assert f.min() < 0 and f.max() > 255
    u = imresize(img, 2)
    assert u.min() == 0 and u.max() == 255
    # MATLAB clips the intermediate: different from a float pass 1 followed by one final rounding
    wh, ww = weight_matrix(16, 32, 2.0), weight_matrix(16, 32, 2.0)
    unclipped = np.clip(np.floor(wh @ img @ ww.T + 0.5), 0, 255)
    assert np.any(unclipped != u)


@pytest.mark.parametrize("scale", [2, 3, 4, 1 / 2, 1 / 3, 1 / 4])
def test_torch_matches_numpy_float(scale):
    x = np.random.default_rng(2).random((2, 3, 13, 11))
    expected = np.stack([np.stack([imresize(c, scale) for c in img]) for img in x])
    out = imresize_torch(torch.from_numpy(x), scale)
    np.testing.assert_allclose(out.numpy(), expected, atol=1e-12)
    xf = torch.from_numpy(x).float().requires_grad_()
    y = imresize_torch(xf, scale)
    assert y.dtype == torch.float32 and y.shape[-2:] == expected.shape[-2:]
    y.sum().backward()
    assert xf.grad is not None and torch.isfinite(xf.grad).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="HxW"):
        imresize(np.zeros((2, 2, 2, 2), dtype=np.uint8), 2)
    with pytest.raises(TypeError, match="uint8 or float"):
        imresize(np.zeros((4, 4), dtype=np.int32), 2)
    with pytest.raises(ValueError, match="positive"):
        imresize(np.zeros((4, 4)), 0)
    with pytest.raises(TypeError, match="float"):
        imresize_torch(torch.zeros(1, 1, 4, 4, dtype=torch.uint8), 2)


def _data_root() -> Path:
    root = os.environ.get("REPRO_DATA")
    if not root:
        pytest.skip("REPRO_DATA is not set: it must point at the folder holding benchmark/<set>/LR_bicubic")
    return Path(root)


@pytest.mark.data
@pytest.mark.slow
def test_reproduces_matlab_lr_files():
    """imresize of each mod-cropped HR image vs MATLAB's own LR file: >= 99% identical pixels overall."""
    bench = _data_root() / "benchmark"
    same: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for set_dir in sorted(p for p in bench.iterdir() if (p / "LR_bicubic").is_dir()):
        for lr_dir in sorted((set_dir / "LR_bicubic").iterdir()):
            scale = int(lr_dir.name[1:])
            key = f"{set_dir.name} x{scale}"
            for hr_path in sorted((set_dir / "HR").glob("*.png")):
                lr = read_image(lr_dir / f"{hr_path.stem}x{scale}.png")
                out = imresize(mod_crop(read_image(hr_path), scale), 1 / scale)
                assert out.shape == lr.shape, hr_path
                same[key] += int(np.count_nonzero(out == lr))
                total[key] += lr.size
    assert total, f"no LR_bicubic files under {bench}"
    for key in total:
        print(f"{key}: {100 * same[key] / total[key]:.3f}% identical pixels")
    overall = sum(same.values()) / sum(total.values())
    print(f"overall: {100 * overall:.3f}% of {sum(total.values())} pixels identical to MATLAB")
    assert overall >= 0.99
    assert all(same[k] / total[k] >= 0.98 for k in total)
