"""MultiAdds at a 1280x720 HR output, counted three ways that must agree.

- `hook_macs`: our own counter. Forward hooks on every Conv/ConvTranspose/Linear module record each
  call (so a recursion applied 16 times counts 16 times); weights only, no bias, no activations.
  A convolution costs k*k*Cin/groups*Cout per OUTPUT pixel; a transposed convolution k*k*Cin*Cout/groups
  per INPUT pixel (true MACs). The CARN-era "legacy" figure charges the transposed convolution per
  OUTPUT pixel, as thop 0.1.1 did: that is what the published 6.0G of FSRCNN is.
- `fvcore_macs`: fvcore's `FlopCountAnalysis` (jit trace). It counts conv (both kinds, transposed per
  input pixel), linear/matmul/einsum, batch norm and bilinear upsampling; it skips everything else.
- `thop_macs`: ultralytics-thop's `profile` (module hooks plus a mode for functional matmul/einsum).
  It also charges PReLU (1 op/element) and normalisation, and misses functional convolutions.

Each tool's count is split by category so that the weight MACs (conv, conv_transpose, linear) can be
compared exactly and every difference is attributed to the operation one tool counts and the other
does not (`compare_tools`).

Big networks (DRCN is ~18 TMAC at 1280x720) are never run for real at full size here: our counter and
thop run on the meta device (shapes only, exact); fvcore's jit trace cannot run on meta, so it counts
at ten tiny LR sizes and extrapolates, but only after checking that every category is exactly
of the polynomial form `extrapolate` checks; otherwise it runs at the full size.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from fractions import Fraction

import torch
from torch import nn

from repro.complexity.conventions import ROUNDINGS
from repro.models.counting import run_with_hooks

HR_SIZE = (720, 1280)
"""(height, width) of the HR output the MultiAdds are quoted at (the paper: 1280x720)."""

LR_ROUNDING = "area"
"""How MultiAdds treat an HR size the scale does not divide (x3: 1280/3 = 426.67).

`area` (default for MultiAdds): the count of a 1280x720 output exactly, i.e. at the fractional LR size
240 x 426.67 at x3 (for convolutions, MACs per LR pixel times the LR area 1280*720/s**2 = 102,400, plus
any per-image constant), from the exact polynomial `extrapolate` measures. This is the convention of
the CARN-era reference figures (CARN 118.79 G, IMDN 71.45 G at x3). `floor`: LR 240x426, output
720x1278 -- an input the network really runs on, which is why the runtime column always uses it
(`RUNTIME_ROUNDING`).
`ceil`: 240x427 (output 720x1281). x2 and x4 divide 1280 and 720, so the three agree there; at x3 floor
is 0.16% below area.
"""
RUNTIME_ROUNDING = "floor"
"""LR size of the timed forward at x3 (a tensor needs whole pixels): 240x426."""

SAMPLE_GRID = (3, 4, 5)
"""LR heights and widths of the extrapolation grid (3x3 sizes fix any polynomial of degree <= 2 in h, w)."""
CHECK_SIZE = (6, 7)
"""A tenth LR size off the grid, where the interpolated polynomial must predict the count exactly."""

WEIGHT_KINDS = ("conv", "conv_transpose", "linear")
MATMUL = "functional matmul"  # products outside any Linear, e.g. the dense-matrix bicubic resize


def lr_size(scale: int, rounding: str = LR_ROUNDING, hr: tuple[int, int] = HR_SIZE) -> tuple[int, int]:
    """LR (height, width) whose x`scale` output is the HR size (`area` runs on the floor size)."""
    if rounding not in ROUNDINGS:
        from repro.errors import unknown_choice

        raise unknown_choice("LR rounding", rounding, ROUNDINGS)
    op = math.ceil if rounding == "ceil" else math.floor
    return op(hr[0] / scale), op(hr[1] / scale)


def input_channels(model: nn.Module) -> int:
    """Channels the network takes: its `in_channels` attribute, else its first convolution's."""
    channels = getattr(model, "in_channels", None)
    if isinstance(channels, int):
        return channels
    for m in model.modules():
        if isinstance(m, nn.modules.conv._ConvNd | nn.Linear):
            return m.in_channels if not isinstance(m, nn.Linear) else m.in_features
    raise ValueError(f"cannot tell the input channels of {type(model).__name__}")


