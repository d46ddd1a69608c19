"""The embedded `sample` dataset: photos bundled with scikit-image, no network, no disk writes."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from repro.cli import main
from repro.data import sample
from repro.data.manifests import get_manifest
from repro.data.sample import SAMPLE_FILES, sample_images
from repro.errors import ReproError


def test_splits_match_the_manifest():
    listed = {(i.split, i.name): (i.file, i.shape) for i in get_manifest("sample").images}
    built = {}
    for split in ("train", "test"):
        for name, img in sample_images(split).items():
            built[(split, name)] = (SAMPLE_FILES[split][name], img.shape)
            assert img.dtype == np.uint8 and img.ndim in (2, 3) and (img.ndim == 2 or img.shape[2] == 3)
    assert built == listed


def test_splits_are_disjoint_and_sized():
    train, test = sample_images("train"), sample_images("test")
    assert not set(train) & set(test)
    assert list(test) == ["astronaut", "camera", "chelsea", "coffee"]
    assert len(train) == 9 and list(train) == sorted(train)
    assert test["camera"].ndim == 2  # one grayscale test image, like Set14 bridge
    assert min(min(img.shape[:2]) for img in train.values()) >= 300  # room for 192x192 HR patches


def test_deterministic_and_callers_get_private_copies():
    a = sample_images("test")
    a["astronaut"][0, 0, 0] ^= 0xFF  # changing a returned image must not leak into the cache
    b = sample_images("test")
    assert a["astronaut"][0, 0, 0] != b["astronaut"][0, 0, 0]
    for name, img in sample_images("test").items():
        assert np.array_equal(img, b[name]) and img.flags.writeable
    # content pinned: astronaut is the NASA portrait, camera the cameraman
    assert b["astronaut"].shape == (512, 512, 3) and b["camera"].shape == (512, 512)
    assert int(b["camera"].sum()) == int(sample_images("test")["camera"].sum())


def test_unknown_split():
    with pytest.raises(ReproError, match="unknown sample split 'val'; valid choices: train, test"):
        sample_images("val")


def test_no_network_and_clear_error_when_photos_are_missing(monkeypatch, tmp_path):
    def no_socket(*args, **kwargs):
        raise AssertionError("the sample dataset must not open network connections")

    sample._load.cache_clear()
    try:
        with monkeypatch.context() as mp:
            mp.setattr(socket, "socket", no_socket)
            assert len(sample_images("train")) == 9
        sample._load.cache_clear()
        with monkeypatch.context() as mp:
            mp.setattr(sample, "data_dir", lambda: tmp_path)
            with pytest.raises(ReproError, match=r"astronaut\.png not found in .*reinstall"):
                sample_images("test")
    finally:
        sample._load.cache_clear()


def test_cli_verify_sample(capsys):
    assert main(["data", "verify", "sample"]) == 0
    assert "sample: OK (13 images checked, built in memory)" in capsys.readouterr().out
