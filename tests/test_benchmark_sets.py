"""load_set: mod-cropped HR, LR from the MATLAB files or imresize, the embedded sample, clear errors."""

from __future__ import annotations

import os

import numpy as np
import pytest

from repro.data.images import write_image
from repro.data.names import BENCHMARK_SETS
from repro.data.testsets import load_set
from repro.errors import ReproError
from repro.imaging.resize import imresize


def test_synthetic_set_without_lr_files_uses_imresize(tmp_path):
    hr_dir = tmp_path / "benchmark" / "Set14" / "HR"
    hr_dir.mkdir(parents=True)
    img = np.random.default_rng(0).integers(0, 256, (31, 26, 3), dtype=np.uint8)
    write_image(hr_dir / "x.png", img)
    (pair,) = load_set("Set14", 3, root=tmp_path)
    assert pair.name == "x" and pair.hr.shape == (30, 24, 3) and pair.lr.shape == (10, 8, 3)
    np.testing.assert_array_equal(pair.hr, img[:30, :24])
    np.testing.assert_array_equal(pair.lr, imresize(img[:30, :24], 1 / 3))
    with pytest.raises(ValueError):
        pair.hr[0, 0, 0] = 1  # cached arrays are shared: read-only


def test_wrong_lr_size_is_reported(tmp_path):
    root = tmp_path / "benchmark" / "Set5"
    (root / "HR").mkdir(parents=True)
    (root / "LR_bicubic" / "X2").mkdir(parents=True)
    write_image(root / "HR" / "a.png", np.zeros((20, 20), np.uint8))
    write_image(root / "LR_bicubic" / "X2" / "ax2.png", np.zeros((9, 10), np.uint8))
    with pytest.raises(ReproError, match=r"ax2.png has shape \(9, 10\), expected \(10, 10\)"):
        load_set("Set5", 2, root=tmp_path)


def test_bad_names_and_scales(tmp_path):
    with pytest.raises(ReproError, match="valid choices: Set5, Set14, B100, Urban100, sample"):
        load_set("Set15", 2, root=tmp_path)
    with pytest.raises(ReproError, match="valid choices: 2, 3, 4"):
        load_set("Set5", 5, root=tmp_path)
    with pytest.raises(ReproError, match=r"repro data fetch benchmark --root DIR"):
        load_set("B100", 2, root=tmp_path)


def test_sample_set():
    pairs = load_set("sample", 4)
    assert pairs
    for p in pairs:
        assert p.hr.dtype == np.uint8 and p.hr.shape[0] % 4 == 0 and p.hr.shape[1] % 4 == 0
        assert p.lr.shape[:2] == (p.hr.shape[0] // 4, p.hr.shape[1] // 4)


@pytest.mark.data
def test_real_sets_shapes():
    root = os.environ.get("REPRO_DATA")
    if not root:
        pytest.skip("REPRO_DATA is not set: it must point at the folder holding benchmark/<set>/")
    sizes = {"Set5": 5, "Set14": 14, "B100": 100, "Urban100": 100}
    for name in BENCHMARK_SETS[:2]:
        for scale in (2, 3, 4):
            pairs = load_set(name, scale)
            assert len(pairs) == sizes[name]
            for p in pairs:
                assert p.lr.shape == (p.hr.shape[0] // scale, p.hr.shape[1] // scale, *p.hr.shape[2:])
    bridge = next(p for p in load_set("Set14", 4) if p.name == "bridge")
    assert bridge.hr.ndim == 2 and bridge.lr.ndim == 2  # grayscale stays grayscale
