"""On-device patches: the very batches of the host path (PatchDataset + make_loader + the engine's move)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.data import device_patches as D
from repro.data import patches as P
from repro.errors import ReproError
from repro.imaging import colour
from repro.train.engine import _to_device

CPU = torch.device("cpu")
PATCH = {2: 48, 3: 36, 4: 48}  # small patches; x3's 36 and 12 and x4's 12 are no multiple of 8 (see Y)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The embedded `sample` training images (gray and RGB) at every scale, decoded once."""
    root = tmp_path_factory.mktemp("data")
    P.clear_memory_cache()
    images = {s: P.load_train_images("sample", s, root=root, progress=False, cache_root=root / "cache")
              for s in (2, 3, 4)}
    P.clear_memory_cache()
    return images


def _host(images, scale, patch, channels, augment, seed, batch, start, num, rank=0, world=1,
          channels_last=False):
    ds = P.PatchDataset(images, scale, patch, channels, augment, seed)
    loader = P.make_loader(ds, batch, start, num, 0, rank, world)
    return [_to_device(b, CPU, channels_last) for b in loader]


def _tensors(batch):
    return [batch["hr"], batch["lr"], *batch["targets"]]


def _assert_same(host, device):
    assert len(host) == len(device)
    for a, b in zip(host, device, strict=True):
        assert sorted(a) == sorted(b) == ["hr", "lr", "targets"]
        assert len(a["targets"]) == len(b["targets"])
        for x, y in zip(_tensors(a), _tensors(b), strict=True):
            assert x.dtype == y.dtype == torch.float32 and x.shape == y.shape and x.device == y.device
            assert x.stride() == y.stride()
            assert torch.equal(x, y)
        assert b["lr"] is not b["targets"][-1]  # separate tensors, as collate_patches makes them


def _combos(images, scale, patch, augment, seed, indices):
    ds = P.PatchDataset(images, scale, patch, 1, augment, seed)
    by_name = {im.name: im for im in ds.images}
    seen = set()
    for i in indices:
        name, _, flip, rot = ds.crop(i)
        seen.add((flip, rot, by_name[name].hr.ndim == 2))
    return seen


# ---------------------------------------------------------------- same batches
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_same_batches_as_host_path_every_augmentation(sample, scale, channels):
    images, patch, seed, batch, num = sample[scale], PATCH[scale], 11, 8, 9
    seen = _combos(images, scale, patch, True, seed, range(batch * num))
    # every flip x rotation appears, on gray and on RGB images alike
    assert {(f, r) for f, r, _ in seen} == {(f, r) for f in (False, True) for r in range(4)}
    assert {g for _, _, g in seen} == {False, True}
    device = D.device_batches(images, scale, patch, channels, True, seed, batch, 0, num, CPU)
    _assert_same(_host(images, scale, patch, channels, True, seed, batch, 0, num), list(device))


@pytest.mark.parametrize("scale", [2, 4])
def test_same_batches_without_augmentation(sample, scale):
    images, patch = sample[scale], PATCH[scale]
    device = D.device_batches(images, scale, patch, 1, False, 3, 4, 0, 5, CPU)
    _assert_same(_host(images, scale, patch, 1, False, 3, 4, 0, 5), list(device))


def test_grayscale_only_and_rgb_only_sets(sample):
    gray = [im for im in sample[4] if im.hr.ndim == 2]
    rgb = [im for im in sample[4] if im.hr.ndim == 3]
    assert gray and rgb
    for subset in (gray, rgb):
        for channels in (1, 3):
            device = D.device_batches(subset, 4, 48, channels, True, 0, 4, 0, 3, CPU)
            _assert_same(_host(subset, 4, 48, channels, True, 0, 4, 0, 3), list(device))


