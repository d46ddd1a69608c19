"""A training step never reads a tensor to the host (on a GPU each read waits for the device): the loss
terms are summed on the device and read once per logged row, where a non-finite loss is still caught.
The speed settings (run.compile, run.amp, run.channels_last) train on CPU and are recorded and hashed."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

from repro.errors import ReproError
from repro.runs.config import resolve
from repro.runs.folder import format_cell, load_torch, read_metrics, read_teacher
from repro.train import objectives
from repro.train.engine import train
from repro.train.step import DeviceSums

from conftest import short_run

REPRO = Path(objectives.__file__).resolve().parents[1]
SHORT = short_run(10, 5)
# every way a tensor's value reaches Python
READS = ("item", "tolist", "numpy", "cpu", "__float__", "__int__", "__index__", "__bool__", "__format__")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("teacher") / "t"
    cfg = resolve("smoke", kind="teacher", model="dssd_teacher",
                  overrides=[*SHORT, "optim.iters_per_epoch=5"])
    return train(cfg, out=out, progress=False)


def _cfg(kind: str, teacher: Path | None, extra: list[str] = ()):
    if kind == "student":
        return resolve("smoke", kind="student", overrides=[*SHORT, *extra], teacher=read_teacher(teacher))
    return resolve("smoke", kind=kind, model="dssd_teacher" if kind == "teacher" else None,
                   overrides=[*SHORT, *extra])


def _objective_class(kind: str) -> type:
    classes = {"baseline": objectives.Baseline, "teacher": objectives.Teacher, "student": objectives.Student}
    return classes[kind]


@pytest.mark.parametrize("kind", ["baseline", "teacher", "student"])
def test_no_host_read_between_logged_rows(kind, teacher_dir, tmp_path, monkeypatch):
    """Every host read made by the suite's code (data loading aside: it reads host arrays) happens right
    after iteration 5 or 10, the logged rows, never within a step."""
    events: list[str] = []
    cls = _objective_class(kind)
    forward = cls.forward

    def counted(self, batch):
        events.append("step")
        return forward(self, batch)

    def watch(name: str):
        original = getattr(torch.Tensor, name)

        def read(self, *args, **kwargs):
            caller = Path(sys._getframe(1).f_code.co_filename).resolve()
            if caller.is_relative_to(REPRO) and not caller.is_relative_to(REPRO / "data"):
                events.append(f"read {name} {caller.name}:{sys._getframe(1).f_lineno}")
            return original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    monkeypatch.setattr(cls, "forward", counted)
    for name in READS:
        watch(name)
    train(_cfg(kind, teacher_dir), out=tmp_path / "r", teacher_dir=teacher_dir if kind == "student" else None,
          progress=False)
    monkeypatch.undo()
    steps, reads_at = 0, set()
    for event in events:
        if event == "step":
            steps += 1
        else:
            reads_at.add(steps)
    assert steps == 10
    assert reads_at == {5, 10}, [e for e in events if e != "step"]  # the detector sees the log reads


def test_logged_means_are_the_numbers_the_host_summed_before(tmp_path, monkeypatch):
    """metrics.csv: the same columns and, cell for cell, the values of summing each step's floats."""
    per_step: list[dict[str, float]] = []
    forward = objectives.Teacher.forward

    def recorded(self, batch):
        loss, terms = forward(self, batch)
        per_step.append({k: v.float().item() for k, v in terms.items()})  # a host read: this test only
        return loss, terms

    monkeypatch.setattr(objectives.Teacher, "forward", recorded)
    run = train(_cfg("teacher", None), out=tmp_path / "r", progress=False)
    rows = read_metrics(run)
    assert list(rows[0]) == ["iteration", "loss", "recon", "z_fre_1", "z_fre_2", "z_deg_1", "z_deg_2", "lr",
                             "data_wait", "it_per_s", "seconds"]
    for row, window in zip(rows, (per_step[:5], per_step[5:]), strict=True):
        sums: dict[str, float] = {}
        for terms in window:
            for key, value in terms.items():
                sums[key] = sums.get(key, 0.0) + value
        assert row["loss"] == format_cell(sums["total"] / 5)
        assert all(row[k] == format_cell(v / 5) for k, v in sums.items() if k != "total")


def test_device_sums_add_in_float64_and_start_afresh_in_place() -> None:
    sums = DeviceSums()
    assert sums.read() == {}
    sums.add({"a": torch.tensor(0.1), "total": torch.tensor(1e8)})
    buffer = sums.total
    sums.add({"a": torch.tensor(0.2), "total": torch.tensor(1.0)})
    assert sums.read() == {"a": float(torch.tensor(0.1)) + float(torch.tensor(0.2)), "total": 1e8 + 1.0}
    assert sums.read() == {"a": 0.0, "total": 0.0}  # a new window, same memory (a CUDA graph adds there)
    sums.add({"a": torch.tensor(0.5), "total": torch.tensor(2.0)})
    assert sums.total is buffer and sums.read() == {"a": 0.5, "total": 2.0}
    with pytest.raises(ReproError, match="terms changed"):
        sums.add({"c": torch.tensor(1.0)})


