"""Training settings as plain dataclasses (nanoGPT style), profiles in TOML, `--set key=value` overrides.

Precedence: dataclass defaults < profile (`repro.runs.profiles`) < command-line arguments (`--model`,
`--scale`) < `--set section.key=value`; a student then adopts its teacher's backbone (`resolve(...,
teacher=...)`: the one place that happens). A run is identified by the hash of its resolved settings,
less the few fields that only say *how* to run (workers, device, logging cadence), so resuming with
more workers or on another device finds the same run. Every open decision of the paper is a setting
here; docs/protocol.md lists them with their defaults.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from repro.errors import ReproError, unknown_choice
from repro.runs.profiles import load_profile
from repro.runs.values import check_value, parse_value, toml_value
from repro.scales import SCALES, check_scale

KINDS = ("baseline", "teacher", "student")
LEVELS = ("deep", "first_level", "none")
SCHEDULES = ("cosine", "constant")
VID_DENSITIES = ("laplace", "gaussian")
RUNTIME = {"identity": False}  # field metadata: does not change the trained weights, not hashed
# field metadata for a setting added after runs existed: hashed only when it differs from its default, so
# the runs trained before it keep their hash
HASHED_IF_SET = {"identity": "unless_default"}
COMPILE_MODES = ("off", "default", "reduce-overhead", "max-autotune")  # run.compile: torch.compile's mode
# model settings that come from a config field rather than `model.settings`
_FROM_FIELDS = {"in_channels": "data.in_channels", "shared_prelu": "model.shared_prelu"}


@dataclass
class ModelConfig:
    name: str = "fsrcnn"
    # one PReLU slope per layer (PISR's code) instead of one per channel: every PReLU of the run's
    # networks, the teacher's downsampler, degradation and backbone, the student and its VID branches
    shared_prelu: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # keyword settings for repro.models.create


@dataclass
class DataConfig:
    source: str = "div2k"  # one of repro.data.train_set.TRAIN_SOURCES
    scale: int = 4
    hr_patch: int = 192  # HR patch side; the LR patch is hr_patch // scale
    augment: bool = True  # random horizontal flip and 90-degree rotations
    in_channels: int = 1  # 1 = Y channel
    num_workers: int = field(default=2, metadata=RUNTIME)
    # keep the decoded training set on the training device and cut patches there (same patches, no
    # worker processes, no host-to-device copy per step)
    on_device: bool = field(default=False, metadata=RUNTIME)
    # the patch sampler's version (repro.data.sampler.SAMPLER_VERSION): batches of another version are
    # another run, so it is hashed; only the current version can train
    sampler: int = 2


@dataclass
class OptimConfig:
    batch_size: int = 16  # global batch: under DDP every rank takes batch_size / world_size
    lr: float = 1e-3  # baselines and teachers
    min_lr: float = 1e-5  # end of the cosine schedule
    # a student's schedule: the paper gives one schedule for all (1e-3 -> 1e-5), as PISR's final student
    # config does (configs/fsrcnn/step2.yml at f66b979; its first commit started at 1e-4)
    student_lr: float = 1e-3
    student_min_lr: float = 1e-5
    schedule: str = "cosine"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    epochs: int = 1000
    iters_per_epoch: int = 1000  # the paper never says; PISR's code counts 1000 iterations per epoch
    grad_clip: float = 0.0  # max gradient norm; 0 = off
    # Adam's fused implementation (one kernel for all parameters; rounds a little differently)
    fused: bool = field(default=False, metadata=HASHED_IF_SET)

    @property
    def iterations(self) -> int:
        return self.epochs * self.iters_per_epoch

    def lr_range(self, kind: str) -> tuple[float, float]:
        """(start, end) learning rate of the schedule a run of `kind` follows."""
        return (self.student_lr, self.student_min_lr) if kind == "student" else (self.lr, self.min_lr)


@dataclass
class LossConfig:
    levels: str = "deep"  # deep supervision: all terms, 1/2-scale terms only, or none
    deep_supervision: float = 1e-4  # weight of every z_fre/z_deg term (Eq. 13)
    pisr: float = 1e-4  # PISR teacher: weight of L1(encoder output, LR)
    vid: float = 1e-6  # student: weight of the VID term (Eq. 18)
    # the density VID fits: "laplace" (the paper's Eq. 17, and PISR's final student config) or "gaussian"
    # (PISR's `vid_loss` default, used by its first student config: s = 1e-3 softplus + 1e-8)
    vid_density: str = "laplace"
    # the Laplace scale b = vid_scale_factor * softplus(.) + vid_eps: Eq. 17 has no factor (1) and names no
    # eps (1e-6 here); PISR's code uses 0.1 and 1e-8
    vid_scale_factor: float = field(default=1.0, metadata=HASHED_IF_SET)
    vid_eps: float = field(default=1e-6, metadata=HASHED_IF_SET)


@dataclass
class ValConfig:
    every: int = field(default=10_000, metadata=RUNTIME)  # 0 = only at the end
    sets: list[str] = field(default_factory=lambda: ["Set5"], metadata=RUNTIME)


@dataclass
class RunConfig:
    seed: int = 0
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn only) and seeded everything
    amp: bool = False  # bfloat16 autocast on CUDA (on a CPU: a note, no effect, so a run can resume there)
    channels_last: bool = False  # NHWC memory layout for the networks and their inputs
    compile: str = field(default="off", metadata=HASHED_IF_SET)  # torch.compile mode (COMPILE_MODES)
    # the whole step captured as one CUDA graph and replayed (CUDA only; repro.train.step.GraphStep)
    cuda_graph: bool = field(default=False, metadata=HASHED_IF_SET)
    device: str = field(default="auto", metadata=RUNTIME)  # auto = cuda if available else cpu
    threads: int = field(default=0, metadata=RUNTIME)  # CPU threads for torch; 0 = torch's default
    checkpoint_every: int = field(default=1000, metadata=RUNTIME)
    log_every: int = field(default=100, metadata=RUNTIME)


def _hashed(f: dataclasses.Field, value: Any) -> bool:
    identity = f.metadata.get("identity", True)
    return identity is True or (identity == "unless_default" and value != f.default)


@dataclass
class TrainConfig:
    kind: str = "baseline"
    teacher_hash: str = ""  # a student's teacher: the settings hash of that run (set from --teacher DIR)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    val: ValConfig = field(default_factory=ValConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def identity(self) -> dict[str, Any]:
        """The settings that decide the trained weights (what the run hash covers)."""
        out: dict[str, Any] = {"kind": self.kind, "teacher_hash": self.teacher_hash}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                out[f.name] = {g.name: getattr(value, g.name) for g in dataclasses.fields(value)
                               if _hashed(g, getattr(value, g.name))}
        return out

    def hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def default_run_name(self) -> str:
        return f"{self.kind}-{self.model.name}-x{self.data.scale}-{self.hash()[:8]}"

    def network_settings(self) -> dict[str, Any]:
        """Keyword settings for `repro.models.create`: `model.settings`, with the settings that come
        from config fields (`model.shared_prelu`, `data.in_channels`) filled in where the model takes
        them (in the model's own order, `in_channels` last)."""
        accepted = _model_settings(self.model.name)
        out = {k: (self.model.shared_prelu if k == "shared_prelu" else self.model.settings[k])
               for k in accepted if k != "in_channels"}
        if "in_channels" in accepted:
            out["in_channels"] = self.data.in_channels
        return out


SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name not in ("kind", "teacher_hash")}


