"""DistributedDataParallel on CPU (gloo, 2 processes via torchrun) matches one process, same global batch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from repro.runs.config import resolve
from repro.runs.folder import read_metrics
from repro.train.engine import train

from conftest import short_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "model", "extra"), [
    ("baseline", "fsrcnn", []),
    # no auxiliary terms: the degradation module gets no gradient (DDP's unused-parameter path)
    ("teacher", "dssd_teacher", ["loss.levels=none"]),
])
def test_two_processes_match_one(tmp_path, kind, model, extra):
    settings = [*short_run(6, 3), *extra]
    sets = [a for s in settings for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "repro", "train", kind, "--model", model, "--profile", "smoke", "--out", str(out),
           "--no-progress", *sets]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.count("finished 6 iterations") == 1  # rank 0 alone reports

    single = train(resolve("smoke", kind=kind, model=model, overrides=settings), out=tmp_path / "one",
                   progress=False)
    a = torch.load(out / "model.pt", weights_only=False)["state_dict"]
    b = torch.load(single / "model.pt", weights_only=False)["state_dict"]
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-6
    for ra, rb in zip(read_metrics(out), read_metrics(single), strict=True):
        assert abs(float(ra["loss"]) - float(rb["loss"])) < 1e-6
    assert json_world(out) == 2


def json_world(run: Path) -> int:
    import json

    return json.loads((run / "done.json").read_text())["world_size"]
