"""Run a network on benchmark images and measure it as the SR literature does (docs/protocol.md,
"Evaluation").

Y-channel networks see the LR image's BT.601 Y (MATLAB `rgb2ycbcr`, kept as float like the training
patches); their output is clipped to [0, 255] and rounded to uint8, then compared with the HR's Y
(float) after cropping `scale` pixels per border. Grayscale images go through as they are.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm import tqdm

from repro.data.testsets import ImagePair, load_set
from repro.errors import ReproError, unknown_choice
from repro.evaluate.metrics import psnr_y, ssim_y
from repro.imaging import imresize, rgb_to_y, rgb_to_ycbcr, ycbcr_to_rgb
from repro.runs.folder import load_model


class TeacherAsSR(nn.Module):
    """A privileged teacher called like an SR network: given HR (`input = "hr"`), it returns its SR.

    A teacher whose backbone sees the bicubic LR image itself (Table 1 `bicubic`: `sees_lr()`) is given
    the LR image instead, as in training, where it takes the batch's LR file.
    """

    def __init__(self, teacher: nn.Module) -> None:
        super().__init__()
        self.teacher = teacher
        sees_lr = getattr(teacher, "sees_lr", None)
        self.input = "lr" if sees_lr is not None and sees_lr() else "hr"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input == "lr":
            return self.teacher.backbone(x)
        return self.teacher(x).sr


def as_sr_network(net: nn.Module) -> nn.Module:
    """`net` itself for an SR network; a teacher (it has a `backbone`) wrapped in `TeacherAsSR`."""
    return TeacherAsSR(net) if isinstance(getattr(net, "backbone", None), nn.Module) else net


def load_evaluator(run_dir: str | os.PathLike[str]) -> tuple[nn.Module, dict]:
    """A finished run's network ready for `evaluate_model` (a teacher wrapped), and its model record."""
    net, record = load_model(run_dir)
    return as_sr_network(net), record


def evaluate_run_dir(run_dir: str | os.PathLike[str], sets: str | Sequence[str],
                     root: str | os.PathLike[str] | None = None, device: str | torch.device = "cpu",
                     progress: bool = True, max_images: int | None = None,
                     crop: int | None = None) -> tuple[pd.DataFrame, dict]:
    """Per-image rows of a finished run on the named test sets (at its scale and channels), and its
    model record: what `repro evaluate` prints and what an orchestration keeps in the run folder."""
    net, record = load_evaluator(run_dir)
    in_channels = int(record["settings"].get("in_channels", 1))
    df = evaluate_model(net, sets, int(record["scale"]), root=root, in_channels=in_channels, device=device,
                        progress=progress, max_images=max_images, crop=crop)
    return df, record


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    """[C, H, W] float in 0..1 -> uint8 HxW (C=1) or HxWx3, clipped and rounded (half up)."""
    arr = x.detach().float().cpu().numpy().astype(np.float64) * 255.0
    arr = np.clip(np.floor(arr + 0.5), 0, 255).astype(np.uint8)
    return arr[0] if arr.shape[0] == 1 else arr.transpose(1, 2, 0)


def _device_of(model: nn.Module) -> torch.device | None:
    param = next(iter(model.parameters()), None)
    return None if param is None else param.device


