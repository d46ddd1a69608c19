"""Training settings: profiles, `--set` typing and errors, run identity (no training here)."""

from __future__ import annotations

import tomllib

import pytest

from repro.cli import main
from repro.errors import ReproError
from repro.runs.config import from_dict, resolve, to_toml, valid_keys
from repro.runs.profiles import profile_names
from repro.train.engine import LRSchedule


def test_paper_profile_is_the_papers_protocol():
    cfg = resolve("paper", kind="teacher", model="dssd_teacher", scale=4)
    data = cfg.data
    assert (data.source, data.hr_patch, data.augment, data.in_channels) == ("div2k", 192, True, 1)
    assert cfg.optim.batch_size == 16
    assert cfg.optim.betas == [0.9, 0.999]
    assert (cfg.optim.lr, cfg.optim.min_lr, cfg.optim.schedule) == (1e-3, 1e-5, "cosine")
    assert (cfg.optim.epochs, cfg.optim.iters_per_epoch, cfg.optim.iterations) == (1000, 1000, 1_000_000)
    loss = cfg.loss
    assert (loss.deep_supervision, loss.levels, loss.pisr, loss.vid) == (1e-4, "deep", 1e-4, 1e-6)
    assert cfg.model.settings["downsampler"] == "hfrm" and cfg.model.settings["degradation"] == "sdm"


def test_shipped_profiles_resolve():
    assert {"paper", "smoke", "laptop"} <= set(profile_names())
    for name in profile_names():
        resolve(name)
    assert resolve("smoke").data.source == "sample"
    assert resolve("laptop").data.source == "t91"


def test_set_values_are_typed_by_the_field():
    cfg = resolve("paper", kind="teacher", model="dssd_teacher", overrides=[
        "optim.lr=5e-4", "data.augment=false", "val.sets=Set5,Set14", "optim.betas=[0.8, 0.99]",
        "model.downsampler=bicubic", "model.share_sdm_weights=no", "run.seed=7"])
    assert cfg.optim.lr == 5e-4 and isinstance(cfg.optim.lr, float)
    assert cfg.data.augment is False
    assert cfg.val.sets == ["Set5", "Set14"]
    assert cfg.optim.betas == [0.8, 0.99]
    assert cfg.model.settings["downsampler"] == "bicubic"
    assert cfg.model.settings["share_sdm_weights"] is False
    assert cfg.run.seed == 7


def test_bad_values_name_the_key():
    with pytest.raises(ReproError, match="optim.batch_size"):
        resolve("smoke", overrides=["optim.batch_size=many"])
    with pytest.raises(ReproError, match="key=value"):
        resolve("smoke", overrides=["optim.lr"])
    with pytest.raises(ReproError, match="valid choices: deep, first_level, none"):
        resolve("smoke", overrides=["loss.levels=all"])
    with pytest.raises(ReproError, match="log_every"):
        resolve("smoke", overrides=["run.checkpoint_every=7"])
    with pytest.raises(ReproError, match="teacher"):
        resolve("smoke", kind="baseline", model="dssd_teacher")
    with pytest.raises(ReproError, match="valid choices: .*fsrcnn"):
        resolve("smoke", model="no_such_net")


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ReproError) as exc:
        resolve("smoke", overrides=["optim.lrr=1"])
    message = str(exc.value)
    assert "optim.lrr" in message
    for key in ("optim.lr", "optim.iters_per_epoch", "loss.vid", "run.seed", "val.every"):
        assert key in message
    # a model setting is checked against the chosen model's own settings
    with pytest.raises(ReproError) as exc:
        resolve("smoke", kind="teacher", model="dssd_teacher", overrides=["model.downsamplr=hfrm"])
    assert "model.downsampler" in str(exc.value) and "model.degradation" in str(exc.value)
    assert "model.downsampler" in valid_keys("dssd_teacher")


def test_cli_unknown_key_is_one_line_exit_2(capsys):
    assert main(["train", "baseline", "--profile", "smoke", "--set", "optim.nope=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("repro: error: unknown setting 'optim.nope'") and "optim.lr" in err
    assert len(err.splitlines()) == 1


def test_unknown_profile_lists_profiles():
    with pytest.raises(ReproError, match="valid choices: .*paper.*smoke"):
        resolve("nope")


def test_run_identity():
    base = resolve("paper")
    assert resolve("paper", overrides=["optim.lr=0.001"]).hash() == base.hash()  # the default, spelt out
    assert resolve("paper", overrides=["data.num_workers=8", "run.device=cpu"]).hash() == base.hash()
    assert resolve("paper", overrides=["optim.lr=0.002"]).hash() != base.hash()
    assert resolve("paper", overrides=["run.seed=1"]).hash() != base.hash()
    teacher = resolve("paper", kind="teacher", model="dssd_teacher")
    assert teacher.default_run_name() == f"teacher-dssd_teacher-x4-{teacher.hash()[:8]}"
    assert resolve("paper", kind="teacher", model="dssd_teacher",
                   overrides=["model.downsampler=hfrm"]).hash() == teacher.hash()


def test_saved_settings_round_trip():
    cfg = resolve("smoke", kind="teacher", model="dssd_teacher", scale=3,
                  overrides=["model.degradation=cnn", "optim.lr=3e-4"])
    assert resolve(tomllib.loads(to_toml(cfg))).hash() == cfg.hash()
    assert from_dict(cfg.to_dict()).hash() == cfg.hash()


def test_cosine_schedule_ends():
    f = LRSchedule(100, 1e-5 / 1e-3)
    assert f(0) == 1.0
    assert f(50) == pytest.approx(0.5 * (1 + 1e-2))
    assert f(100) == pytest.approx(1e-2)
    assert LRSchedule(100, 0.01, "constant")(60) == 1.0
