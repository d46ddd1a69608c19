"""Training really learns: a short FSRCNN x4 run on T91 beats bicubic on Set5 (real images, REPRO_DATA)."""

from __future__ import annotations

import os

import pytest

from repro.evaluate.sr import evaluate_model, summarise
from repro.runs.config import resolve
from repro.runs.folder import load_model
from repro.train.engine import train

BICUBIC_SET5_X4 = 28.42  # Appendix Table I, Bicubic row (reproduced by `repro bicubic`)


@pytest.mark.slow
@pytest.mark.data
def test_short_t91_run_beats_bicubic_on_set5(tmp_path):
    root = os.environ.get("REPRO_DATA")
    if not root:
        pytest.skip("REPRO_DATA is not set: this test needs T91 and Set5 (see the data README)")
    # the laptop profile compressed to 4000 iterations (cosine over them): about a minute on 2 cores
    cfg = resolve("laptop", kind="baseline", model="fsrcnn", scale=4,
                  overrides=["optim.epochs=4", "val.sets=", "run.checkpoint_every=1000", "run.threads=1"])
    run = train(cfg, out=tmp_path / "fsrcnn", data_root=root, progress=False)
    net, _ = load_model(run)
    psnr = float(summarise(evaluate_model(net, "Set5", 4, root=root, progress=False)).psnr.iloc[0])
    print(f"FSRCNN x4, 4000 iterations on T91: Set5 {psnr:.2f} dB")
    assert psnr > BICUBIC_SET5_X4 + 0.2, psnr
