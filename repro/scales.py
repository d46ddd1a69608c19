"""The upscaling factors the paper measures, and the levels of its recursive downscaling.

At x4 the teacher squeezes HR in two recursive steps of stride 2 (1/2, then 1/4 of HR), and deep
supervision compares each step with the MATLAB-bicubic downscale by the same total factor. The paper
describes only x4; x2 and x3 use one step of stride 2 or 3 (docs/protocol.md, "Open decisions").
The training set and its patches (`repro.data.train_set`, `repro.data.patches`) and the teachers
(`repro.models`) read the levels from here, so they cannot disagree. No third-party import: the command
line reads SCALES for free.
"""

from __future__ import annotations

import math

from repro.errors import unknown_choice

SCALES = (2, 3, 4)


def check_scale(scale: int) -> int:
    """`scale` as an int if it is one of SCALES, else an error listing them."""
    if scale not in SCALES:
        raise unknown_choice("scale", scale, SCALES)
    return int(scale)


def level_strides(scale: int) -> tuple[int, ...]:
    """Stride of each recursive downscaling step: x4 -> (2, 2); x2, x3 -> (scale,)."""
    check_scale(scale)
    return (2, 2) if scale == 4 else (scale,)


def level_factors(scale: int) -> tuple[int, ...]:
    """Total downscale factor at each level, finest first: x4 -> (2, 4); x2 -> (2,); x3 -> (3,)."""
    factors, total = [], 1
    for stride in level_strides(scale):
        total *= stride
        factors.append(total)
    return tuple(factors)


def crop_multiple(scale: int) -> int:
    """What an HR size must be a multiple of so that every level has whole pixels."""
    return math.lcm(*level_factors(scale))
