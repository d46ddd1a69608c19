"""Imaging primitives every other layer builds on: MATLAB bicubic, BT.601 colour, crops.

This package imports nothing else of the suite but `repro.errors`: data, models and evaluation all use
it, so none of them has to import another for a resize or a colour conversion.
"""

from repro.imaging.colour import rgb_to_y, rgb_to_ycbcr, y_unit_float32, ycbcr_to_rgb
from repro.imaging.crop import mod_crop
from repro.imaging.resize import imresize, imresize_torch

__all__ = [
    "imresize",
    "imresize_torch",
    "mod_crop",
    "rgb_to_y",
    "rgb_to_ycbcr",
    "y_unit_float32",
    "ycbcr_to_rgb",
]
