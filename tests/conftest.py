"""What several test modules share: settings that cut a run short, and made-up test images.

`short_run` is a plain function as well (`from conftest import short_run`): module-level helpers that
resolve configs use it outside any test.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from repro.imaging import imresize


def short_run(iterations: int = 10, every: int = 5) -> list[str]:
    """`--set` overrides (on top of the smoke profile) for a run of `iterations` steps that logs and
    checkpoints every `every` steps and validates nothing, so a test trains in a second or two."""
    return [f"optim.iters_per_epoch={iterations}", f"run.checkpoint_every={every}", f"run.log_every={every}",
            "val.sets="]


def random_u8(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Uniform noise in 0..255 (uint8), the same for the same seed."""
    return np.random.default_rng(seed).integers(0, 256, size=shape, dtype=np.uint8)


def smooth_u8(h: int, w: int, seed: int = 0, channels: int = 3) -> np.ndarray:
    """A smooth random photo (noise 4x smaller, upscaled by MATLAB bicubic) of h x w: bicubic levels of it
    are not trivial, and SR on it is meaningful. `channels` 1 gives a 2-D (grayscale) array."""
    small = random_u8((h // 4 + 2, w // 4 + 2, channels), seed)
    img = imresize(small, 4.0)[:h, :w]
    return img[:, :, 0] if channels == 1 else img


@pytest.fixture
def random_image() -> Callable[..., np.ndarray]:
    """random_image(shape, seed=0): uniform uint8 noise."""
    return random_u8


@pytest.fixture
def smooth_image() -> Callable[..., np.ndarray]:
    """smooth_image(h, w, seed=0, channels=3): a smooth random uint8 photo."""
    return smooth_u8
