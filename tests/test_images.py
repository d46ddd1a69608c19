"""read_image/write_image: modes, errors naming the path, atomic writes."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from repro.data.images import read_image, write_image
from repro.errors import ReproError


def test_round_trip_rgb_and_gray(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (7, 9, 3), dtype=np.uint8)
    gray = rng.integers(0, 256, (7, 9), dtype=np.uint8)
    write_image(tmp_path / "rgb.png", rgb)
    write_image(tmp_path / "gray.png", gray)
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png"), rgb)
    out = read_image(tmp_path / "gray.png")
    assert out.shape == (7, 9) and out.dtype == np.uint8  # grayscale stays single-channel
    np.testing.assert_array_equal(out, gray)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gray.png", "rgb.png"]  # no temp files left


def test_palette_rgba_and_16bit(tmp_path):
    rgba = np.zeros((4, 5, 4), dtype=np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 7
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (4, 5, 3) and np.all(out[..., 0] == 200) and np.all(out[..., 1:] == 0)
    Image.fromarray(rgba[..., :3]).convert("P").save(tmp_path / "p.png")
    assert read_image(tmp_path / "p.png").shape == (4, 5, 3)
    Image.fromarray(np.full((3, 3), 65535, dtype=np.uint16)).save(tmp_path / "w.png")
    assert np.all(read_image(tmp_path / "w.png") == 255)


def test_errors_name_the_path(tmp_path):
    with pytest.raises(ReproError, match="image not found: .*missing.png"):
        read_image(tmp_path / "missing.png")
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG but truncated")
    with pytest.raises(ReproError, match=f"cannot read image {bad}"):
        read_image(bad)
    with pytest.raises(ValueError, match="uint8"):
        write_image(tmp_path / "f.png", np.zeros((2, 2)))
    with pytest.raises(ReproError, match="suffix"):
        write_image(tmp_path / "f.unknownext", np.zeros((2, 2), np.uint8))