def test_resume_at_a_later_iteration_and_chunk_boundaries(sample):
    images = sample[4]
    full = list(D.DevicePatchSource(images, 4, 48, 1, True, 2, CPU).batches(4, 0, 10, chunk_iterations=3))
    later = list(D.device_batches(images, 4, 48, 1, True, 2, 4, 6, 4, CPU))
    _assert_same(full[6:], later)
    _assert_same(_host(images, 4, 48, 1, True, 2, 4, 6, 4), later)
    assert list(D.device_batches(images, 4, 48, 1, True, 2, 4, 6, 0, CPU)) == []


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_ranks_split_the_global_batch(sample, world):
    images, batch = sample[3], 8
    whole = list(D.device_batches(images, 3, 36, 1, True, 7, batch, 2, 3, CPU))
    parts = []
    for rank in range(world):
        mine = list(D.device_batches(images, 3, 36, 1, True, 7, batch, 2, 3, CPU, rank=rank,
                                     world_size=world))
        _assert_same(_host(images, 3, 36, 1, True, 7, batch, 2, 3, rank, world), mine)
        assert all(b["hr"].shape[0] == batch // world for b in mine)
        parts.append(mine)
    for it, b in enumerate(whole):
        assert torch.equal(torch.cat([p[it]["hr"] for p in parts]), b["hr"])
        assert torch.equal(torch.cat([p[it]["lr"] for p in parts]), b["lr"])


def test_channels_last_as_the_engine_moves_it(sample):
    images = sample[4]
    device = list(D.device_batches(images, 4, 48, 3, True, 1, 4, 0, 2, CPU, channels_last=True))
    _assert_same(_host(images, 4, 48, 3, True, 1, 4, 0, 2, channels_last=True), device)
    assert device[0]["hr"].is_contiguous(memory_format=torch.channels_last)


def test_crop_parameters_are_patch_datasets(sample):
    """The draw is PatchDataset.crop's own: image, corner, flip and rotation of many indices."""
    images = sample[4]
    src = D.DevicePatchSource(images, 4, 48, 1, True, 9, CPU)
    ds = P.PatchDataset(images, 4, 48, 1, True, 9)
    indices = list(range(0, 3000, 7))
    params = src.params(indices)
    for row, i in zip(params, indices, strict=True):
        name, (top, left), flip, rot = ds.crop(i)
        assert (ds.images[row[0]].name, row[1], row[2], row[3]) == (name, top, left, int(flip) * 4 + rot)


def test_settings_errors_match_the_host_path(sample):
    images = sample[4]
    with pytest.raises(ReproError, match="multiple of 4"):
        D.device_batches(images, 4, 50, 1, True, 0, 4, 0, 1, CPU)
    with pytest.raises(ReproError, match="multiple of the world size"):
        D.device_batches(images, 4, 48, 1, True, 0, 6, 0, 1, CPU, rank=0, world_size=4)
    with pytest.raises(ReproError, match="number of input channels"):
        D.device_batches(images, 4, 48, 2, True, 0, 4, 0, 1, CPU)


# ---------------------------------------------------------------- the Y conversion off the CPU
def test_y_coefficients_are_colours():
    np.testing.assert_array_equal(D._Y_UNIT, colour._Y_UNIT)
    assert D._Y_UNIT_OFFSET == colour._Y_UNIT_OFFSET


def _fused_reference(rgb: np.ndarray) -> np.ndarray:
    """fma(b, wb, fma(g, wg, r * wr)) + offset in float32, each fma exact via float64 (numpy only)."""
    w, x = D._Y_UNIT.astype(np.float64), rgb.astype(np.float64)
    acc = (x[..., 0] * w[0]).astype(np.float32).astype(np.float64)
    acc = (x[..., 1] * w[1] + acc).astype(np.float32).astype(np.float64)
    return (x[..., 2] * w[2] + acc).astype(np.float32) + D._Y_UNIT_OFFSET


def _ulps(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.view(np.int32).astype(np.int64) - b.view(np.int32).astype(np.int64))


def test_device_y_is_the_fused_kernel_and_within_two_ulp_of_numpy():
    rgb = np.random.default_rng(0).integers(0, 256, (64, 24, 3), dtype=np.uint8)
    got = D.y_unit_torch(torch.from_numpy(rgb)).numpy()
    np.testing.assert_array_equal(got, _fused_reference(rgb))
    # numpy's BLAS rounds by kernel and column: equal where it fuses as above, never more than 2 ulp off
    assert _ulps(got, colour.y_unit_float32(rgb)).max() <= 2


def test_device_y_path_on_cpu_matches_up_to_y_rounding(sample):
    """The path a GPU takes (host_y=False): exact for gray images and RGB input, Y within 2 float32 ulp."""
    images = sample[4]
    for channels in (1, 3):
        src = D.DevicePatchSource(images, 4, 48, channels, True, 4, CPU, host_y=False)
        host = _host(images, 4, 48, channels, True, 4, 8, 0, 4)
        gray = src.gray_host[src.params(range(32))[:, 0]].reshape(4, 8)
        assert gray.any() and not gray.all()
        for it, (a, b) in enumerate(zip(host, src.batches(8, 0, 4), strict=True)):
            for x, y in zip(_tensors(a), _tensors(b), strict=True):
                assert torch.equal(x[gray[it]], y[gray[it]])
                if channels == 3:
                    assert torch.equal(x, y)
                assert _ulps(x.numpy(), y.numpy()).max() <= 2


# ---------------------------------------------------------------- memory
def test_memory_estimate_counts_the_used_levels(sample):
    images = sample[4]
    pixels = sum(im.hr.nbytes + im.levels[2].nbytes + im.levels[4].nbytes for im in images)
    assert D.stored_bytes(images, 4, 48) == pixels
    src = D.DevicePatchSource(images, 4, 48, 1, True, 0, CPU)
    assert src.buffer.numel() * src.buffer.element_size() == pixels
    assert D.device_memory_bytes(images, 4, 48, 16) == pixels + D.work_bytes(4, 48, 16)
    assert 0 < D.work_bytes(4, 48, 16) < D.work_bytes(4, 192, 16) < D.work_bytes(4, 192, 32) < 2**30
    # images smaller than the patch are skipped, and not counted
    kept = sum(im.hr.nbytes + im.levels[2].nbytes + im.levels[4].nbytes for im in images
               if min(im.hr.shape[:2]) >= 400)
    assert 0 < kept < pixels and D.stored_bytes(images, 4, 400) == kept


def test_refuses_a_set_that_does_not_fit(sample, monkeypatch):
    monkeypatch.setattr(D, "free_memory", lambda device: (100 * 2**20, 8 * 2**30))
    with pytest.raises(ReproError) as err:
        D.device_batches(sample[4], 4, 48, 1, True, 0, 16, 0, 10, CPU)  # raised now, not at the first batch
    msg = str(err.value)
    need = D.device_memory_bytes(sample[4], 4, 48, 16)
    assert f"{need / 2**30:.2f} GiB" in msg and "0.10 GiB" in msg and "8.00 GiB" in msg
    assert "data.on_device=false" in msg
    # fits once the reserve is given up and the memory is there; unknown free memory is no refusal
    monkeypatch.setattr(D, "free_memory", lambda device: (need + 1, 8 * 2**30))
    assert next(D.device_batches(sample[4], 4, 48, 1, True, 0, 16, 0, 1, CPU, reserve=0))["hr"].shape[0] == 16
    monkeypatch.setattr(D, "free_memory", lambda device: None)
    D.check_fits(2**60, CPU)


def test_free_memory_of_the_cpu_is_read():
    free, total = D.free_memory(CPU) or (1, 1)
    assert 0 < free <= total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_match_the_host_path_without_syncing(sample):
    """On a GPU: RGB input, gray images, crops and augmentation exact; Y within 2 float32 ulp of the host
    BLAS; and no batch after a chunk's first waits for the device (no sync, no pageable copy)."""
    images, cuda = sample[4], torch.device("cuda")
    for channels in (1, 3):
        host = _host(images, 4, 48, channels, True, 4, 8, 0, 4)
        it = iter(D.DevicePatchSource(images, 4, 48, channels, True, 4, cuda).batches(8, 0, 4,
                                                                                    chunk_iterations=4))
        got = [next(it)]
        torch.cuda.set_sync_debug_mode("error")
        try:
            got += [next(it) for _ in range(3)]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        for a, b in zip(host, got, strict=True):
            for x, y in zip(_tensors(a), _tensors(b), strict=True):
                assert y.device.type == "cuda" and y.dtype == x.dtype and y.shape == x.shape
                y = y.cpu()
                if channels == 3:
                    assert torch.equal(x, y)
                assert _ulps(x.numpy(), y.numpy()).max() <= 2


@pytest.mark.slow
def test_training_on_device_gives_the_same_weights(tmp_path):
    """`data.on_device=true` through the engine: a student (whose batches carry the bicubic levels its
    teacher reads) trains to bit-identical weights on the CPU device. Resuming is covered batch by batch
    above (`start_iteration`)."""
    from repro.cli import main

    fast = ["--profile", "smoke", "--no-progress", "--set", "optim.iters_per_epoch=10"]
    teacher = tmp_path / "teacher"
    assert main(["train", "teacher", "--model", "dssd_teacher", "--out", str(teacher), *fast]) == 0
    weights = {}
    for on in ("false", "true"):
        out = tmp_path / f"student-{on}"
        args = ["train", "student", "--teacher", str(teacher), "--out", str(out), *fast,
                "--set", f"data.on_device={on}"]
        assert main(args) == 0
        weights[on] = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    assert weights["true"].keys() == weights["false"].keys()
    assert all(torch.equal(weights["true"][k], weights["false"][k]) for k in weights["true"])
