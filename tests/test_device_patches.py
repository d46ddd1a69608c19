"""On-device patches: the very batches of the host path (PatchSampler + make_loader + the engine's move),
for every flip, turn, scale, gray and RGB image, resume point and DDP rank; memory checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from repro.data import device_patches as D
from repro.data import patches as P
from repro.data import train_set as S
from repro.data.sampler import Planes
from repro.errors import ReproError
from repro.imaging import colour

CPU = torch.device("cpu")
PATCH = {2: 48, 3: 36, 4: 48}  # small patches; x3's 36 and 12 and x4's 12 are no multiple of 8


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """The embedded `sample` training images (gray and RGB) at every scale, decoded once."""
    root = tmp_path_factory.mktemp("data")
    S.clear_memory_cache()
    images = {s: S.load_train_images("sample", s, root=root, progress=False, cache_root=root / "cache")
              for s in (2, 3, 4)}
    S.clear_memory_cache()
    return images


def _host(sampler, batch, start, num, rank=0, world=1, channels_last=False):
    """The host path's batches as the engine makes them: the loader's cuts, converted on the device."""
    planes = Planes(sampler.sides, sampler.in_channels, CPU)
    batches = [P.batch_of(cut, planes) for cut in P.make_loader(sampler, batch, start, num, 0, rank, world)]
    return [D.channels_last_batch(b) for b in batches] if channels_last else batches


def _device(sampler, batch, start, num, rank=0, world=1, channels_last=False, chunk=D.CHUNK_ITERATIONS):
    source = D.DevicePatchSource(sampler, CPU)
    return list(source.batches(batch, start, num, rank, world, channels_last, chunk))


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
        assert b["lr"] is not b["targets"][-1]  # separate tensors, as the host path makes them


def _cases(sampler, batch, num):
    """(flip, turns, gray image) of every sample of iterations 0 .. num-1."""
    params = sampler.params(range(num), batch)
    return {(int(c) // 4, int(c) % 4, bool(sampler.gray[k])) for k, _, _, c in params}


# ---------------------------------------------------------------- same batches
@pytest.mark.parametrize("scale", [2, 3, 4])
@pytest.mark.parametrize("channels", [1, 3])
def test_same_batches_as_host_path_every_augmentation(sample, scale, channels):
    sampler = P.PatchSampler(sample[scale], scale, PATCH[scale], channels, True, seed=11)
    batch, num = 8, 9
    # every flip x turn appears, on gray and on RGB images alike
    assert _cases(sampler, batch, num) == {(f, r, g) for f in (0, 1) for r in range(4) for g in (False, True)}
    _assert_same(_host(sampler, batch, 0, num), _device(sampler, batch, 0, num))


@pytest.mark.parametrize("scale", [2, 4])
def test_same_batches_without_augmentation(sample, scale):
    sampler = P.PatchSampler(sample[scale], scale, PATCH[scale], 1, False, seed=3)
    assert {(f, r) for f, r, _ in _cases(sampler, 4, 5)} == {(0, 0)}
    _assert_same(_host(sampler, 4, 0, 5), _device(sampler, 4, 0, 5))


def test_grayscale_only_and_rgb_only_sets(sample):
    gray = [im for im in sample[4] if im.hr.ndim == 2]
    rgb = [im for im in sample[4] if im.hr.ndim == 3]
    assert gray and rgb
    for subset in (gray, rgb):
        for channels in (1, 3):
            sampler = P.PatchSampler(subset, 4, 48, channels, True, seed=0)
            _assert_same(_host(sampler, 4, 0, 3), _device(sampler, 4, 0, 3))


def test_resume_at_a_later_iteration_and_chunk_boundaries(sample):
    sampler = P.PatchSampler(sample[4], 4, 48, 1, True, seed=2)
    full = _device(sampler, 4, 0, 10, chunk=3)
    later = _device(sampler, 4, 6, 4)
    _assert_same(full[6:], later)
    _assert_same(_host(sampler, 4, 6, 4), later)
    assert _device(sampler, 4, 6, 0) == []


@pytest.mark.parametrize("world", [2, 4])
def test_ddp_ranks_split_the_global_batch(sample, world):
    sampler, batch = P.PatchSampler(sample[3], 3, 36, 1, True, seed=7), 8
    whole = _device(sampler, batch, 2, 3)
    parts = []
    for rank in range(world):
        mine = _device(sampler, batch, 2, 3, rank, world)
        _assert_same(_host(sampler, batch, 2, 3, rank, world), mine)
        assert all(b["hr"].shape[0] == batch // world for b in mine)
        parts.append(mine)
    for it, b in enumerate(whole):
        assert torch.equal(torch.cat([p[it]["hr"] for p in parts]), b["hr"])
        assert torch.equal(torch.cat([p[it]["lr"] for p in parts]), b["lr"])


def test_channels_last_as_the_engine_moves_it(sample):
    sampler = P.PatchSampler(sample[4], 4, 48, 3, True, seed=1)
    device = _device(sampler, 4, 0, 2, channels_last=True)
    _assert_same(_host(sampler, 4, 0, 2, channels_last=True), device)
    assert device[0]["hr"].is_contiguous(memory_format=torch.channels_last)


def test_cut_takes_its_parameters_from_a_tensor(sample):
    """`cut` reads the crop parameters from a device tensor (what a captured step keeps static): the
    parameter chunks are the sampler's own draw, and cutting them gives the host path's batch."""
    sampler = P.PatchSampler(sample[4], 4, 48, 1, True, seed=9)
    source = D.DevicePatchSource(sampler, CPU)
    chunks = list(source.param_chunks(8, 5, 6, chunk=4))
    assert np.array_equal(torch.cat(chunks).numpy(), sampler.params(range(5, 11), 8))
    _assert_same(_host(sampler, 8, 5, 6), [source.cut(c) for c in chunks])


def test_settings_errors_match_the_host_path(sample):
    images = sample[4]
    with pytest.raises(ReproError, match="multiple of 4"):
        P.PatchSampler(images, 4, 50)
    with pytest.raises(ReproError, match="number of input channels"):
        P.PatchSampler(images, 4, 48, 2)
    source = D.DevicePatchSource(P.PatchSampler(images, 4, 48), CPU)
    with pytest.raises(ReproError, match="multiple of the world size"):
        source.param_chunks(6, 0, 1, rank=0, world_size=4)


def test_y_coefficients_are_colours():
    from repro.data import sampler as S

    np.testing.assert_array_equal(S._Y_UNIT, colour.Y_UNIT.astype(np.float64))
    assert float(colour.Y_UNIT_OFFSET) == S._Y_UNIT_OFFSET


# ---------------------------------------------------------------- memory
def test_memory_estimate_counts_the_used_levels(sample):
    images = sample[4]
    pixels = sum(im.hr.nbytes + im.levels[2].nbytes + im.levels[4].nbytes for im in images)
    assert D.stored_bytes(images, 4, 48) == pixels
    src = D.DevicePatchSource(P.PatchSampler(images, 4, 48), CPU)
    assert src.buffer.numel() * src.buffer.element_size() == pixels
    assert D.device_memory_bytes(images, 4, 48, 16) == pixels + D.work_bytes(4, 48, 16)
    assert 0 < D.work_bytes(4, 48, 16) < D.work_bytes(4, 192, 16) < D.work_bytes(4, 192, 32) < 2**30
    # images smaller than the patch are skipped, and not counted
    kept = sum(im.hr.nbytes + im.levels[2].nbytes + im.levels[4].nbytes for im in images
               if min(im.hr.shape[:2]) >= 400)
    assert 0 < kept < pixels and D.stored_bytes(images, 4, 400) == kept


def test_refuses_a_set_that_does_not_fit(sample, monkeypatch):
    sampler = P.PatchSampler(sample[4], 4, 48)
    monkeypatch.setattr(D, "free_memory", lambda device: (100 * 2**20, 8 * 2**30))
    with pytest.raises(ReproError) as err:
        D.DevicePatchSource(sampler, CPU, batch_size=16)  # refused before any upload
    msg = str(err.value)
    need = D.device_memory_bytes(sample[4], 4, 48, 16)
    assert f"{need / 2**30:.2f} GiB" in msg and "0.10 GiB" in msg and "8.00 GiB" in msg
    assert "data.on_device=false" in msg
    # fits once the reserve is given up and the memory is there; unknown free memory is no refusal
    monkeypatch.setattr(D, "free_memory", lambda device: (need + 1, 8 * 2**30))
    source = D.DevicePatchSource(sampler, CPU, reserve=0, batch_size=16)
    assert next(source.batches(16, 0, 1))["hr"].shape[0] == 16
    monkeypatch.setattr(D, "free_memory", lambda device: None)
    D.check_fits(2**60, CPU)


def test_free_memory_of_the_cpu_is_read():
    free, total = D.free_memory(CPU) or (1, 1)
    assert 0 < free <= total


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_batches_equal_the_host_path_without_syncing(sample):
    """On a GPU: every value equal to the host path's (the conversion is exact on any device), and no
    batch after a chunk's first waits for the device (no sync, no pageable copy)."""
    cuda = torch.device("cuda")
    for channels in (1, 3):
        sampler = P.PatchSampler(sample[4], 4, 48, channels, True, seed=4)
        host = _host(sampler, 8, 0, 4)
        it = iter(D.DevicePatchSource(sampler, cuda).batches(8, 0, 4, chunk=4))
        got = [next(it)]
        torch.cuda.set_sync_debug_mode("error")
        try:
            got += [next(it) for _ in range(3)]
        finally:
            torch.cuda.set_sync_debug_mode("default")
        for a, b in zip(host, got, strict=True):
            for x, y in zip(_tensors(a), _tensors(b), strict=True):
                assert y.device.type == "cuda" and y.dtype == x.dtype and y.shape == x.shape
                assert torch.equal(x, y.cpu())


@pytest.mark.slow
def test_training_on_device_gives_the_same_weights(tmp_path):
    """`data.on_device=true` through the engine: a student (whose batches carry the bicubic levels its
    teacher reads) trains to bit-identical weights on the CPU device."""
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
