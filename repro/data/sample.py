"""The embedded `sample` dataset: photos that ship inside scikit-image, so the whole pipeline (training,
evaluation, reports) runs with no download. Only files present in `skimage.data.data_dir` are used (never
the fetchers of `skimage.data`, which may go to the network); they are decoded with `read_image`, so the
pixels are uint8, RGB or grayscale as the files are. The list is documented in data_manifests/sample.toml.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np

from repro.data.images import read_image
from repro.errors import ReproError, unknown_choice

SPLITS = ("train", "test")

# name -> file in skimage.data.data_dir. Test: four varied photos (RGB portrait, grayscale, animal, food),
# gray `camera` exercises the single-channel path like Set14's bridge. Train: the other natural photos.
SAMPLE_FILES: dict[str, dict[str, str]] = {
    "test": {
        "astronaut": "astronaut.png",
        "camera": "camera.png",
        "chelsea": "chelsea.png",
        "coffee": "coffee.png",
    },
    "train": {
        "brick": "brick.png",
        "coins": "coins.png",
        "grass": "grass.png",
        "gravel": "gravel.png",
        "hubble_deep_field": "hubble_deep_field.jpg",
        "ihc": "ihc.png",
        "moon": "moon.png",
        "motorcycle_left": "motorcycle_left.png",
        "rocket": "rocket.jpg",
    },
}


def data_dir() -> Path:
    """Where scikit-image keeps the photos bundled with the package."""
    import skimage.data

    return Path(skimage.data.data_dir)


@functools.cache
def _load(split: str) -> dict[str, np.ndarray]:
    folder = data_dir()
    images = {}
    for name, file in SAMPLE_FILES[split].items():
        path = folder / file
        if not path.is_file():
            raise ReproError(
                f"sample image {file} not found in {folder}: the `sample` dataset needs the photos bundled "
                "with scikit-image; reinstall it (`pip install --force-reinstall scikit-image`)"
            )
        img = read_image(path)
        img.setflags(write=False)  # the cached original; callers get copies
        images[name] = img
    return images


def sample_images(split: str) -> dict[str, np.ndarray]:
    """The `sample` images of one split ('train' or 'test'), name -> uint8 HxW or HxWx3, sorted by name.

    Decoded once and cached; every call returns fresh writable copies, so callers may change them.
    """
    if split not in SPLITS:
        raise unknown_choice("sample split", split, SPLITS)
    return {name: img.copy() for name, img in _load(split).items()}