def _nan_at(iteration: int, monkeypatch) -> None:
    forward, calls = objectives.Baseline.forward, [0]

    def poisoned(self, batch):
        loss, terms = forward(self, batch)
        calls[0] += 1
        if calls[0] == iteration:
            loss, terms = loss * float("nan"), {**terms, "total": terms["total"] * float("nan")}
        return loss, terms

    monkeypatch.setattr(objectives.Baseline, "forward", poisoned)


def test_a_non_finite_loss_is_caught_at_the_next_read(tmp_path, monkeypatch):
    _nan_at(7, monkeypatch)
    cfg = resolve("smoke", overrides=[*SHORT, "optim.iters_per_epoch=20"])
    with pytest.raises(ReproError, match=r"the loss became nan at an iteration between 6 and 10 .*"
                                         r"run.log_every=1 .*lower the learning rate .*optim.grad_clip"):
        train(cfg, out=tmp_path / "r", progress=False)
    assert load_torch(tmp_path / "r" / "checkpoint.pt")["iteration"] == 5  # no checkpoint of a NaN run
    assert [r["iteration"] for r in read_metrics(tmp_path / "r")] == ["5"]
    assert not (tmp_path / "r" / "model.pt").exists()


def test_log_every_one_names_the_iteration(tmp_path, monkeypatch):
    _nan_at(3, monkeypatch)
    cfg = resolve("smoke", overrides=[*SHORT, "run.log_every=1"])
    with pytest.raises(ReproError, match=r"the loss became nan at iteration 3; lower the learning rate"):
        train(cfg, out=tmp_path / "r", progress=False)


def _settings(run: Path) -> dict:
    return json.loads((run / "config.json").read_text())


@pytest.mark.parametrize("setting", ["run.amp=true", "run.channels_last=true"])
def test_amp_and_channels_last_train_on_cpu_and_are_recorded(setting, tmp_path, monkeypatch):
    """On CPU amp does nothing (the same numbers); channels_last converts the objective (the frozen teacher
    included) and the inputs, and gives the same losses up to rounding. Both are hashed settings."""
    built, seen = [], []
    build, forward = objectives.build, objectives.Student.forward
    monkeypatch.setattr(objectives, "build", lambda *a, **k: built.append(build(*a, **k)) or built[-1])
    monkeypatch.setattr(objectives.Student, "forward",
                        lambda self, batch: seen.append(batch["hr"]) or forward(self, batch))
    extra = ["data.in_channels=3"]  # 3 channels: channels_last differs from the default layout
    tcfg = resolve("smoke", kind="teacher", model="dssd_teacher",
                   overrides=[*SHORT, "optim.iters_per_epoch=5", *extra])
    rgb_teacher = train(tcfg, out=tmp_path / "t", progress=False)
    plain = train(_cfg("student", rgb_teacher, extra), out=tmp_path / "plain", teacher_dir=rgb_teacher,
                  progress=False)
    seen.clear()
    run = train(_cfg("student", rgb_teacher, [*extra, setting]), out=tmp_path / "set",
                teacher_dir=rgb_teacher, progress=False)
    key = setting.split("=")[0].split(".")[1]
    assert _settings(run)["settings"]["run"][key] is True
    assert _settings(run)["hash"] != _settings(plain)["hash"]
    losses = [float(r["loss"]) for r in read_metrics(run)]
    reference = [float(r["loss"]) for r in read_metrics(plain)]
    if key == "amp":
        assert losses == reference
        return
    assert losses == pytest.approx(reference, rel=1e-5)
    obj, frozen = built[-1][:2]
    weights = [p for m in (obj, frozen.net) for p in m.parameters() if p.dim() == 4]
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in weights)
    assert any(not p.is_contiguous() for p in frozen.net.parameters() if p.dim() == 4)
    assert seen and all(x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
                        for x in seen)


@pytest.mark.slow
def test_compile_trains_and_is_recorded(tmp_path):
    """run.compile=default: torch.compile on CPU works (tens of seconds to compile); the run is another run
    (hashed), with the same logged terms up to rounding and the same checkpoint keys."""
    plain = train(resolve("smoke", overrides=[*SHORT, "val.sets=sample"]), out=tmp_path / "plain",
                  progress=False)
    cfg = resolve("smoke", overrides=[*SHORT, "val.sets=sample", "run.compile=default"])
    run = train(cfg, out=tmp_path / "compiled", progress=False)
    assert _settings(run)["settings"]["run"]["compile"] == "default"
    assert _settings(run)["hash"] == cfg.hash() != _settings(plain)["hash"]
    rows, ref = read_metrics(run), read_metrics(plain)
    assert [r["iteration"] for r in rows] == [r["iteration"] for r in ref] == ["5", "10"]
    assert [float(r["loss"]) for r in rows] == pytest.approx([float(r["loss"]) for r in ref], rel=1e-5)
    assert float(rows[-1]["val_psnr_sample"]) == pytest.approx(float(ref[-1]["val_psnr_sample"]), abs=0.01)
    keys = torch.load(run / "model.pt", weights_only=False)["state_dict"].keys()
    assert keys == torch.load(plain / "model.pt", weights_only=False)["state_dict"].keys()
    with pytest.raises(ReproError, match="valid choices: off, default, reduce-overhead, max-autotune"):
        resolve("smoke", overrides=["run.compile=fast"])
