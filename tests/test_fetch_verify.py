"""Pixel verification and the `repro data` command line: digests independent of the file encoding, the
B100 crop rule, and the real benchmark images (REPRO_DATA; skipped without it)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro.cli import main
from repro.data.images import read_image
from repro.data.manifests import get_manifest
from repro.data.verify import PixelDigest, check_pixels, pixel_digest, verify


def test_pixel_digest_ignores_file_encoding(tmp_path, random_image):
    arr = random_image((20, 30, 3), 7)
    Image.fromarray(arr).save(tmp_path / "a.png", compress_level=0)
    Image.fromarray(arr).save(tmp_path / "b.png", compress_level=9)
    Image.fromarray(arr).save(tmp_path / "c.bmp")
    assert (tmp_path / "a.png").read_bytes() != (tmp_path / "b.png").read_bytes()
    digests = {pixel_digest(read_image(tmp_path / n)) for n in ("a.png", "b.png", "c.bmp")}
    assert digests == {pixel_digest(arr)}


def test_crop_digest_accepts_one_pixel_larger_or_smaller_copies(random_image):
    arr = random_image((321, 481, 3), 0)
    entry = PixelDigest("x.png", (321, 480, 3), pixel_digest(arr[:, :480]), (320, 480),
                        pixel_digest(arr[:320, :480]))
    assert check_pixels(entry, arr[:, :480]) is None  # the listed copy
    assert check_pixels(entry, arr) is None  # 481x321 original
    assert check_pixels(entry, arr[:320, :480]) is None  # 480x320 copy
    changed = arr[:320, :480].copy()
    changed[10, 10, 0] ^= 1
    assert "top-left 320x480 crop" in check_pixels(entry, changed)
    assert "shape" in check_pixels(entry, arr[:300, :480])  # not a near copy
    plain = PixelDigest("y.png", (4, 4), pixel_digest(np.zeros((4, 4), np.uint8)))
    assert check_pixels(plain, np.zeros((4, 5), np.uint8)).startswith("shape [4, 5]")


def test_cli_fetch_unknown_dataset_lists_valid_names(capsys):
    assert main(["data", "fetch", "nosuch"]) == 2
    err = capsys.readouterr().err
    assert "unknown dataset 'nosuch'" in err and "benchmark, div2k, sample, t91" in err


def test_cli_fetch_sample_downloads_nothing(capsys, tmp_path):
    assert main(["data", "fetch", "sample", "--root", str(tmp_path)]) == 0
    assert "nothing to download" in capsys.readouterr().out
    assert list(tmp_path.iterdir()) == []


def test_cli_list_shows_every_dataset(capsys, tmp_path):
    (tmp_path / "T91").mkdir()
    assert main(["data", "list", "--root", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("benchmark", "div2k", "sample", "t91"):
        assert f"\n{name} " in out
    assert "5.8 GB" in out and "partial" not in out and "absent" in out


def _shared_root() -> Path:
    root = os.environ.get("REPRO_DATA")
    if not root or not (Path(root) / "benchmark").is_dir():
        pytest.skip("REPRO_DATA is unset or has no benchmark/: the real benchmark images are needed")
    return Path(root)


@pytest.mark.data
@pytest.mark.slow
def test_cli_verify_benchmark_passes_on_shared_images(capsys):
    _shared_root()
    assert main(["data", "verify", "benchmark"]) == 0
    assert "benchmark: OK (676 images checked" in capsys.readouterr().out


@pytest.mark.data
def test_verify_t91_passes_on_shared_images():
    report = verify(get_manifest("t91"), _shared_root())
    assert report.ok, report.problems
    assert report.checked == 91


@pytest.mark.data
def test_verify_benchmark_names_a_changed_pixel(tmp_path, capsys):
    src = _shared_root() / "benchmark/Set5"
    shutil.copytree(src, tmp_path / "benchmark/Set5")
    path = tmp_path / "benchmark/Set5/HR/bird.png"
    arr = np.array(Image.open(path))
    arr[0, 0, 0] ^= 1
    Image.fromarray(arr).save(path)
    b100 = _shared_root() / "benchmark/B100/HR/3096.png"  # a 480x320 crop of a B100 image still passes
    (tmp_path / "benchmark/B100/HR").mkdir(parents=True)
    Image.fromarray(np.array(Image.open(b100))[:320, :480]).save(tmp_path / "benchmark/B100/HR/3096.png")
    report = verify(get_manifest("benchmark"), tmp_path)
    assert [m.split(":")[0] for m in report.mismatched] == ["benchmark/Set5/HR/bird.png"]
    assert "benchmark/Set5/HR/baby.png" not in report.missing
    assert "benchmark/B100/HR/3096.png" not in report.missing
    assert "benchmark/Set14/HR/bridge.png" in report.missing
    assert main(["data", "verify", "benchmark", "--root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "mismatch: benchmark/Set5/HR/bird.png: pixels differ" in out and "more missing" in out
