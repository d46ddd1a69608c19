"""The training loop in-process on the embedded `sample` images: determinism, run folders, outputs."""

from __future__ import annotations

import json

import pytest
import torch

from repro.cli import main
from repro.errors import ReproError
from repro.runs.config import resolve
from repro.runs.folder import MetricsLog, load_model, read_metrics, read_teacher
from repro.train import objectives
from repro.train.engine import train

from conftest import short_run

SHORT = short_run(10, 5)


def _tensors(path):
    return torch.load(path, weights_only=False)["state_dict"]


def test_same_seed_gives_bit_identical_weights(tmp_path):
    a = train(resolve("smoke", overrides=SHORT), out=tmp_path / "a", progress=False)
    b = train(resolve("smoke", overrides=[*SHORT, "run.checkpoint_every=1000"]), out=tmp_path / "b",
              progress=False)
    assert (a / "model.pt").read_bytes() == (b / "model.pt").read_bytes()
    c = train(resolve("smoke", overrides=[*SHORT, "run.seed=1"]), out=tmp_path / "c", progress=False)
    ta, tc = _tensors(a / "model.pt"), _tensors(c / "model.pt")
    assert any(not torch.equal(ta[k], tc[k]) for k in ta)  # the seed does matter


def test_finished_run_is_left_alone(tmp_path, capsys):
    cfg = resolve("smoke", overrides=SHORT)
    run = train(cfg, out=tmp_path / "r", progress=False)
    stamp = (run / "model.pt").stat().st_mtime_ns
    rows = read_metrics(run)
    capsys.readouterr()
    assert train(resolve("smoke", overrides=SHORT), out=run, progress=False) == run
    assert "complete" in capsys.readouterr().out
    assert (run / "model.pt").stat().st_mtime_ns == stamp and read_metrics(run) == rows
    # other settings in the same folder: refused, unless --force
    with pytest.raises(ReproError, match="other settings"):
        train(resolve("smoke", overrides=[*SHORT, "optim.lr=1e-4"]), out=run, progress=False)
    train(resolve("smoke", overrides=[*SHORT, "optim.lr=1e-4"]), out=run, force=True, progress=False)
    assert json.loads((run / "config.json").read_text())["settings"]["optim"]["lr"] == 1e-4
    assert [int(r["iteration"]) for r in read_metrics(run)] == [5, 10]


def test_run_folder_contents(tmp_path):
    run = train(resolve("smoke", overrides=["optim.iters_per_epoch=10", "run.checkpoint_every=5"]),
                out=tmp_path / "r", progress=False)
    for name in ("config.toml", "config.json", "checkpoint.pt", "metrics.csv", "model.pt", "done.json"):
        assert (run / name).is_file(), name
    rows = read_metrics(run)
    assert list(rows[0]) == ["iteration", "loss", "recon", "lr", "val_psnr_sample", "data_wait",
                             "it_per_s", "seconds"]
    assert rows[0]["val_psnr_sample"] == "" and float(rows[-1]["val_psnr_sample"]) > 5
    assert float(rows[0]["lr"]) > float(rows[-1]["lr"])  # cosine
    net, record = load_model(run)
    assert record["kind"] == "baseline" and record["model"] == "fsrcnn"
    assert net(torch.rand(1, 1, 6, 7)).shape == (1, 1, 24, 28)
    done = json.loads((run / "done.json").read_text())
    assert done["iterations"] == 10 and "val_psnr_sample" in done["validation"]


def test_default_run_folder_is_named_by_the_settings_hash(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = resolve("smoke", overrides=[*SHORT, "optim.iters_per_epoch=5"])
    run = train(cfg, progress=False)
    assert run == tmp_path.joinpath("runs", f"baseline-fsrcnn-x4-{cfg.hash()[:8]}").relative_to(tmp_path)


def test_metrics_log_drops_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.csv"
    path.write_text("iteration,loss\n5,0.5\n10,0.4\n15,0.3\n20,0.")  # a killed run's half line
    log = MetricsLog(path)
    assert [r["iteration"] for r in log.rows()] == ["5", "10", "15"]
    log.truncate(10)
    assert path.read_text() == "iteration,loss\n5,0.5\n10,0.4\n"
    log.append({"iteration": 15, "loss": 0.25})
    assert path.read_text().endswith("15,0.25\n")
    log.truncate(0)
    assert not path.exists()


def test_student_starts_from_the_teachers_backbone(tmp_path):
    short = [*SHORT, "optim.iters_per_epoch=5"]
    teacher = train(resolve("smoke", kind="teacher", model="dssd_teacher", overrides=short),
                    out=tmp_path / "t", progress=False)
    tcfg = read_teacher(teacher)
    tnet, _ = load_model(teacher)
    cfg = resolve("smoke", kind="student", overrides=SHORT, teacher=tcfg)
    assert cfg.model.name == "fsrcnn" and cfg.teacher_hash == tcfg.hash()
    student, frozen, _ = objectives.build(cfg, tnet)
    backbone = tnet.backbone.state_dict()
    assert student.net.state_dict().keys() == backbone.keys()
    assert all(torch.equal(v, backbone[k]) for k, v in student.net.state_dict().items())
    assert not any(p.requires_grad for p in frozen.net.parameters()) and not frozen.net.training
    assert frozen.net is tnet and not any(m is tnet for m in student.modules())  # held beside the student
    assert student.state_dict().keys() == {f"net.{k}" for k in backbone} | {
        f"vid.{k}" for k in student.vid.state_dict()}
    with pytest.raises(ReproError, match="--model fsrcnn"):
        resolve("smoke", kind="student", model="vdsr", teacher=tcfg)
    with pytest.raises(ReproError, match="--scale 4"):
        resolve("smoke", kind="student", scale=2, teacher=tcfg)
    with pytest.raises(ReproError, match="only for students"):
        resolve("smoke", kind="baseline", teacher=tcfg)
    with pytest.raises(ReproError, match="needs its teacher"):
        resolve("smoke", kind="student", overrides=SHORT)
    other = resolve("smoke", kind="teacher", model="dssd_teacher", overrides=[*short, "run.seed=1"])
    with pytest.raises(ReproError, match="not the teacher these settings were resolved with"):
        train(resolve("smoke", kind="student", overrides=SHORT, teacher=other), out=tmp_path / "s",
              teacher_dir=teacher, progress=False)
    with pytest.raises(ReproError, match="not a teacher run"):
        read_teacher(train(resolve("smoke", overrides=short), out=tmp_path / "b", progress=False))


def test_pisr_teacher_logs_its_encoder_term(tmp_path):
    run = train(resolve("smoke", kind="teacher", model="pisr_teacher",
                        overrides=[*SHORT, "optim.iters_per_epoch=5"]), out=tmp_path / "p", progress=False)
    assert {"recon", "z_enc"} <= set(read_metrics(run)[0])


def test_evaluate_command_writes_per_image_and_means(tmp_path, capsys):
    run = train(resolve("smoke", overrides=SHORT), out=tmp_path / "r", progress=False)
    out = tmp_path / "eval.json"
    assert main(["evaluate", str(run), "--sets", "sample", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["means"][0]["dataset"] == "sample" and data["means"][0]["images"] == len(data["images"])
    assert {"dataset", "image", "scale", "psnr", "ssim"} <= set(data["images"][0])
    assert "sample" in capsys.readouterr().out
    assert main(["evaluate", str(run), "--sets", "Set6"]) == 2
    assert "valid choices" in capsys.readouterr().err
