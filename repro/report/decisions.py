"""The open decisions of the paper and the settings in force: for each choice the paper leaves open (the
table "Open decisions" of docs/protocol.md), its default, the setting that holds it and the values the
runs of these results used; and where the paper's text and PISR's code differ, which reading ran."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from repro.report.inputs import ReportInputs, Run


@dataclass(frozen=True)
class Decision:
    question: str
    default: str
    setting: str | None  # dotted key of the run settings; None when fixed by the code
    kinds: tuple[str, ...] = ()  # the kinds of run it concerns (all when empty)


# The rows of docs/protocol.md's "Open decisions" (tests/test_report.py checks that they agree).
DECISIONS = (
    Decision('length of an "epoch"', "1000 iterations (PISR's code), so 1M iterations",
             "optim.iters_per_epoch"),
    Decision("HFRM/SDM levels at x2 / x3", "one step, with the strided conv at stride 2 / 3", None),
    Decision("SDM weights", "its own (Eq. 4-5 reuse the symbol G)", "model.share_sdm_weights", ("teacher",)),
    Decision("PReLU slopes", "one per channel", "model.shared_prelu"),
    Decision("student schedule", "1e-3 cosine to 1e-5", "optim.student_lr", ("student",)),
    Decision("student schedule (end)", "1e-5", "optim.student_min_lr", ("student",)),
    Decision("VID density", "Laplace (Eq. 17); Gaussian = PISR's first student config", "loss.vid_density",
             ("student",)),
    Decision("VID scale b", "softplus(.) + 1e-6 (Eq. 17 names no eps)", "loss.vid_eps", ("student",)),
    Decision("colour", "Y channel (the 13k parameter count is a Y count)", "data.in_channels"),
    Decision("Table 1 `bicubic` teacher input", "exactly the batch's LR file", None),
    Decision("Table 2 `cnn` degradation", "PISR-encoder shape, not recursive", "model.cnn_first_level",
             ("teacher",)),
    Decision("supervision of the Table 1/2 rows", "full deep supervision", "loss.levels", ("teacher",)),
    Decision("features VDSR/IDN distil", "the last feature map before reconstruction", None),
    Decision("grayscale images", "taken as gray, in training as in evaluation", None),
    Decision("x3 MultiAdds input size", "1280/3 x 720/3 kept fractional (area)", None),
)

# Where the paper's text (the default) and PISR's code (its final configs, f66b979) differ, and where they
# agree although an earlier reading said otherwise: setting -> (text, code); the `pisr_code` profile
# applies the code's reading.
READINGS = {  # setting -> (paper text, PISR code)
    "optim.student_lr": (1e-3, 1e-3),
    "optim.student_min_lr": (1e-5, 1e-5),
    "loss.vid_density": ("laplace", "laplace"),
    "loss.vid_scale_factor": (1.0, 0.1),
    "loss.vid_eps": (1e-6, 1e-8),
    "model.shared_prelu": (False, True),
}
NOT_SET = "(model default)"


def setting_of(run: Run, key: str) -> Any:
    """A dotted setting of a run; model keys may sit under model.settings; NOT_SET when absent."""
    node: Any = run.settings
    parts = key.split(".")
    for i, part in enumerate(parts):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif i == 1 and parts[0] == "model" and isinstance(node, dict) and part in node.get("settings", {}):
            node = node["settings"][part]
        else:
            return NOT_SET
    return node


def _values(runs: Iterable[Run], key: str) -> str:
    seen: dict[str, list[str]] = {}
    for run in runs:
        value = setting_of(run, key)
        if value is not NOT_SET:
            seen.setdefault(str(value), []).append(run.kind)
    if not seen:
        return "-"
    return "; ".join(f"{v} ({', '.join(sorted(set(kinds)))})" if len(seen) > 1 else v
                     for v, kinds in seen.items())


def settings_in_force(inputs: ReportInputs) -> list[dict[str, str]]:
    """One line per open decision: question, default, setting, values used by these runs."""
    runs = list(inputs.runs.values())
    def concerned(d: Decision) -> list[Run]:
        return [r for r in runs if not d.kinds or r.kind in d.kinds]

    return [{"question": d.question, "default": d.default, "setting": d.setting or "(fixed)",
             "used": _values(concerned(d), d.setting) if d.setting else "as the default"} for d in DECISIONS]


def reading(inputs: ReportInputs) -> list[dict[str, str]]:
    """For each text/code difference: both readings and which one these runs used."""
    runs = list(inputs.runs.values())
    out = []
    for key, (text, code) in READINGS.items():
        kinds = next((d.kinds for d in DECISIONS if d.setting == key), ())
        used = {setting_of(r, key) for r in runs if not kinds or r.kind in kinds} - {NOT_SET}
        if not used:
            which = "- (no run it concerns)"
        elif text == code and used == {text}:
            which = "both (they agree)"
        elif used == {text}:
            which = "paper text"
        elif used == {code}:
            which = "PISR code"
        elif used <= {text, code}:
            which = "mixed"
        else:
            which = "neither (the profile's own value)"
        out.append({"setting": key, "text": str(text), "code": str(code),
                    "used": ", ".join(sorted(map(str, used))) or "-", "reading": which})
    return out
