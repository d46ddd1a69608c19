"""Training settings as plain dataclasses (nanoGPT style), profiles in TOML, `--set key=value` overrides.

Precedence: dataclass defaults < profile (`repro/profiles/<name>.toml` or a path) < command-line
arguments (`--model`, `--scale`) < `--set section.key=value`. A run is identified by the hash of its
resolved settings, less the few fields that only say *how* to run (workers, device, logging cadence),
so resuming with more workers or on another device finds the same run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from repro.errors import ReproError, unknown_choice

KINDS = ("baseline", "teacher", "student")
LEVELS = ("deep", "first_level", "none")
SCHEDULES = ("cosine", "constant")
RUNTIME = {"identity": False}  # field metadata: does not change the trained weights, not hashed


@dataclass
class ModelConfig:
    name: str = "fsrcnn"
    settings: dict[str, Any] = field(default_factory=dict)  # keyword settings for repro.models.create


@dataclass
class DataConfig:
    source: str = "div2k"  # one of repro.data.patches.TRAIN_SOURCES
    scale: int = 4
    hr_patch: int = 192  # HR patch side; the LR patch is hr_patch // scale
    augment: bool = True  # random horizontal flip and 90-degree rotations
    in_channels: int = 1  # 1 = Y channel
    num_workers: int = field(default=2, metadata=RUNTIME)


@dataclass
class OptimConfig:
    batch_size: int = 16  # global batch: under DDP every rank takes batch_size / world_size
    lr: float = 1e-3
    min_lr: float = 1e-5  # end of the cosine schedule
    schedule: str = "cosine"
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    weight_decay: float = 0.0
    epochs: int = 1000
    iters_per_epoch: int = 1000  # the paper never says; PISR's code counts 1000 iterations per epoch
    grad_clip: float = 0.0  # max gradient norm; 0 = off

    @property
    def iterations(self) -> int:
        return self.epochs * self.iters_per_epoch


@dataclass
class LossConfig:
    levels: str = "deep"  # deep supervision: all terms, 1/2-scale terms only, or none
    deep_supervision: float = 1e-4  # weight of every z_fre/z_deg term (Eq. 13)
    pisr: float = 1e-4  # PISR teacher: weight of L1(encoder output, LR)
    vid: float = 1e-6  # student: weight of the VID term (Eq. 18)


@dataclass
class ValConfig:
    every: int = field(default=10_000, metadata=RUNTIME)  # 0 = only at the end
    sets: list[str] = field(default_factory=lambda: ["Set5"], metadata=RUNTIME)


@dataclass
class RunConfig:
    seed: int = 0
    deterministic: bool = True  # torch.use_deterministic_algorithms (warn only) and seeded everything
    amp: bool = False  # CUDA only: bfloat16 autocast
    channels_last: bool = False  # CUDA only
    device: str = field(default="auto", metadata=RUNTIME)  # auto = cuda if available else cpu
    threads: int = field(default=0, metadata=RUNTIME)  # CPU threads for torch; 0 = torch's default
    checkpoint_every: int = field(default=1000, metadata=RUNTIME)
    log_every: int = field(default=100, metadata=RUNTIME)


@dataclass
class TrainConfig:
    kind: str = "baseline"
    teacher: str = ""  # a student's teacher: that run's identity hash (set from --teacher)
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
        out: dict[str, Any] = {"kind": self.kind, "teacher": self.teacher}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if dataclasses.is_dataclass(value):
                out[f.name] = {
                    g.name: getattr(value, g.name)
                    for g in dataclasses.fields(value)
                    if g.metadata.get("identity", True)
                }
        return out

    def hash(self) -> str:
        text = json.dumps(self.identity(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def default_run_name(self) -> str:
        return f"{self.kind}-{self.model.name}-x{self.data.scale}-{self.hash()[:8]}"


SECTIONS = {f.name: f.type for f in dataclasses.fields(TrainConfig) if f.name not in ("kind", "teacher")}


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
        keys += [f"model.{k}" for k in _model_settings(model_name) if k != "in_channels"]
    return keys


def _model_settings(name: str) -> dict[str, object]:
    from repro.models import model_info

    return model_info(name).settings


def parse_value(text: str, kind: Any, key: str) -> Any:
    """Turn the text of `--set key=text` into the field's type; a bad value names the key and type."""
    origin = typing.get_origin(kind)
    try:
        if kind is bool or isinstance(kind, bool):
            low = text.strip().lower()
            if low in ("true", "1", "yes", "on"):
                return True
            if low in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if kind is int:
            return int(text)
        if kind is float:
            return float(text)
        if kind is str:
            return text
        if origin is list:
            (item,) = typing.get_args(kind) or (str,)
            text = text.strip()
            if text.startswith("["):
                values = tomllib.loads(f"v = {text}")["v"]
            else:
                values = [v.strip() for v in text.split(",") if v.strip()]
            return [item(v) if item is not str else str(v) for v in values]
        # untyped (a model setting whose default is None or a dict): a TOML literal, else the string
        try:
            return tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            return text
    except (ValueError, TypeError) as exc:
        name = getattr(kind, "__name__", str(kind))
        raise ReproError(f"--set {key}={text}: expected a value of type {name}") from exc


