"""Reading and writing images as uint8 arrays (HxW for grayscale, HxWx3 for colour).

Grayscale files stay single-channel on purpose: the evaluation measures them as they are
(docs/protocol.md, "Evaluation"), so a mode-L image must not silently become RGB.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from repro.errors import ReproError
from repro.io_utils import atomic_write_bytes

_GRAY_MODES = {"1", "L", "LA", "La"}
_WIDE_GRAY_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N"}


def _to_array(im: Image.Image) -> np.ndarray:
    if im.mode in _GRAY_MODES:
        return np.asarray(im.convert("L"))  # drops alpha; 1-bit becomes 0/255
    if im.mode in _WIDE_GRAY_MODES:  # 16-bit grayscale: to 8 bits like MATLAB's im2uint8
        wide = np.asarray(im, dtype=np.float64)
        return np.clip(np.floor(wide / 257.0 + 0.5), 0, 255).astype(np.uint8)
    if im.mode == "P":  # palette (maybe with a transparent index): through RGBA so PIL keeps the colours
        im = im.convert("RGBA")
    return np.asarray(im.convert("RGB"))  # RGB, RGBA (alpha dropped), CMYK, YCbCr, ...


def read_image(path: str | os.PathLike[str]) -> np.ndarray:
    """Decode an image file to uint8: HxW for grayscale files, HxWx3 otherwise."""
    path = Path(path)
    try:
        with Image.open(path) as im:
            im.load()
            arr = _to_array(im)
    except FileNotFoundError as exc:
        raise ReproError(f"image not found: {path}") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ReproError(f"cannot read image {path}: {exc}; replace or re-download the file") from exc
    return np.ascontiguousarray(arr, dtype=np.uint8)


def write_image(path: str | os.PathLike[str], arr: np.ndarray) -> Path:
    """Encode a uint8 HxW / HxWx3 array (format from the suffix, e.g. .png) and write it atomically."""
    path = Path(path)
    arr = np.asarray(arr)
    if arr.dtype != np.uint8:
        raise ValueError(f"write_image expects uint8 pixels, got {arr.dtype} (clip and round first)")
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ValueError(f"write_image expects an HxW, HxWx3 or HxWx4 image, got shape {arr.shape}")
    fmt = Image.registered_extensions().get(path.suffix.lower())
    if fmt is None:
        raise ReproError(f"cannot tell the image format of {path} from its suffix; use .png")
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format=fmt)
    return atomic_write_bytes(path, buf.getvalue())
