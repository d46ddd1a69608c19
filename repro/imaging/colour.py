"""BT.601 colour, as MATLAB's `rgb2ycbcr` defines it: the Y channel the paper trains and measures on.

One set of coefficients for evaluation (float64 Y, never rounded), training input (float32 Y / 255)
and figures (full YCbCr and back). A single-channel image has no colour: it is taken as it is, because
converting it to Y would rescale it to 16..235 (docs/protocol.md, "Y channel").
"""

from __future__ import annotations

import numpy as np

# MATLAB rgb2ycbcr (BT.601, studio swing) for 0..255 RGB: ycbcr = OFFSET + YCBCR @ rgb / 255.
YCBCR = np.array([[65.481, 128.553, 24.966],
                  [-37.797, -74.203, 112.0],
                  [112.0, -93.786, -18.214]]) / 255.0
OFFSET = np.array([16.0, 128.0, 128.0])
Y_UNIT = (YCBCR[0] / 255.0).astype(np.float32)  # Y / 255 from 0..255 RGB, in float32
Y_UNIT_OFFSET = np.float32(OFFSET[0] / 255.0)


def _plane(img: np.ndarray) -> np.ndarray | None:
    """The single plane of a grayscale image (HxW or HxWx1), else None."""
    if img.ndim == 3 and img.shape[2] == 1:
        return img[:, :, 0]
    return img if img.ndim == 2 else None


def rgb_to_y(img: np.ndarray) -> np.ndarray:
    """BT.601 luma Y = 16 + (65.481 R + 128.553 G + 24.966 B) / 255 as float64, from 0..255 RGB.

    A grayscale image (HxW or HxWx1) is returned as float64 unchanged: it has no colour to convert.
    """
    img = np.asarray(img)
    plane = _plane(img)
    if plane is not None:
        return plane.astype(np.float64)
    if img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"expected an HxW or HxWx3 image, got shape {img.shape}")
    return OFFSET[0] + img.astype(np.float64) @ YCBCR[0]


def y_unit_float32(img: np.ndarray) -> np.ndarray:
    """Y / 255 in float32 (equal to `rgb_to_y(img) / 255` within 2e-7): the training input.

    Float32 halves the cost of the float64 path, the largest part of making a patch; evaluation keeps
    `rgb_to_y`'s float64. A grayscale crop is taken as it is (divided by 255).
    """
    img = np.asarray(img)
    plane = _plane(img)
    if plane is not None:
        return plane.astype(np.float32) / np.float32(255.0)
    return img.astype(np.float32) @ Y_UNIT + Y_UNIT_OFFSET


def rgb_to_ycbcr(img: np.ndarray) -> np.ndarray:
    """HxWx3 0..255 RGB -> float64 YCbCr as MATLAB's rgb2ycbcr before its final rounding."""
    return img.astype(np.float64) @ YCBCR.T + OFFSET


def ycbcr_to_rgb(ycc: np.ndarray) -> np.ndarray:
    """Float YCbCr -> uint8 RGB (exact inverse of `rgb_to_ycbcr`, then clip and round)."""
    rgb = (ycc - OFFSET) @ np.linalg.inv(YCBCR).T
    return np.clip(np.floor(rgb + 0.5), 0, 255).astype(np.uint8)