# ---------------------------------------------------------------- keys, types and parsing


def _section_types(section: str) -> dict[str, Any]:
    cls = type(getattr(TrainConfig(), section))
    return typing.get_type_hints(cls)


def valid_keys(model_name: str | None = None) -> list[str]:
    """Every `section.key` that `--set` accepts (model settings of `model_name` included)."""
    keys = ["kind"]
    for section in SECTIONS:
        keys += [f"{section}.{k}" for k in _section_types(section) if k != "settings"]
    if model_name:
        keys += [f"model.{k}" for k in _model_settings(model_name) if k not in _FROM_FIELDS]
    return keys


def _model_info(name: str):
    from repro.models import model_info

    return model_info(name)


def _model_names(role: str) -> list[str]:
    from repro.models import model_names

    return model_names(role)


def _model_settings(name: str) -> dict[str, object]:
    return _model_info(name).settings


def _own_model_settings(name: str) -> dict[str, object]:
    """A model's settings that live in `model.settings` (defaults), less those set by config fields."""
    return {k: v for k, v in _model_settings(name).items() if k not in _FROM_FIELDS}


def _unknown_key(key: str, model_name: str | None) -> ReproError:
    return unknown_choice("setting", key, valid_keys(model_name))


def apply(cfg: TrainConfig, key: str, value: Any, *, from_text: bool) -> None:
    """Set one dotted key; model settings (`model.<setting>`) go to `cfg.model.settings`."""
    parts = key.split(".")
    if parts == ["kind"]:
        if value not in KINDS:
            raise unknown_choice("kind", value, KINDS)
        cfg.kind = value
        return
    if parts == ["teacher_hash"]:  # present in a saved config; `--teacher DIR` sets it for a new run
        cfg.teacher_hash = str(value)
        return
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise _unknown_key(key, cfg.model.name)
    section, name = parts[0], ".".join(parts[1:])
    if section == "model" and name.startswith("settings."):
        name = name[len("settings."):]
    types_ = _section_types(section)
    if section == "model" and name not in types_:
        settings = _model_settings(cfg.model.name)
        if name in _FROM_FIELDS:
            raise ReproError(f"set {_FROM_FIELDS[name]}, not model.settings.{name} (one setting for "
                             "every network of the run)")
        if name not in settings:
            raise _unknown_key(key, cfg.model.name)
        default = settings[name]
        kind = type(default) if isinstance(default, bool | int | float | str) else types.NoneType
        if kind is types.NoneType:
            kind = Any
        cfg.model.settings[name] = parse_value(value, kind, key) if from_text else value
        return
    if name not in types_ or name == "settings":
        raise _unknown_key(key, cfg.model.name)
    kind = types_[name]
    value = parse_value(value, kind, key) if from_text else check_value(key, value, kind)
    setattr(getattr(cfg, section), name, value)


