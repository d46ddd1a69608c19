"""Training patches: loading and caching the source images, aligned crops, augmentation, determinism."""

from __future__ import annotations

import json
import os
import stat

import numpy as np
import pytest
import torch

from repro.data import patches as P
from repro.data import train_set as S
from repro.data.images import write_image
from repro.data.sampler import Planes
from repro.errors import ReproError
from repro.imaging import rgb_to_y, y_unit_float32
from repro.imaging.colour import OFFSET, YCBCR
from repro.imaging.resize import imresize


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """Per-user cache in the test's folder; no images remembered between tests."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.delenv("REPRO_DATA", raising=False)
    S.clear_memory_cache()
    yield
    S.clear_memory_cache()


def _photo(h: int, w: int, seed: int, gray: bool = False) -> np.ndarray:
    """Smooth random image (so bicubic levels are non-trivial) of size h x w."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 8 + 2, w // 8 + 2, 1 if gray else 3), dtype=np.uint8)
    img = imresize(small, 8.0)[:h, :w]
    return img[:, :, 0] if gray else img


@pytest.fixture
def t91_root(tmp_path):
    root = tmp_path / "data"
    sizes = [(100, 130), (98, 77), (61, 90)]
    for k, (h, w) in enumerate(sizes):
        write_image(root / "T91" / f"t{k + 1}.bmp", _photo(h, w, k, gray=(k == 2)))
    return root


