"""Running a model on test images and measuring it per docs/protocol.md, "Evaluation" (Y channel, uint8 SR,
border crop)."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from repro.data.testsets import ImagePair
from repro.evaluate import sr as E
from repro.evaluate.metrics import psnr_y, ssim_y
from repro.imaging import rgb_to_y
from repro.imaging.resize import imresize, imresize_torch
from repro.models import create


class Bicubic(nn.Module):
    """MATLAB-bicubic upscaling as a "network" (float, no rounding until the evaluation's)."""

    def __init__(self, scale: int) -> None:
        super().__init__()
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(1))  # so device/mode bookkeeping has a parameter to move

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return imresize_torch(x, self.scale) + 0 * self.dummy


class Oracle(nn.Module):
    """Returns a fixed HR plane whatever it is given: the perfect model for one image."""

    def __init__(self, hr: np.ndarray) -> None:
        super().__init__()
        self.hr = torch.from_numpy(np.asarray(hr, dtype=np.float32) / 255.0)[None, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.hr


@pytest.mark.parametrize("downsampler", ["hfrm", "bicubic"])
def test_a_teacher_is_evaluated_on_its_own_input(downsampler, smooth_image):
    """The real path of a teacher run: `load_evaluator`/`as_sr_network` wrap the teacher, which is given
    the HR image (privileged), or the LR image when its downsampler is bicubic (Table 1), exactly what
    its own forward makes of that input."""
    torch.manual_seed(0)
    teacher = create("dssd_teacher", scale=4, downsampler=downsampler, degradation="none").eval()
    net = E.as_sr_network(teacher)
    assert net.input == ("lr" if downsampler == "bicubic" else "hr")
    hr = smooth_image(48, 40, 8)
    lr = imresize(hr, 0.25)
    df = E.evaluate_pairs(net, [ImagePair("t", hr, lr)], "synthetic", 4, progress=False)
    given = hr if downsampler == "hfrm" else lr
    x = torch.from_numpy((rgb_to_y(given) / 255).astype(np.float32))[None, None]
    with torch.no_grad():
        if downsampler == "hfrm":
            sr = teacher(x).sr
        else:  # the teacher's training path with the batch's LR file as its compact image
            hr_y = torch.from_numpy((rgb_to_y(hr) / 255).astype(np.float32))[None, None]
            half = torch.from_numpy((rgb_to_y(imresize(hr, 0.5)) / 255).astype(np.float32))[None, None]
            sr = teacher(hr_y, bicubic=[half, x]).sr
    out = np.clip(np.floor(sr[0, 0].numpy().astype(np.float64) * 255 + 0.5), 0, 255).astype(np.uint8)
    assert df.psnr[0] == pytest.approx(psnr_y(out, rgb_to_y(hr), 4), abs=1e-9)
    assert E.as_sr_network(create("fsrcnn", scale=4)).__class__.__name__ == "FSRCNN"


def test_load_evaluator_wraps_a_teacher_run(tmp_path):
    from repro.runs.folder import MODEL, model_record, save_torch

    teacher = create("pisr_teacher", scale=4)
    save_torch(tmp_path / MODEL, model_record("teacher", "pisr_teacher", 4, {}, teacher))
    net, record = E.load_evaluator(tmp_path)
    assert isinstance(net, E.TeacherAsSR) and net.input == "hr" and record["kind"] == "teacher"


def test_perfect_model_on_a_gray_image_gives_inf(smooth_image):
    hr = smooth_image(48, 40, 0, channels=1)
    pair = ImagePair("gray", hr, imresize(hr, 0.25))
    df = E.evaluate_pairs(Oracle(hr), [pair], "synthetic", 4, progress=False)
    assert list(df.columns) == ["dataset", "image", "scale", "psnr", "ssim"]
    assert math.isinf(df.psnr[0]) and df.ssim[0] == pytest.approx(1.0)
    summary = E.summarise(df)
    assert math.isinf(summary.psnr[0]) and summary.images[0] == 1


def test_perfect_y_on_a_colour_image_only_loses_the_rounding(smooth_image):
    hr = smooth_image(48, 40, 1)
    y = rgb_to_y(hr)  # the oracle outputs the HR's Y, which the evaluation rounds to uint8
    df = E.evaluate_pairs(Oracle(y), [ImagePair("rgb", hr, imresize(hr, 0.25))], "synthetic", 4,
                          progress=False)
    rounded = np.floor(y + 0.5)[4:-4, 4:-4]
    expected = 10 * math.log10(255**2 / np.mean((rounded - y[4:-4, 4:-4]) ** 2))
    assert df.psnr[0] == pytest.approx(expected, abs=1e-9)
    assert 55 < df.psnr[0] < 62  # uniform rounding error: 10 log10(12 * 255^2) = 58.9 dB


def test_super_resolve_feeds_float_y_and_clips_and_rounds(smooth_image):
    seen = {}

    class Probe(nn.Module):
        def forward(self, x):
            seen["x"] = x.clone()
            up = x.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
            up[..., 0, 0], up[..., 0, 1], up[..., 0, 2] = -0.3, 1.7, 2.5 / 255.0
            return up

    lr = smooth_image(10, 12, 2)
    out = E.super_resolve(Probe(), lr)
    assert out.dtype == np.uint8 and out.shape == (20, 24)
    np.testing.assert_allclose(seen["x"][0, 0].numpy(), rgb_to_y(lr) / 255.0, rtol=0, atol=1e-6)
    assert (out[0, 0], out[0, 1], out[0, 2]) == (0, 255, 3)  # clipped, and 2.5 rounds half up
    y_up = np.clip(np.floor(np.repeat(np.repeat(rgb_to_y(lr), 2, 0), 2, 1) + 0.5), 0, 255)
    np.testing.assert_array_equal(out[1:], y_up[1:])
    gray = smooth_image(10, 12, 3, channels=1)
    E.super_resolve(Probe(), gray)
    np.testing.assert_allclose(seen["x"][0, 0].numpy(), gray / 255.0, rtol=0, atol=1e-7)  # as is


def test_rgb_network_and_colour_output(smooth_image):
    lr = smooth_image(12, 16, 4)
    up3 = nn.Upsample(scale_factor=3, mode="nearest")
    sr = E.super_resolve(up3, lr, in_channels=3)
    np.testing.assert_array_equal(sr, np.repeat(np.repeat(lr, 3, 0), 3, 1))
    gray = E.super_resolve(up3, lr[:, :, 0], in_channels=3)
    np.testing.assert_array_equal(gray, np.repeat(np.repeat(lr[:, :, 0], 3, 0), 3, 1))
    colour = E.super_resolve_rgb(Bicubic(3), lr)
    assert colour.shape == (36, 48, 3) and colour.dtype == np.uint8
    ref = imresize(lr, 3.0)  # Y and chroma both bicubic: the colour image is RGB bicubic up to rounding
    assert np.abs(colour.astype(int) - ref.astype(int)).max() <= 2


def test_ycbcr_round_trip(smooth_image):
    img = smooth_image(16, 16, 5)
    np.testing.assert_allclose(E.rgb_to_ycbcr(img)[..., 0], rgb_to_y(img))
    np.testing.assert_array_equal(E.ycbcr_to_rgb(E.rgb_to_ycbcr(img)), img)


def test_wrong_output_size_is_an_error(smooth_image):
    lr = smooth_image(10, 12, 6)
    with pytest.raises(ValueError, match="not an x4 upscale"):
        E.super_resolve(nn.Identity(), lr, scale=4)
    with pytest.raises(ValueError, match=r"synthetic/a x2: the model made a 36x30 image .* HR is 24x20"):
        E.evaluate_pairs(Bicubic(3), [ImagePair("a", smooth_image(20, 24, 7), lr)], "synthetic", 2,
                         progress=False)
    with pytest.raises(ValueError, match="not an upscale"):
        E.super_resolve(lambda x: x[..., :5, :], lr)


def test_evaluate_model_on_sample_restores_the_model():
    model = Bicubic(4).train()
    df = E.evaluate_model(model, ["sample"], 4, in_channels=1, progress=False)
    assert model.training
    assert len(df) >= 3 and set(df.dataset) == {"sample"} and (df.scale == 4).all()
    assert df.psnr.between(15, 45).all() and df.ssim.between(0.2, 1.0).all()
    summary = E.summarise(df)
    assert summary.psnr[0] == pytest.approx(df.psnr.mean()) and summary.images[0] == len(df)


def test_summarise_groups_by_dataset_and_scale():
    df = pd.DataFrame({"dataset": ["B", "B", "A", "B"], "image": list("wxyz"), "scale": [2, 2, 2, 4],
                       "psnr": [30.0, 32.0, 20.0, 25.0], "ssim": [0.8, 0.9, 0.5, 0.7]})
    out = E.summarise(df)
    assert list(zip(out.dataset, out.scale, strict=True)) == [("B", 2), ("A", 2), ("B", 4)]
    assert out.psnr.tolist() == [31.0, 20.0, 25.0] and out.ssim[0] == pytest.approx(0.85)


@pytest.mark.data
def test_bicubic_model_reproduces_the_published_set5_x4_row():
    root = os.environ.get("REPRO_DATA")
    if not root:
        pytest.skip("needs the real benchmark images: set REPRO_DATA to the datasets folder")
    df = E.evaluate_model(Bicubic(4), "Set5", 4, root=root, progress=False)
    assert len(df) == 5
    summary = E.summarise(df)
    assert summary.psnr[0] == pytest.approx(28.42, abs=0.02)  # Appendix Table I, Bicubic x4 Set5
    assert summary.ssim[0] == pytest.approx(0.8104, abs=0.001)
    # the Y network path equals measuring the per-image bicubic SR computed here directly
    from repro.data.testsets import load_set

    pair = load_set("Set5", 4, root)[0]
    sr = np.clip(np.floor(imresize(rgb_to_y(pair.lr), 4.0) + 0.5), 0, 255).astype(np.uint8)
    hr_y = rgb_to_y(pair.hr)
    assert df.psnr[0] == pytest.approx(psnr_y(sr, hr_y, 4), abs=1e-4)
    assert df.ssim[0] == pytest.approx(ssim_y(sr, hr_y, 4), abs=1e-5)