@torch.no_grad()
def super_resolve(model: nn.Module, lr_uint8: np.ndarray, in_channels: int = 1,
                  device: str | torch.device = "cpu", scale: int | None = None) -> np.ndarray:
    """SR of one uint8 LR image: HxW uint8 (the SR Y, or the SR gray) for a Y network, HxWx3 for RGB.

    The model must already be on `device` and in eval mode (`evaluate_model` takes care of both);
    `scale`, when given, is checked against the output size.
    """
    if in_channels not in (1, 3):
        raise unknown_choice("number of input channels", in_channels, (1, 3))
    lr = np.asarray(lr_uint8)
    if in_channels == 1:
        plane = rgb_to_y(lr)[None]  # a grayscale LR stays as it is
    else:
        rgb = np.repeat(lr[:, :, None], 3, axis=2) if lr.ndim == 2 else lr
        plane = rgb.transpose(2, 0, 1).astype(np.float64)
    x = torch.from_numpy((plane / 255.0).astype(np.float32))[None].to(device)
    sr = model(x)
    h, w = lr.shape[:2]
    s = scale or (sr.shape[-2] // h if sr.dim() == 4 else 0)
    if sr.dim() != 4 or sr.shape[:2] != x.shape[:2] or s < 1 or tuple(sr.shape[2:]) != (h * s, w * s):
        want = f" x{scale}" if scale else ""
        raise ValueError(f"model output {tuple(sr.shape)} is not an{want} upscale "
                         f"of its input {tuple(x.shape)}")
    out = _to_uint8(sr[0])
    if in_channels == 3 and lr.ndim == 2:  # a grayscale image fed as R=G=B: measure it as one plane
        out = np.clip(np.floor(out.astype(np.float64).mean(axis=2) + 0.5), 0, 255).astype(np.uint8)
    return out


def super_resolve_rgb(model: nn.Module, lr_uint8: np.ndarray, in_channels: int = 1,
                      device: str | torch.device = "cpu", scale: int | None = None) -> np.ndarray:
    """A viewable colour SR: the network's Y with Cb/Cr upscaled by MATLAB bicubic (for figures)."""
    sr = super_resolve(model, lr_uint8, in_channels, device, scale)
    lr = np.asarray(lr_uint8)
    if in_channels == 3 or lr.ndim == 2:
        return sr
    ycc = rgb_to_ycbcr(lr)
    chroma = imresize(ycc[:, :, 1:], sr.shape[0] / lr.shape[0])
    return ycbcr_to_rgb(np.concatenate([sr[:, :, None].astype(np.float64), chroma], axis=2))


def evaluate_pairs(model: nn.Module, pairs: Iterable[ImagePair], dataset: str, scale: int,
                   in_channels: int = 1, device: str | torch.device = "cpu",
                   progress: bool = True) -> pd.DataFrame:
    """Per-image PSNR/SSIM of `model` on HR/LR pairs (model already on `device`, eval mode).

    The SR must have the HR's size. A model whose `input` attribute is "hr" (a privileged teacher,
    `TeacherAsSR`) is given the HR image instead of the LR one.
    """
    pairs = list(pairs)
    given_hr = getattr(model, "input", "lr") == "hr"
    rows = []
    bar = tqdm(pairs, desc=f"{dataset} x{scale}", leave=False, file=sys.stderr, disable=not progress)
    for pair in bar:
        sr = super_resolve(model, pair.hr if given_hr else pair.lr, in_channels, device)
        if sr.shape[:2] != pair.hr.shape[:2]:
            raise ValueError(f"{dataset}/{pair.name} x{scale}: the model made a {sr.shape[1]}x{sr.shape[0]} "
                             f"image from a {pair.lr.shape[1]}x{pair.lr.shape[0]} input, but the HR is "
                             f"{pair.hr.shape[1]}x{pair.hr.shape[0]} (wrong scale for this model?)")
        # a Y network's SR is already a Y plane: compare it with the HR's Y, kept as float
        hr = rgb_to_y(pair.hr) if in_channels == 1 and pair.hr.ndim == 3 else pair.hr
        rows.append({"dataset": dataset, "image": pair.name, "scale": scale,
                     "psnr": psnr_y(sr, hr, scale), "ssim": ssim_y(sr, hr, scale)})
    return pd.DataFrame(rows, columns=["dataset", "image", "scale", "psnr", "ssim"])


def subset(pairs: Sequence[ImagePair], scale: int, max_images: int | None = None,
           crop: int | None = None) -> list[ImagePair]:
    """A quick check's share of a test set: its first `max_images` images, each cut to its top-left
    `crop` x `crop` HR pixels (rounded down to a multiple of the scale) and the LR pixels under them.
    Not the protocol: numbers measured so are for smoke checks, and are labelled as such."""
    if max_images is not None and max_images < 1:
        raise ReproError(f"--eval-images must be at least 1, got {max_images}")
    if crop is not None and crop < 2 * scale + 8:
        raise ReproError(f"--eval-crop {crop} is too small for x{scale} (the border of {scale} pixels is "
                         f"cut before measuring): give at least {2 * scale + 8}")
    out = list(pairs)[:max_images] if max_images else list(pairs)
    if crop:
        p = crop // scale * scale
        out = [ImagePair(q.name, q.hr[:p, :p], q.lr[:p // scale, :p // scale]) for q in out]
    return out


def evaluate_model(model: nn.Module, sets: str | Sequence[str], scale: int,
                   root: str | os.PathLike[str] | None = None, in_channels: int = 1,
                   device: str | torch.device = "cpu", progress: bool = True, max_images: int | None = None,
                   crop: int | None = None) -> pd.DataFrame:
    """Per-image rows (dataset, image, scale, psnr, ssim) of `model` on the named test sets (or on the
    `subset` that `max_images` / `crop` ask for).

    The model is moved to `device` and put in eval mode for the measurement, then put back where
    it was (device and train/eval mode), so a training loop can call this between iterations.
    """
    names = [sets] if isinstance(sets, str) else list(sets)
    was_training, home = model.training, _device_of(model)
    model.to(device).eval()
    try:
        frames = [evaluate_pairs(model, subset(load_set(name, scale, root), scale, max_images, crop), name,
                                 scale, in_channels, device, progress) for name in names]
    finally:
        if home is not None:
            model.to(home)
        model.train(was_training)
    return pd.concat(frames, ignore_index=True) if frames else evaluate_pairs(model, [], "", scale)


def summarise(df: pd.DataFrame) -> pd.DataFrame:
    """Mean PSNR/SSIM and the image count per (dataset, scale), datasets in their first-seen order."""
    out = (df.groupby(["dataset", "scale"], sort=False)
             .agg(psnr=("psnr", "mean"), ssim=("ssim", "mean"), images=("image", "count"))
             .reset_index())
    return out
