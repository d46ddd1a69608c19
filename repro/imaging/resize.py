"""MATLAB-compatible `imresize(img, scale, 'bicubic')`, the resize every SR benchmark is defined by.

Why not PIL/OpenCV/`F.interpolate`: they use other kernels (no antialiasing, other border rules), and the
benchmark LR files and the printed Bicubic rows come from MATLAB. MATLAB's rules, reproduced here:

- cubic kernel with a = -0.5; when downscaling, the kernel is stretched to width 4/scale and scaled
  by `scale` (antialiasing); weights are normalised to sum to one per output pixel;
- output pixel x (1-based) samples input position u = x/scale + 0.5 (1 - 1/scale);
- indices that fall off the image are mirrored symmetrically (..., 2, 1, 1, 2, ...);
- output size ceil(in * scale); the height is resized first, then the width;
- a uint8 image is rounded (half away from zero) and saturated to uint8 after EACH pass.

Each pass is one product with a precomputed (cached) weight matrix: sparse for numpy, dense for torch.
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

if TYPE_CHECKING:  # torch is imported only by `imresize_torch`: the numpy path must not pay its import
    import torch

_SIZE_EPS = 1e-9  # ceil(in*scale) without the float noise of e.g. 3k * fl(1/3)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5 (MATLAB's `cubic`)."""
    ax = np.abs(x)
    ax2, ax3 = ax * ax, ax * ax * ax
    near = (1.5 * ax3 - 2.5 * ax2 + 1.0) * (ax <= 1)
    far = (-0.5 * ax3 + 2.5 * ax2 - 4.0 * ax + 2.0) * ((ax > 1) & (ax <= 2))
    return near + far


def output_size(in_len: int, scale: float) -> int:
    """MATLAB's output length ceil(in_len * scale)."""
    if scale <= 0:
        raise ValueError(f"imresize scale must be positive, got {scale}")
    return max(1, math.ceil(in_len * scale - _SIZE_EPS))


@lru_cache(maxsize=256)
def contributions(in_len: int, out_len: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    """MATLAB's `contributions`: (indices, weights), both [out_len, taps], 0-based indices.

    Taps whose weight is zero for every output pixel are dropped, as MATLAB does.
    """
    width = 4.0
    if scale < 1:  # antialiasing: stretch the kernel, keep its area at one
        width = width / scale
        def kernel(x: np.ndarray) -> np.ndarray:
            return scale * _cubic(scale * x)
    else:
        kernel = _cubic
    x = np.arange(1, out_len + 1, dtype=np.float64)
    u = x / scale + 0.5 * (1.0 - 1.0 / scale)
    left = np.floor(u - width / 2.0)
    taps = math.ceil(width) + 2
    idx = left[:, None] + np.arange(taps, dtype=np.float64)[None, :]  # 1-based, may be off the image
    weights = kernel(u[:, None] - idx)
    weights = weights / weights.sum(axis=1, keepdims=True)
    mirror = np.concatenate([np.arange(in_len), np.arange(in_len - 1, -1, -1)])
    idx = mirror[np.mod(idx.astype(np.int64) - 1, 2 * in_len)]
    keep = np.any(weights != 0, axis=0)
    return idx[:, keep], weights[:, keep]


@lru_cache(maxsize=256)
def _sparse_matrix(in_len: int, out_len: int, scale: float) -> sp.csr_matrix:
    idx, w = contributions(in_len, out_len, scale)
    rows = np.repeat(np.arange(out_len), idx.shape[1])
    mat = sp.csr_matrix((w.ravel(), (rows, idx.ravel())), shape=(out_len, in_len))
    mat.sum_duplicates()  # mirrored taps landing on the same pixel
    return mat


@lru_cache(maxsize=256)
def weight_matrix(in_len: int, out_len: int, scale: float) -> np.ndarray:
    """Dense [out_len, in_len] float64 matrix of one resize pass."""
    return _sparse_matrix(in_len, out_len, scale).toarray()


def _round_uint8(x: np.ndarray) -> np.ndarray:
    """MATLAB's double -> uint8, in place: round half away from zero, saturate (negatives end at 0)."""
    x += 0.5
    np.floor(x, out=x)
    return np.clip(x, 0, 255, out=x)


def _resize_first_axis(a: np.ndarray, out_len: int, scale: float) -> np.ndarray:
    """Resize axis 0 of a 2-D float64 array [in_len, rest]."""
    return np.asarray(_sparse_matrix(a.shape[0], out_len, scale) @ a)


def imresize(img: np.ndarray, scale: float) -> np.ndarray:
    """MATLAB `imresize(img, scale, 'bicubic')` of an HxW or HxWxC image.

    uint8 in -> uint8 out (rounded and saturated after each pass, as MATLAB does);
    float in -> float out of the same dtype, no rounding or clipping.
    """
    img = np.asarray(img)
    if img.ndim not in (2, 3):
        raise ValueError(f"imresize expects an HxW or HxWxC image, got shape {img.shape}")
    is_uint8 = img.dtype == np.uint8
    if not is_uint8 and not np.issubdtype(img.dtype, np.floating):
        raise TypeError(f"imresize expects uint8 or float pixels, got {img.dtype}")
    scale = float(scale)
    h, w = img.shape[:2]
    out_h, out_w = output_size(h, scale), output_size(w, scale)
    rest = img.shape[2:]

    a = _resize_first_axis(img.reshape(h, -1).astype(np.float64), out_h, scale)  # height first
    if is_uint8:  # the intermediate is uint8 in MATLAB too; transposing bytes is also cheaper
        a = _round_uint8(a).astype(np.uint8)
    a = a.reshape(out_h, w, -1).transpose(1, 0, 2).reshape(w, -1)  # width to the front
    a = _resize_first_axis(a.astype(np.float64), out_w, scale)
    if is_uint8:
        a = _round_uint8(a).astype(np.uint8)
    out = a.reshape(out_w, out_h, -1).transpose(1, 0, 2).reshape(out_h, out_w, *rest)
    return np.ascontiguousarray(out, dtype=img.dtype)


_TORCH_CACHE: dict[tuple[int, int, float, str, object], torch.Tensor] = {}


def _torch_matrix(in_len: int, out_len: int, scale: float, like: torch.Tensor) -> torch.Tensor:
    import torch

    key = (in_len, out_len, scale, str(like.device), like.dtype)
    mat = _TORCH_CACHE.get(key)
    if mat is None:
        if len(_TORCH_CACHE) >= 256:  # many patch sizes/devices: start over rather than grow forever
            _TORCH_CACHE.clear()
        mat = torch.from_numpy(weight_matrix(in_len, out_len, scale)).to(device=like.device, dtype=like.dtype)
        _TORCH_CACHE[key] = mat
    return mat


def imresize_torch(x: torch.Tensor, scale: float) -> torch.Tensor:
    """MATLAB-bicubic resize of a float batch [N, C, H, W] (or [C, H, W]) on its own device.

    Same weights as `imresize`, no rounding: differentiable, matches the numpy float path.
    """
    import torch

    if not torch.is_floating_point(x):
        raise TypeError(f"imresize_torch expects a float tensor, got {x.dtype}")
    if x.dim() not in (3, 4):
        raise ValueError(f"imresize_torch expects [N, C, H, W] or [C, H, W], got shape {tuple(x.shape)}")
    scale = float(scale)
    h, w = x.shape[-2:]
    mh = _torch_matrix(h, output_size(h, scale), scale, x)
    mw = _torch_matrix(w, output_size(w, scale), scale, x)
    return torch.matmul(torch.matmul(mh, x), mw.t())
