"""Quick-check evaluation (`repro reproduce --eval-images N --eval-crop P`): which pixels it measures,
and that a subset evaluation never stands for a whole one in a run folder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from repro.data.testsets import ImagePair
from repro.errors import ReproError
from repro.evaluate.sr import subset
from repro.plan.execute import RunJob, missing_sets


def _pairs(n: int, scale: int = 4) -> list[ImagePair]:
    rng = np.random.default_rng(0)
    def image(h: int, w: int) -> np.ndarray:
        return rng.integers(0, 255, (h, w, 3), dtype=np.uint8)

    return [ImagePair(f"im{i}", image(200, 160), image(200 // scale, 160 // scale)) for i in range(n)]


def test_subset_takes_the_first_images_and_their_top_left_crop():
    pairs = _pairs(5)
    cut = subset(pairs, 4, max_images=2, crop=98)  # rounded down to 96, a multiple of the scale
    assert [p.name for p in cut] == ["im0", "im1"]
    assert cut[0].hr.shape == (96, 96, 3) and cut[0].lr.shape == (24, 24, 3)
    assert np.array_equal(cut[1].hr, pairs[1].hr[:96, :96])
    assert np.array_equal(cut[1].lr, pairs[1].lr[:24, :24])
    assert subset(pairs, 4) == pairs


@pytest.mark.parametrize("kwargs, message",
                         [({"max_images": 0}, "--eval-images"), ({"crop": 10}, "--eval-crop")])
def test_subset_refuses_what_measures_nothing(kwargs, message):
    with pytest.raises(ReproError, match=message):
        subset(_pairs(1), 4, **kwargs)


def test_a_subset_evaluation_is_not_reused_for_a_whole_one(tmp_path):
    sets = {"Set5": {"psnr": 30.0, "ssim": 0.9, "images": 2, "max_images": 2, "crop": 96},
            "Set14": {"psnr": 27.0, "ssim": 0.8, "images": 14}}
    (tmp_path / "evaluation.json").write_text(json.dumps({"run": "r", "hash": "h", "sets": sets}))
    whole = RunJob("h", "r", str(tmp_path), {}, datasets=("Set5", "Set14"))
    quick = RunJob("h", "r", str(tmp_path), {}, datasets=("Set5", "Set14"), eval_images=2, eval_crop=96)
    assert missing_sets(whole) == ["Set5"]
    assert missing_sets(quick) == ["Set14"]