def _tree_files(path):
    return sorted(p for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------- loading
def test_t91_levels_are_imresize_of_mod_cropped_hr(t91_root):
    images = S.load_train_images("t91", 4, root=t91_root, progress=False)
    assert [im.name for im in images] == ["t1", "t2", "t3"]
    for im in images:
        assert im.hr.dtype == np.uint8 and (im.hr.ndim == 3 and im.hr.shape[2] == 3 or im.name == "t3")
        assert im.hr.shape[0] % 4 == 0 and im.hr.shape[1] % 4 == 0
        assert sorted(im.levels) == [2, 4]
        np.testing.assert_array_equal(im.levels[4], imresize(np.asarray(im.hr), 0.25))
        np.testing.assert_array_equal(im.levels[2], imresize(np.asarray(im.hr), 0.5))
    assert images[0].hr.shape == (100, 128, 3)
    assert images[2].hr.ndim == 2 and images[2].levels[4].ndim == 2  # grayscale stays one plane
    x3 = S.load_train_images("t91", 3, root=t91_root, progress=False)
    assert sorted(x3[0].levels) == [3] and x3[0].hr.shape == (99, 129, 3)


def _sample(sampler: P.PatchSampler, iteration: int, sample: int) -> dict:
    """Sample `sample` of iteration `iteration` alone, as a batch of one."""
    params = sampler.params([iteration], sample + 1)[sample:]
    return sampler.batch(params)


def test_grayscale_training_image_is_taken_as_gray(t91_root):
    """A gray image's Y is its own value (as evaluation measures it), not BT.601 of R=G=B, which
    would squeeze it into 16..235; an RGB network sees it as R=G=B."""
    images = [im for im in S.load_train_images("t91", 4, root=t91_root, progress=False) if im.name == "t3"]
    gray = np.asarray(images[0].hr)
    for channels in (1, 3):
        sampler = P.PatchSampler(images, 4, hr_patch=48, in_channels=channels, augment=False, seed=0)
        item = _sample(sampler, 0, 0)
        _, (top, left), _, _ = sampler.crop(0, 0)
        crop = gray[top:top + 48, left:left + 48].astype(np.float32) / 255
        expected = crop[None] if channels == 1 else np.repeat(crop[None], 3, axis=0)
        np.testing.assert_array_equal(item["hr"][0].numpy(), expected)
        lr = np.asarray(images[0].levels[4])[top // 4:(top + 48) // 4, left // 4:(left + 48) // 4]
        assert item["lr"].shape[1] == channels
        np.testing.assert_array_equal(item["lr"][0, 0].numpy(), lr.astype(np.float32) / 255)
    assert item["hr"].min() < 16 / 255 or item["hr"].max() > 235 / 255  # the full range survives


def test_missing_and_unknown_sources(tmp_path):
    with pytest.raises(ReproError, match=r"repro data fetch t91"):
        S.load_train_images("t91", 4, root=tmp_path)
    with pytest.raises(ReproError, match=r"repro data fetch div2k"):
        S.load_train_images("div2k", 4, root=tmp_path)
    with pytest.raises(ReproError, match=r"valid choices: div2k, t91, sample"):
        S.load_train_images("div2k_valid", 4, root=tmp_path)
    with pytest.raises(ReproError, match=r"valid choices: 2, 3, 4"):
        S.load_train_images("t91", 5, root=tmp_path)


@pytest.fixture
def div2k_root(tmp_path, monkeypatch):
    """A DIV2K tree of three images (the real one has 800): official X4 LR for two, a wrong-size one."""
    monkeypatch.setattr(S, "DIV2K_TRAIN_IDS", ("0001", "0002", "0003"))
    root = tmp_path / "data"
    for k, name in enumerate(S.DIV2K_TRAIN_IDS):
        hr = _photo(96, 120, 10 + k)
        write_image(root / "DIV2K" / "DIV2K_train_HR" / f"{name}.png", hr)
        lr = 255 - imresize(hr, 0.25)  # not what imresize gives: proves the file is what got used
        if name == "0003":
            lr = lr[:-1]
        write_image(root / "DIV2K" / "DIV2K_train_LR_bicubic" / "X4" / f"{name}x4.png", lr)
    return root


def test_div2k_uses_official_lr_and_checks_its_size(div2k_root):
    with pytest.warns(UserWarning, match=r"0003x4.png.*recomputed with imresize"):
        images = S.load_train_images("div2k", 4, root=div2k_root, progress=False)
    by = {im.name: im for im in images}
    np.testing.assert_array_equal(by["0001"].levels[4], 255 - imresize(np.asarray(by["0001"].hr), 0.25))
    np.testing.assert_array_equal(by["0003"].levels[4], imresize(np.asarray(by["0003"].hr), 0.25))
    np.testing.assert_array_equal(by["0002"].levels[2], imresize(np.asarray(by["0002"].hr), 0.5))


def test_div2k_incomplete_or_without_lr(div2k_root):
    with pytest.warns(UserWarning, match=r"official DIV2K LR not found"):
        images = S.load_train_images("div2k", 3, root=div2k_root, progress=False)
    np.testing.assert_array_equal(images[0].levels[3], imresize(np.asarray(images[0].hr), 1 / 3))
    (div2k_root / "DIV2K" / "DIV2K_train_HR" / "0002.png").unlink()
    S.clear_memory_cache()
    with pytest.raises(ReproError, match=r"lacks 1 of 3 images.*repro data fetch div2k"):
        S.load_train_images("div2k", 4, root=div2k_root)


def test_disk_cache_is_reused_without_decoding(t91_root, monkeypatch):
    first = S.load_train_images("t91", 4, root=t91_root, progress=False)
    cache = t91_root / ".cache"
    assert (files := _tree_files(cache)) and not [p for p in files if p.suffix == ".tmp"]
    assert len([p for p in files if p.name == "manifest.json"]) == 1
    S.clear_memory_cache()

    def no_decoding(path):
        raise AssertionError(f"decoded {path} although it is cached")

    monkeypatch.setattr(S, "read_image", no_decoding)
    second = S.load_train_images("t91", 4, root=t91_root, progress=False)
    for a, b in zip(first, second, strict=True):
        assert isinstance(b.hr, np.memmap) and not b.hr.flags.writeable
        np.testing.assert_array_equal(a.hr, b.hr)
        for f in (2, 4):
            np.testing.assert_array_equal(a.levels[f], b.levels[f])
    assert S.load_train_images("t91", 4, root=t91_root) is second  # in-memory cache of the process
    x2 = S.load_train_images("t91", 2, root=t91_root, progress=False)  # new scale, HR already decoded
    np.testing.assert_array_equal(x2[0].levels[2], imresize(np.asarray(x2[0].hr), 0.5))


def test_interrupted_cache_build_leaves_only_whole_files(t91_root, monkeypatch):
    real, calls = S.read_image, []

    def flaky(path):
        calls.append(path)
        if len(calls) == 3:
            raise ReproError(f"cannot read image {path}")
        return real(path)

    monkeypatch.setattr(S, "ThreadPoolExecutor", _SerialPool)
    monkeypatch.setattr(S, "read_image", flaky)
    with pytest.raises(ReproError):
        S.load_train_images("t91", 4, root=t91_root, progress=False)
    files = _tree_files(t91_root / ".cache")
    assert files and not [p for p in files if p.name == "manifest.json" or p.suffix == ".tmp"]
    for p in files:
        np.load(p)  # every file that exists is complete
    monkeypatch.setattr(S, "read_image", real)
    images = S.load_train_images("t91", 4, root=t91_root, progress=False)
    assert len(images) == 3 and len(_tree_files(t91_root / ".cache")) == 3 * 3 + 1


class _SerialPool:
    """ThreadPoolExecutor stand-in that runs in order (so 'the third decode fails' is well defined)."""

    def __init__(self, max_workers=None):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def map(self, fn, items):
        return map(fn, items)


def test_read_only_root_caches_in_user_folder(t91_root, tmp_path):
    mode = t91_root.stat().st_mode
    os.chmod(t91_root, stat.S_IRUSR | stat.S_IXUSR | stat.S_IRGRP | stat.S_IXGRP)
    try:
        images = S.load_train_images("t91", 2, root=t91_root, progress=False)
    finally:
        os.chmod(t91_root, mode)
    assert len(images) == 3 and not (t91_root / ".cache").exists()
    assert [p for p in _tree_files(tmp_path / "xdg") if p.name == "manifest.json"]


def test_sample_source(tmp_path):
    images = S.load_train_images("sample", 4, root=tmp_path, progress=False)
    assert len(images) >= 5
    assert {im.hr.ndim for im in images} == {2, 3}  # the gray photos (moon, coins, ...) stay gray
    assert (tmp_path / ".cache").is_dir()


# ---------------------------------------------------------------- patches
@pytest.fixture
def images(t91_root):
    return S.load_train_images("t91", 4, root=t91_root, progress=False)


def _y(arr: np.ndarray) -> np.ndarray:
    """Y / 255 as training computes it: the float32 weights' exact sum, rounded once to float32 (a gray
    image: its own value / 255)."""
    if arr.ndim == 2:
        return arr.astype(np.float32) / np.float32(255)
    exact = arr.astype(np.float64) @ (YCBCR[0] / 255.0).astype(np.float32).astype(np.float64)
    return (exact + np.float64(np.float32(OFFSET[0] / 255.0))).astype(np.float32)


def test_training_y_is_the_bt601_y_in_float32():
    rng = np.random.default_rng(3)
    arr = rng.integers(0, 256, (37, 41, 3), dtype=np.uint8)
    arr[0, 0], arr[0, 1] = 0, 255  # the extremes: Y 16 and 235
    y = _y(arr)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, rgb_to_y(arr) / 255.0, rtol=0, atol=2e-7)
    np.testing.assert_allclose(y, y_unit_float32(arr), rtol=0, atol=2.5e-7)  # numpy's BLAS: an ulp or two
    assert abs(y[0, 0] * 255 - 16) < 1e-4 and abs(y[0, 1] * 255 - 235) < 1e-4
    sampler = P.PatchSampler([S.TrainImage("flat", arr[:36, :36], {4: arr[:9, :9], 2: arr[:18, :18]})],
                             4, 36, augment=False)
    np.testing.assert_array_equal(_sample(sampler, 0, 0)["hr"][0, 0].numpy(), y[:36, :36])


def test_patch_crops_align_with_levels(images):
    sampler = P.PatchSampler(images, 4, 48, augment=False, seed=3)
    by = {im.name: im for im in images}
    for i in range(30):
        item = _sample(sampler, i, i % 5)
        name, (top, left), flip, rot = sampler.crop(i, i % 5)
        assert (flip, rot) == (False, 0) and top % 4 == 0 and left % 4 == 0
        im = by[name]
        assert item["hr"].shape == (1, 1, 48, 48) and item["hr"].dtype == torch.float32
        np.testing.assert_array_equal(item["hr"][0, 0].numpy(), _y(im.hr[top:top + 48, left:left + 48]))
        lr = im.levels[4][top // 4:top // 4 + 12, left // 4:left // 4 + 12]
        half = im.levels[2][top // 2:top // 2 + 24, left // 2:left // 2 + 24]
        np.testing.assert_array_equal(item["lr"][0, 0].numpy(), _y(lr))
        assert [tuple(t.shape) for t in item["targets"]] == [(1, 1, 24, 24), (1, 1, 12, 12)]
        np.testing.assert_array_equal(item["targets"][0][0, 0].numpy(), _y(half))
        assert torch.equal(item["targets"][1], item["lr"]) and item["targets"][1] is not item["lr"]


def test_rgb_patches_and_x3_targets(t91_root):
    images = S.load_train_images("t91", 3, root=t91_root, progress=False)
    item = _sample(P.PatchSampler(images, 3, 48, in_channels=3, seed=1), 5, 2)
    assert item["hr"].shape == (1, 3, 48, 48) and item["lr"].shape == (1, 3, 16, 16)
    assert len(item["targets"]) == 1
    assert float(item["hr"].min()) >= 0.0 and float(item["hr"].max()) <= 1.0


def _undo(t: torch.Tensor, flip: bool, rot: int) -> torch.Tensor:
    t = torch.rot90(t, -rot, dims=(-2, -1))
    return torch.flip(t, dims=(-1,)) if flip else t


def test_flips_and_rotations_are_the_same_for_every_level(images):
    aug = P.PatchSampler(images, 4, 48, augment=True, seed=7)
    plain = P.PatchSampler(images, 4, 48, augment=False, seed=7)
    seen = set()
    for i in range(40):
        _, pos, flip, rot = aug.crop(i, 1)
        assert plain.crop(i, 1)[1] == pos  # augmentation does not move the crop
        seen.add((flip, rot))
        a, p = _sample(aug, i, 1), _sample(plain, i, 1)
        for key in ("hr", "lr"):
            torch.testing.assert_close(_undo(a[key], flip, rot), p[key], rtol=0, atol=0)
        for ta, tp in zip(a["targets"], p["targets"], strict=True):
            torch.testing.assert_close(_undo(ta, flip, rot), tp, rtol=0, atol=0)
    assert len(seen) >= 6  # most of the 8 flip/rotation combinations occur


def test_samples_depend_only_on_seed_iteration_and_position(images):
    sampler = P.PatchSampler(images, 4, 48, seed=0)
    again = P.PatchSampler(images, 4, 48, seed=0)
    other = P.PatchSampler(images, 4, 48, seed=1)
    for it in (0, 5, 10**9):
        torch.testing.assert_close(_sample(sampler, it, 3)["hr"], _sample(again, it, 3)["hr"], rtol=0, atol=0)
    _ = _sample(sampler, 3, 0)  # order of access does not matter
    torch.testing.assert_close(_sample(sampler, 4, 2)["lr"], _sample(again, 4, 2)["lr"], rtol=0, atol=0)
    # a batch is its samples: the same whether drawn alone, in a batch or with other iterations
    batch = sampler.batch(sampler.params([7], 6))
    many = sampler.batch(sampler.params([6, 7, 8], 6))
    assert torch.equal(batch["hr"], many["hr"][6:12])
    assert torch.equal(batch["hr"][4:5], _sample(sampler, 7, 4)["hr"])
    assert any(not torch.equal(_sample(sampler, i, 0)["hr"], _sample(other, i, 0)["hr"]) for i in range(5))
    with pytest.raises(IndexError):
        sampler.crop(-1, 0)


def test_draws_cover_images_corners_and_augmentations_evenly(images):
    """Over 16,000 samples each image, flip and turn is drawn about equally often, corners span the
    whole image, and consecutive iterations or seeds are not correlated (the counter-based draw)."""
    sampler = P.PatchSampler(images, 4, 48, seed=0)
    params = sampler.params(np.arange(1000), 16)
    n = len(params)
    counts = np.bincount(params[:, 0], minlength=len(sampler.images))
    assert np.all(np.abs(counts - n / len(counts)) < 5 * np.sqrt(n / len(counts)))
    combos = np.bincount(params[:, 3], minlength=8)
    assert np.all(np.abs(combos - n / 8) < 5 * np.sqrt(n / 8))
    for k, im in enumerate(sampler.images):
        tops = params[params[:, 0] == k, 1]
        assert tops.min() == 0 and tops.max() == (im.hr.shape[0] - 48) // 4 * 4
    other = P.PatchSampler(images, 4, 48, seed=1).params(np.arange(1000), 16)
    assert np.mean(params[:, 1] == other[:, 1]) < 0.2  # seeds give other streams
    assert abs(np.corrcoef(params[:-16, 2], params[16:, 2])[0, 1]) < 0.05  # iteration to iteration


def test_patch_size_checks(images):
    with pytest.raises(ReproError, match="multiple of 4"):
        P.PatchSampler(images, 4, 50)
    with pytest.warns(UserWarning, match="1 of 3 training images are smaller"):
        sampler = P.PatchSampler(images, 4, 64)
    assert len(sampler.images) == 2
    with pytest.raises(ReproError, match="use a smaller patch"), pytest.warns(UserWarning):
        P.PatchSampler(images, 4, 192)


def test_the_global_batch_splits_over_ranks(images):
    sampler = P.PatchSampler(images, 4, 48, seed=2)
    whole = sampler.params([3], 16)
    parts = [sampler.params([3], 16, rank, 4) for rank in range(4)]
    assert np.array_equal(np.concatenate(parts), whole) and all(len(p) == 4 for p in parts)
    with pytest.raises(ReproError, match="multiple of the world size"):
        sampler.params([0], 10, 0, 4)
    with pytest.raises(ValueError):
        sampler.params([0], 16, 4, 4)


def _batches(loader):
    """The loader's cuts as batches (converted here, as the engine converts them on its device)."""
    batches = []
    for cut in loader:
        b = P.batch_of(cut, Planes([48, 24, 12], 1, "cpu"))
        batches.append((b["hr"].clone(), b["lr"].clone(), [t.clone() for t in b["targets"]]))
    return batches


def test_loader_resumes_and_matches_with_workers(images):
    sampler = P.PatchSampler(images, 4, 48, seed=5)
    full = _batches(P.make_loader(sampler, 4, 0, 6, num_workers=0))
    assert len(full) == 6 and full[0][0].shape == (4, 1, 48, 48)
    assert [t.shape for t in full[0][2]] == [(4, 1, 24, 24), (4, 1, 12, 12)]
    resumed = _batches(P.make_loader(sampler, 4, 2, 4, num_workers=0))
    workers = _batches(P.make_loader(sampler, 4, 0, 6, num_workers=2))
    rank1 = _batches(P.make_loader(sampler, 4, 0, 6, num_workers=0, rank=1, world_size=2))
    for k in range(6):
        torch.testing.assert_close(workers[k][0], full[k][0], rtol=0, atol=0)
        torch.testing.assert_close(workers[k][2][0], full[k][2][0], rtol=0, atol=0)
        torch.testing.assert_close(rank1[k][1], full[k][1][2:], rtol=0, atol=0)
        if k >= 2:
            torch.testing.assert_close(resumed[k - 2][0], full[k][0], rtol=0, atol=0)


def test_manifest_lists_every_image(t91_root):
    S.load_train_images("t91", 4, root=t91_root, progress=False)
    (manifest,) = [p for p in _tree_files(t91_root / ".cache") if p.name == "manifest.json"]
    assert json.loads(manifest.read_text())["names"] == ["t1", "t2", "t3"]