def _flatten(data: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    items: list[tuple[str, Any]] = []
    for k, v in data.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and key != "model.settings" and not key.startswith("model.settings."):
            items += _flatten(v, key + ".")
        elif key == "model.settings":
            items += [(f"model.settings.{sk}", sv) for sk, sv in v.items()]
        else:
            items.append((key, v))
    return items


# ---------------------------------------------------------------- resolving


def resolve(
    profile: str | dict[str, Any] | None = None,
    *,
    kind: str | None = None,
    model: str | None = None,
    scale: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    teacher: TrainConfig | None = None,
) -> TrainConfig:
    """Defaults, then the profile, then kind/model/scale, then `--set key=value` overrides; a student
    then adopts `teacher`'s settings (the resolved settings of its finished teacher run)."""
    cfg = TrainConfig()
    data = load_profile(profile) if isinstance(profile, str) else dict(profile or {})
    items = _flatten(data)
    pairs: list[tuple[str, str]] = []
    for text in overrides:
        if "=" not in text:
            raise ReproError(f"--set {text!r}: expected key=value, e.g. optim.lr=5e-4")
        key, value = text.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    def given(key: str, argument: str | None) -> list[Any]:  # in order of precedence
        return [v for k, v in items if k == key] + ([argument] if argument else []) \
            + [v for k, v in pairs if k == key]

    kinds = given("kind", kind)
    student = bool(kinds) and kinds[-1] == "student"
    # the model name first, so that model settings are checked against it; a student's is its
    # teacher's backbone
    names = given("model.name", model)
    if teacher is not None and student:
        backbone = teacher.model.settings["backbone"]  # every teacher names the backbone its student is
        if names and names[-1] != backbone:
            raise ReproError(f"the teacher's backbone is {backbone!r} but the student is {names[-1]!r}; "
                             f"use --model {backbone} (or leave --model out)")
        names.append(backbone)
    if names:
        cfg.model.name = str(names[-1])
    _model_settings(cfg.model.name)  # an unknown model name fails here, listing the valid ones
    for key, value in items:
        if key != "model.name":
            apply(cfg, key, value, from_text=False)
    if kind is not None:
        apply(cfg, "kind", kind, from_text=False)
    if scale is not None:
        cfg.data.scale = check_scale(int(scale))
    for key, value in pairs:
        if key != "model.name":
            apply(cfg, key, value, from_text=True)
    if teacher is not None and student:
        _adopt_teacher(cfg, teacher, scale_given=scale is not None)
    elif teacher is not None:
        cfg.teacher_hash = teacher.hash()  # refused below: only a student takes a teacher
    # the resolved settings name every model setting, so leaving one at its default and setting it to
    # its default are the same run
    cfg.model.settings = {**_own_model_settings(cfg.model.name), **cfg.model.settings}
    check(cfg)
    return cfg


def _adopt_teacher(cfg: TrainConfig, teacher: TrainConfig, scale_given: bool) -> None:
    """A student IS its teacher's backbone (it starts from its weights): network, its settings, scale,
    channels and PReLU sharing come from the teacher, whatever the profile says."""
    if teacher.kind != "teacher":
        raise ReproError(f"a student's teacher must be a teacher run, not a {teacher.kind} run")
    if scale_given and cfg.data.scale != teacher.data.scale:
        raise ReproError(f"the teacher was trained at x{teacher.data.scale}; the student must match "
                         f"(--scale {teacher.data.scale}, or leave --scale out)")
    if cfg.data.in_channels != teacher.data.in_channels:
        raise ReproError(f"the teacher was trained with {teacher.data.in_channels} channel(s); set "
                         f"data.in_channels={teacher.data.in_channels} for the student")
    cfg.data.scale = teacher.data.scale
    backbone_settings = dict(teacher.model.settings.get("backbone_settings") or {})
    backbone_settings.pop("shared_prelu", None)  # model.shared_prelu already says it for every network
    cfg.model.settings = {**_own_model_settings(cfg.model.name), **backbone_settings}
    cfg.model.shared_prelu = teacher.model.shared_prelu
    cfg.teacher_hash = teacher.hash()


def _check_roles(cfg: TrainConfig) -> None:
    """The run's kind against its network's role and its teacher (the one place both are checked)."""
    info = _model_info(cfg.model.name)
    if cfg.kind == "teacher" and info.role != "teacher":
        teachers = ", ".join(_model_names("teacher"))
        raise ReproError(f"`train teacher` needs a teacher model ({teachers}), got {cfg.model.name!r}")
    if cfg.kind != "teacher" and info.role == "teacher":
        raise ReproError(f"{cfg.model.name!r} is a teacher: train it with `repro train teacher`")
    if cfg.kind == "student" and not cfg.teacher_hash:
        raise ReproError("a student needs its teacher: pass --teacher RUN_DIR (a finished teacher run)")
    if cfg.kind != "student" and cfg.teacher_hash:
        raise ReproError(f"--teacher is only for students, not for a {cfg.kind} run")
    if cfg.kind == "teacher" and info.check is not None:
        info.check(cfg.model.settings, cfg.loss, cfg.data.scale)  # e.g. loss.levels dropping a term


def check(cfg: TrainConfig) -> None:
    """Cross-field checks, each error naming the setting and the fix."""
    if cfg.kind not in KINDS:
        raise unknown_choice("kind", cfg.kind, KINDS)
    if cfg.loss.levels not in LEVELS:
        raise unknown_choice("loss.levels", cfg.loss.levels, LEVELS)
    if cfg.loss.vid_density not in VID_DENSITIES:
        raise unknown_choice("loss.vid_density", cfg.loss.vid_density, VID_DENSITIES)
    if cfg.loss.vid_scale_factor <= 0 or cfg.loss.vid_eps <= 0:
        raise ReproError("loss.vid_scale_factor and loss.vid_eps must be positive")
    laplace_form = (cfg.loss.vid_scale_factor, cfg.loss.vid_eps) != (LossConfig.vid_scale_factor,
                                                                     LossConfig.vid_eps)
    if cfg.loss.vid_density == "gaussian" and laplace_form:
        raise ReproError("loss.vid_scale_factor and loss.vid_eps shape the Laplace density; the Gaussian has "
                         "PISR's fixed form (1e-3 softplus + 1e-8): leave them unset, or use "
                         "loss.vid_density=laplace")
    if cfg.optim.schedule not in SCHEDULES:
        raise unknown_choice("optim.schedule", cfg.optim.schedule, SCHEDULES)
    if cfg.run.compile not in COMPILE_MODES:
        raise unknown_choice("run.compile", cfg.run.compile, COMPILE_MODES)
    if cfg.run.cuda_graph and cfg.run.compile != "off":
        raise ReproError(f"run.cuda_graph and run.compile={cfg.run.compile} both capture the step: "
                         "choose one (run.compile=off, or run.cuda_graph=false)")
    from repro.data.sampler import SAMPLER_VERSION  # here: the parser of `repro --help` imports no torch

    if cfg.data.sampler != SAMPLER_VERSION:
        raise ReproError(f"data.sampler={cfg.data.sampler}: only the patch sampler version "
                         f"{SAMPLER_VERSION} can train (version 1 drew other patches; its runs cannot be "
                         "resumed by this version)")
    if cfg.data.scale not in SCALES:
        raise unknown_choice("scale", cfg.data.scale, SCALES)
    if cfg.data.hr_patch % cfg.data.scale:
        raise ReproError(f"data.hr_patch {cfg.data.hr_patch} must be a multiple of the scale "
                         f"{cfg.data.scale}")
    if len(cfg.optim.betas) != 2:
        raise ReproError(f"optim.betas must be two numbers, got {cfg.optim.betas}")
    for key in ("optim.batch_size", "optim.epochs", "optim.iters_per_epoch",
                "run.checkpoint_every", "run.log_every"):
        section, name = key.split(".")
        if getattr(getattr(cfg, section), name) < 1:
            raise ReproError(f"{key} must be at least 1")
    for key in ("optim.lr", "optim.min_lr", "optim.student_lr", "optim.student_min_lr"):
        if getattr(cfg.optim, key.split(".")[1]) <= 0:
            raise ReproError(f"{key} must be positive")
    if cfg.val.every < 0:
        raise ReproError("val.every must be >= 0 (0 = validate only at the end)")
    if cfg.run.checkpoint_every % cfg.run.log_every:
        raise ReproError(
            f"run.checkpoint_every ({cfg.run.checkpoint_every}) must be a multiple of run.log_every "
            f"({cfg.run.log_every}) so that a resumed run logs exactly what an uninterrupted one does"
        )
    _check_roles(cfg)


# ---------------------------------------------------------------- saving


def to_toml(cfg: TrainConfig) -> str:
    """The resolved settings as a TOML profile (loading it back gives the same run hash)."""
    data = cfg.to_dict()
    lines = [f"kind = {toml_value(data.pop('kind'))}",
             f"teacher_hash = {toml_value(data.pop('teacher_hash'))}"]
    for section, values in data.items():
        settings = values.pop("settings", None) if section == "model" else None
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {toml_value(v)}" for k, v in values.items()]
        if settings:
            lines += ["", "[model.settings]"]
            lines += [f"{k} = {toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved as config.json (or config.toml) without re-reading any profile."""
    return resolve(data)