def _check_value(key: str, value: Any, kind: Any) -> Any:
    """Type-check a value read from a TOML profile (ints are accepted where floats are expected)."""
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    base = typing.get_origin(kind) or kind
    if isinstance(base, type) and not isinstance(value, base) or (kind is int and isinstance(value, bool)):
        raise ReproError(f"setting {key} = {value!r}: expected {getattr(kind, '__name__', kind)}")
    return list(value) if base is list else value


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
    if parts == ["teacher"]:  # present in a saved config; `--teacher DIR` sets it for a new run
        cfg.teacher = str(value)
        return
    if len(parts) < 2 or parts[0] not in SECTIONS:
        raise _unknown_key(key, cfg.model.name)
    section, name = parts[0], ".".join(parts[1:])
    if section == "model" and name.startswith("settings."):
        name = name[len("settings."):]
    types_ = _section_types(section)
    if section == "model" and name not in types_:
        settings = _model_settings(cfg.model.name)
        if name == "in_channels":
            raise ReproError("set data.in_channels, not model.in_channels (the data and the model share it)")
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
    value = parse_value(value, kind, key) if from_text else _check_value(key, value, kind)
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


# ---------------------------------------------------------------- profiles


def profile_dir() -> Path:
    return Path(str(resources.files("repro") / "profiles"))


def profile_names() -> list[str]:
    return sorted(p.stem for p in profile_dir().glob("*.toml"))


def load_profile(name_or_path: str) -> dict[str, Any]:
    """A shipped profile by name (`paper`, `smoke`, `laptop`) or a TOML file by path."""
    path = Path(name_or_path)
    if not (path.suffix == ".toml" and path.exists()):
        if name_or_path not in profile_names():
            if path.suffix == ".toml":
                raise ReproError(f"profile file {path} not found")
            raise unknown_choice("profile", name_or_path, profile_names())
        path = profile_dir() / f"{name_or_path}.toml"
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ReproError(f"profile {path} is not valid TOML: {exc}") from exc


def resolve(
    profile: str | dict[str, Any] | None = None,
    *,
    kind: str | None = None,
    model: str | None = None,
    scale: int | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> TrainConfig:
    """Defaults, then the profile, then kind/model/scale, then `--set key=value` overrides."""
    cfg = TrainConfig()
    data = load_profile(profile) if isinstance(profile, str) else dict(profile or {})
    items = _flatten(data)
    # the model name first, so that model settings in the profile are checked against it
    for key, value in items:
        if key == "model.name":
            apply(cfg, key, value, from_text=False)
    pairs: list[tuple[str, str]] = []
    for text in overrides:
        if "=" not in text:
            raise ReproError(f"--set {text!r}: expected key=value, e.g. optim.lr=5e-4")
        key, value = text.split("=", 1)
        pairs.append((key.strip(), value.strip()))
    if model:
        cfg.model.name = model
    for key, value in pairs:
        if key == "model.name":
            cfg.model.name = value
    _model_settings(cfg.model.name)  # an unknown model name fails here, listing the valid ones
    for key, value in items:
        if key != "model.name":
            apply(cfg, key, value, from_text=False)
    if kind is not None:
        apply(cfg, "kind", kind, from_text=False)
    if scale is not None:
        cfg.data.scale = int(scale)
    for key, value in pairs:
        if key != "model.name":
            apply(cfg, key, value, from_text=True)
    # the resolved settings name every model setting, so leaving one at its default and setting it to
    # its default are the same run
    defaults = {k: v for k, v in _model_settings(cfg.model.name).items() if k != "in_channels"}
    cfg.model.settings = {**defaults, **cfg.model.settings}
    validate(cfg)
    return cfg


def validate(cfg: TrainConfig) -> None:
    """Cross-field checks, each error naming the setting and the fix."""
    if cfg.kind not in KINDS:
        raise unknown_choice("kind", cfg.kind, KINDS)
    if cfg.loss.levels not in LEVELS:
        raise unknown_choice("loss.levels", cfg.loss.levels, LEVELS)
    if cfg.optim.schedule not in SCHEDULES:
        raise unknown_choice("optim.schedule", cfg.optim.schedule, SCHEDULES)
    if cfg.data.scale not in (2, 3, 4):
        raise unknown_choice("scale", cfg.data.scale, (2, 3, 4))
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
    if cfg.val.every < 0:
        raise ReproError("val.every must be >= 0 (0 = validate only at the end)")
    if cfg.run.checkpoint_every % cfg.run.log_every:
        raise ReproError(
            f"run.checkpoint_every ({cfg.run.checkpoint_every}) must be a multiple of run.log_every "
            f"({cfg.run.log_every}) so that a resumed run logs exactly what an uninterrupted one does"
        )
    teacher = cfg.model.name.endswith("_teacher")
    if cfg.kind == "teacher" and not teacher:
        raise ReproError(f"`train teacher` needs a teacher model (e.g. dssd_teacher, pisr_teacher), "
                         f"got {cfg.model.name!r}")
    if cfg.kind != "teacher" and teacher:
        raise ReproError(f"{cfg.model.name!r} is a teacher: train it with `repro train teacher`")


# ---------------------------------------------------------------- saving


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if value is None:
        raise ReproError("a setting of None cannot be written to TOML; leave it out instead")
    raise TypeError(f"cannot write {type(value).__name__} to TOML")


def to_toml(cfg: TrainConfig) -> str:
    """The resolved settings as a TOML profile (loading it back gives the same run hash)."""
    data = cfg.to_dict()
    lines = [f"kind = {_toml_value(data.pop('kind'))}", f"teacher = {_toml_value(data.pop('teacher'))}"]
    for section, values in data.items():
        settings = values.pop("settings", None) if section == "model" else None
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        if settings:
            lines += ["", "[model.settings]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items() if v is not None]
    return "\n".join(lines) + "\n"


def from_dict(data: dict[str, Any]) -> TrainConfig:
    """Rebuild a config saved as config.json (or config.toml) without re-reading any profile."""
    return resolve(data)