@dataclass
class Counts:
    """MACs by category at one input size, with how they were obtained."""

    by_kind: dict[str, int]
    method: str  # "meta", "cpu" (a real forward at the full size) or "extrapolated"
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def weight(self) -> int:
        return sum(self.by_kind.get(k, 0) for k in WEIGHT_KINDS)

    @property
    def total(self) -> int:
        return sum(self.by_kind.values())


# ---------------------------------------------------------------- our counter


def _hook_counts(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    """Run `model(x)` once with hooks on every conv/deconv/linear; true and legacy MACs per kind."""
    counts: Counter[str] = Counter()

    def hook(_name: str, m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        counts["calls"] += 1
        if isinstance(m, nn.modules.conv._ConvTransposeNd):
            counts["conv_transpose"] += _hook_counts_single(m, inputs[0], out)
            # legacy (CARN era, thop 0.1.1): the transposed conv charged per OUTPUT pixel
            k = math.prod(m.kernel_size)
            counts["legacy_conv_transpose"] += out.numel() * (m.in_channels // m.groups) * k
        elif isinstance(m, nn.modules.conv._ConvNd):
            counts["conv"] += _hook_counts_single(m, inputs[0], out)
        else:
            counts["linear"] += _hook_counts_single(m, inputs[0], out)

    run_with_hooks(model, x, hook)
    return dict(counts)


def _runner(counter: Callable[[nn.Module, torch.Tensor], dict[str, int]], model: nn.Module,
            device: str) -> Callable[[tuple[int, int]], dict[str, int]]:
    """`counter` on a private eval-mode copy of `model` on `device`, as a function of the LR size."""
    net = copy.deepcopy(model).to(device).eval()
    channels = input_channels(model)
    make = torch.empty if device == "meta" else torch.rand

    def run(hw: tuple[int, int]) -> dict[str, int]:
        return counter(net, make(1, channels, *hw, device=device))

    return run


def _lagrange(nodes: tuple[int, ...], x: Fraction) -> list[Fraction]:
    out = []
    for i, xi in enumerate(nodes):
        term = Fraction(1)
        for j, xj in enumerate(nodes):
            if j != i:
                term *= (x - xj) / Fraction(xi - xj)
        out.append(term)
    return out


def extrapolate(count_at: Callable[[tuple[int, int]], dict[str, int]], target: tuple[Fraction, Fraction],
                grid: tuple[int, ...] = SAMPLE_GRID, check: tuple[int, int] = CHECK_SIZE
                ) -> dict[str, int | float] | None:
    """Counts at LR size `target` from tiny inputs, or None unless that is exact.

    Every count here is a polynomial in the LR height h and width w: a*h*w (+ d for per-image work
    such as IMDN's channel attention) for convolutions, h^2*w and h*w^2 terms for the dense-matrix
    bicubic resize. The 3x3 grid interpolates any polynomial of degree <= 2 in each of h and w
    exactly (Lagrange, in fractions); a tenth size checks that the counts really are of that form,
    and any mismatch (a strided layer that rounds, a size-dependent branch) returns None.
    """
    samples = {(h, w): count_at((h, w)) for h in grid for w in grid}
    checked = count_at(check)
    kinds = set().union(checked, *samples.values())
    lh, lw = _lagrange(grid, Fraction(target[0])), _lagrange(grid, Fraction(target[1]))
    ch, cw = _lagrange(grid, Fraction(check[0])), _lagrange(grid, Fraction(check[1]))
    out: dict[str, int | float] = {}
    for kind in kinds:
        def at(wh: list[Fraction], ww: list[Fraction], kind: str = kind) -> Fraction:
            return sum((wh[i] * ww[j] * samples[(h, w)].get(kind, 0)
                        for i, h in enumerate(grid) for j, w in enumerate(grid)), Fraction(0))

        if at(ch, cw) != checked.get(kind, 0):
            return None
        value = at(lh, lw)
        out[kind] = value.numerator if value.denominator == 1 else float(value)
    return out


def _count(counter: Callable[[nn.Module, torch.Tensor], dict[str, int]], model: nn.Module, scale: int,
           rounding: str, allow_meta: bool, direct: bool = False) -> tuple[dict[str, int], str]:
    """Counts at the quoted size: meta direct when possible, else extrapolated, else a real forward.

    `direct` forces a real CPU forward at the full size (to check the shortcuts against it).
    """
    if rounding == "area" and HR_SIZE[0] % scale == 0 and HR_SIZE[1] % scale == 0:
        rounding = "floor"  # whole LR pixels: the three roundings coincide
    if direct:
        return _runner(counter, model, "cpu")(lr_size(scale, rounding)), "cpu"
    if rounding != "area" and allow_meta:
        try:
            return _runner(counter, model, "meta")(lr_size(scale, rounding)), "meta"
        except Exception:  # e.g. an op with no meta kernel, or data-dependent code: fall through
            pass
    if rounding == "area":
        target = (Fraction(HR_SIZE[0], scale), Fraction(HR_SIZE[1], scale))
    else:
        target = tuple(Fraction(v) for v in lr_size(scale, rounding))
    for device in (("meta", "cpu") if allow_meta else ("cpu",)):
        try:
            scaled = extrapolate(_runner(counter, model, device), target)
        except Exception:
            continue
        if scaled is not None:
            return scaled, "extrapolated"
    if rounding == "area":
        raise ValueError(f"{type(model).__name__}: its counts are not a polynomial in the LR size, so the "
                         "'area' rounding (fractional LR size) is undefined for it; use floor or ceil")
    return _runner(counter, model, "cpu")(lr_size(scale, rounding)), "cpu"


def hook_macs(model: nn.Module, scale: int, rounding: str = LR_ROUNDING, direct: bool = False) -> Counts:
    """Our weights-only count (true and legacy) at the 1280x720 output."""
    counts, method = _count(_hook_counts, model, scale, rounding, allow_meta=True, direct=direct)
    calls = counts.pop("calls", 0)
    legacy = counts.pop("legacy_conv_transpose", 0)
    result = Counts({k: v for k, v in counts.items() if v}, method, {"calls": calls})
    result.extra["legacy"] = result.weight - counts.get("conv_transpose", 0) + legacy
    return result


# ---------------------------------------------------------------- fvcore


def _kind(module: nn.Module | None, op: str) -> str:
    """Category of one tool's count: weight kinds by module type, anything else by its own name."""
    if op == "conv" or op.startswith("Conv"):
        if isinstance(module, nn.modules.conv._ConvTransposeNd):
            return "conv_transpose"
        if isinstance(module, nn.modules.conv._ConvNd):
            return "conv"
        return f"functional conv in {type(module).__name__}"
    if isinstance(module, nn.Linear) and op in ("linear", "addmm", "matmul", "mm", "Linear"):
        return "linear"
    if op in ("matmul", "mm", "bmm", "addmm", "einsum"):
        return MATMUL
    if op in ("batchnorm", "batch_norm", "group_norm", "layer_norm", "instance_norm"):
        return "norm"
    return op


def _own(tree: dict[str, Counter[str]], path: str) -> Counter[str]:
    """A module's own counts: its subtree's minus its direct children's."""
    own = Counter(tree[path])
    prefix = f"{path}." if path else ""
    for child in tree:
        rest = child[len(prefix):] if child.startswith(prefix) and child != path else None
        if rest and "." not in rest:
            own.subtract(tree[child])
    return +own


def _fvcore_counts(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    from fvcore.nn import FlopCountAnalysis

    fa = FlopCountAnalysis(model, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    fa.tracer_warnings("none")
    tree = {k: Counter(v) for k, v in fa.by_module_and_operator().items()}
    modules = dict(model.named_modules())
    out: Counter[str] = Counter()
    for path in tree:
        for op, n in _own(tree, path).items():
            out[_kind(modules.get(path), op)] += n
    for op, n in fa.unsupported_ops().items():
        out[f"skipped:{op}"] += n  # occurrences, not MACs; kept apart by the caller
    return dict(out)


def fvcore_macs(model: nn.Module, scale: int, rounding: str = LR_ROUNDING, direct: bool = False) -> Counts:
    """fvcore's count by category; `extra["skipped"]` lists the ops it met and did not count."""
    counts, method = _count(_fvcore_counts, model, scale, rounding, allow_meta=False, direct=direct)
    skipped = {k.split(":", 1)[1]: v for k, v in counts.items() if k.startswith("skipped:")}
    by_kind = {k: v for k, v in counts.items() if not k.startswith("skipped:") and v}
    return Counts(by_kind, method, {"skipped": sorted(skipped)})


# ---------------------------------------------------------------- thop


def _thop_kind(module: nn.Module) -> str:
    if isinstance(module, nn.modules.conv._ConvTransposeNd):
        return "conv_transpose"
    if isinstance(module, nn.modules.conv._ConvNd):
        return "conv"
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.PReLU):
        return "prelu"
    if isinstance(module, nn.modules.batchnorm._NormBase | nn.LayerNorm | nn.GroupNorm):
        return "norm"
    return type(module).__name__


def _thop_counts(model: nn.Module, x: torch.Tensor) -> dict[str, int]:
    from thop import profile

    total, _, tree = profile(model, (x,), verbose=False, ret_layer_info=True)
    out: Counter[str] = Counter()
    seen: set[int] = set()

    def walk(module: nn.Module, sub: dict) -> None:
        for name, (ops, _, children) in sub.items():
            child = getattr(module, name) if hasattr(module, name) else module.get_submodule(name)
            walk(child, children)
            if id(child) in seen:
                continue
            seen.add(id(child))
            own = ops - sum(v[0] for v in children.values())
            if own:
                out[_thop_kind(child)] += int(own)

    walk(model, tree)
    functional = int(total) - sum(out.values())
    if functional:
        out[MATMUL] += functional
    return dict(out)


def thop_macs(model: nn.Module, scale: int, rounding: str = LR_ROUNDING, direct: bool = False) -> Counts:
    """ultralytics-thop's count by category (run on the meta device: exact and instant).

    Its functional-product mode counts matmul/einsum run outside modules; PReLU is charged one op per
    element and normalisation 2 (4 with affine) per element.
    """
    counts, method = _count(_thop_counts, model, scale, rounding, allow_meta=True, direct=direct)
    return Counts({k: v for k, v in counts.items() if v}, method)


# ---------------------------------------------------------------- agreement


def module_differences(model: nn.Module, hw: tuple[int, int] = (4, 5)) -> list[str]:
    """Modules whose weight MACs fvcore and our hooks count differently, from one tiny real forward.

    A typical cause: fvcore counts a jit trace, which drops work whose result is unused (SRFBN's
    forward reconstructs every step and returns the last), while module hooks see every executed call.
    """
    from fvcore.nn import FlopCountAnalysis

    net = copy.deepcopy(model).eval()
    x = torch.rand(1, input_channels(model), *hw)
    ours: Counter[str] = Counter()

    def hook(name: str, m: nn.Module, inputs: tuple[torch.Tensor, ...], out: torch.Tensor) -> None:
        ours[name] += _hook_counts_single(m, inputs[0], out)  # a shared module under its first name

    run_with_hooks(net, x, hook)
    fa = FlopCountAnalysis(net, x)
    fa.unsupported_ops_warnings(False)
    fa.uncalled_modules_warnings(False)
    fa.tracer_warnings("none")
    theirs = fa.by_module()
    return [f"{name}: fvcore {theirs.get(name, 0)} vs ours {n} MACs at LR {hw[0]}x{hw[1]}"
            for name, n in ours.items() if theirs.get(name, 0) != n]


def _hook_counts_single(m: nn.Module, x_in: torch.Tensor, out: torch.Tensor) -> int:
    if isinstance(m, nn.modules.conv._ConvTransposeNd):
        return x_in.numel() * (m.out_channels // m.groups) * math.prod(m.kernel_size)
    if isinstance(m, nn.modules.conv._ConvNd):
        return out.numel() * (m.in_channels // m.groups) * math.prod(m.kernel_size)
    return out.numel() * m.in_features


def compare_tools(ours: Counts, fv: Counts, th: Counts) -> list[str]:
    """Every category where the tools differ, named with its size; empty when all three agree."""
    notes: list[str] = []
    if not (ours.weight == fv.weight == th.weight):
        notes.append(f"weight MACs differ: ours {ours.weight / 1e9:.4f} G, fvcore {fv.weight / 1e9:.4f} G, "
                     f"thop {th.weight / 1e9:.4f} G")
    for kind in sorted(set(fv.by_kind) | set(th.by_kind)):
        a, b = fv.by_kind.get(kind, 0), th.by_kind.get(kind, 0)
        if a == b:
            continue
        if kind.startswith("functional conv"):
            notes.append(f"fvcore counts a {kind} ({a / 1e9:.4f} G) that thop and our module hooks miss")
        elif a and b:
            notes.append(f"{kind}: fvcore {a / 1e9:.4f} G vs thop {b / 1e9:.4f} G")
        elif a:
            notes.append(f"fvcore counts {kind} ({a / 1e9:.4f} G); thop does not")
        else:
            skipped = ", ".join(fv.extra.get("skipped", [])) or "none"
            notes.append(f"thop counts {kind} ({b / 1e9:.4f} G); fvcore does not (ops it skipped: {skipped})")
    return notes
