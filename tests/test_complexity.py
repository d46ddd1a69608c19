"""Complexity columns: MultiAdds against docs/protocol.md, "Complexity", the three counters against each
other, CLI schema."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from repro.cli import main
from repro.complexity import macs
from repro.complexity.macs import compare_tools, fvcore_macs, hook_macs, module_differences, thop_macs
from repro.complexity.params import params
from repro.complexity.runtime import runtime_ms
from repro.models import create
from repro.provenance import environment

# docs/protocol.md, "Complexity": weights-only MultiAdds (G) at a 1280x720 output, CARN convention (legacy).
REFERENCE_G = {
    ("vdsr", 2): 612.59,
    ("drcn", 2): 17974.30,
    ("drrn", 2): 6796.90,
    ("carn", 2): 222.82, ("carn", 3): 118.79, ("carn", 4): 90.87,
    ("imdn", 2): 158.77, ("imdn", 3): 71.45, ("imdn", 4): 40.89,
}
FSRCNN_TRUE_G = {2: 2.87, 3: 1.28, 4: 0.72}
FSRCNN_LEGACY_G = {2: 6.01, 3: 4.99, 4: 4.64}


@pytest.fixture(scope="module")
def counted() -> dict[tuple[str, int], macs.Counts]:
    """Our count of each reference network, computed once (meta device: shapes only, exact).

    Every network must be registered: a missing one fails here, never turns into a skip.
    """
    return {(name, scale): hook_macs(create(name, scale=scale), scale)
            for name, scale in [*REFERENCE_G, *(("fsrcnn", s) for s in (2, 3, 4))]}


@pytest.mark.parametrize("scale", [2, 3, 4])
def test_fsrcnn_true_and_legacy_macs(counted, scale):
    c = counted[("fsrcnn", scale)]
    assert c.weight / 1e9 == pytest.approx(FSRCNN_TRUE_G[scale], rel=5e-3)
    assert c.extra["legacy"] / 1e9 == pytest.approx(FSRCNN_LEGACY_G[scale], rel=5e-3)
    # the transposed conv: k*k*Cin*Cout per INPUT pixel (true) vs per OUTPUT pixel (legacy)
    lr_pixels = 1280 * 720 / scale**2
    assert c.by_kind["conv_transpose"] == pytest.approx(lr_pixels * 81 * 56)
    assert c.extra["legacy"] - c.weight == pytest.approx(81 * 56 * (1280 * 720 - lr_pixels))


@pytest.mark.parametrize(("name", "scale"), list(REFERENCE_G))
def test_reference_macs(counted, name, scale):
    c = counted[(name, scale)]
    assert c.weight / 1e9 == pytest.approx(REFERENCE_G[(name, scale)], rel=5e-3)
    assert c.extra["legacy"] == c.weight  # none of these has a transposed convolution


def test_memnet_macs():
    """The deployed M6R6 runs its reconstruction conv on all 6 memory outputs: 2,665.00 G, not the
    reference 2,662.35 G, which counts it once (reproduced with multi_supervision=False)."""
    assert hook_macs(create("memnet", scale=2), 2).weight / 1e9 == pytest.approx(2665.0018, abs=1e-3)
    single = hook_macs(create("memnet", scale=2, multi_supervision=False), 2).weight / 1e9
    assert single == pytest.approx(2662.35, abs=5e-3)


def test_x3_rounding_settings():
    """x3: area = 1280x720 exactly (fractional LR 426.67 wide); floor = LR 240x426 (output 1278 wide)."""
    assert macs.lr_size(3, "floor") == (240, 426) and macs.lr_size(3, "ceil") == (240, 427)
    assert macs.lr_size(4, "area") == (180, 320)
    net = create("fsrcnn", scale=3)
    area, floor = hook_macs(net, 3, "area").weight, hook_macs(net, 3, "floor").weight
    assert floor == 240 * 426 * (7928 + 81 * 56)  # per-LR-pixel MACs of FSRCNN times the LR area
    assert area == 102400 * (7928 + 81 * 56)
    with pytest.raises(Exception, match="valid choices"):
        macs.lr_size(3, "round")


def test_fvcore_and_thop_agree_on_fsrcnn_at_full_size():
    """A real 640x360 forward: both tools count the deconvolution per input pixel; thop adds PReLU."""
    net = create("fsrcnn", scale=2)
    ours = hook_macs(net, 2, direct=True)
    fv, th = fvcore_macs(net, 2, direct=True), thop_macs(net, 2, direct=True)
    assert fv.by_kind["conv_transpose"] == th.by_kind["conv_transpose"] == 360 * 640 * 56 * 81
    assert fv.weight == th.weight == ours.weight == 2_871_705_600
    assert th.by_kind["prelu"] == 360 * 640 * (56 + 12 + 4 * 12 + 56)  # one op per PReLU input element
    assert "prelu" not in fv.by_kind and "aten::prelu" in fv.extra["skipped"]
    notes = compare_tools(ours, fv, th)
    assert len(notes) == 1 and notes[0].startswith("thop counts prelu")
    # the extrapolated fvcore count (tiny inputs) equals the real full-size one
    assert fvcore_macs(net, 2).by_kind == fv.by_kind


class _Small(nn.Module):
    """Conv, grouped conv, grouped transposed conv (stride 2) and a linear layer on channels."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Conv2d(1, 8, 3, padding=1)
        self.b = nn.Conv2d(8, 8, 3, padding=1, groups=2)
        self.up = nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, groups=2)
        self.fc = nn.Linear(4, 1)
        self.in_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.up(torch.relu(self.b(self.a(x))))
        return self.fc(y.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_our_counter_matches_fvcore_and_thop_on_a_small_net():
    net = _Small()
    h, w = macs.lr_size(2, "floor")
    expected = {
        "conv": h * w * (8 * 9 + 8 * 4 * 9),
        "conv_transpose": h * w * 8 * 2 * 16,  # per input pixel: Cin * Cout/groups * k*k
        "linear": 4 * h * w * 4,
    }
    ours, fv, th = (f(net, 2, "floor", direct=True) for f in (hook_macs, fvcore_macs, thop_macs))
    assert ours.by_kind == expected
    assert {k: fv.by_kind[k] for k in expected} == expected
    assert {k: th.by_kind[k] for k in expected} == expected
    # legacy: per OUTPUT element (Cout * 2h * 2w of them) times Cin/groups * k*k
    assert ours.extra["legacy"] - ours.weight == (4 * 2 * h * 2 * w) * 4 * 16 - h * w * 8 * 2 * 16


class _Twice(nn.Module):
    def __init__(self, times: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 3, padding=1)
        self.times = times
        self.in_channels = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for _ in range(self.times):
            x = self.conv(x)
        return x


def test_recursion_is_counted_at_every_application():
    once = {f.__name__: f(_Twice(1), 4).weight for f in (hook_macs, fvcore_macs, thop_macs)}
    twice = {f.__name__: f(_Twice(2), 4).weight for f in (hook_macs, fvcore_macs, thop_macs)}
    assert set(once.values()) == {180 * 320 * 9}
    assert twice == {k: 2 * v for k, v in once.items()}
    assert params(_Twice(2)).total == params(_Twice(1)).total == 10  # shared weights counted once


def test_extrapolation_refuses_counts_that_are_not_polynomial():
    """A stride-2 layer rounds odd sizes down, so tiny inputs cannot stand for the full one."""

    class Strided(nn.Module):
        in_channels = 1

        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(1, 1, 3, stride=2, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x[..., : x.shape[-2] // 2 * 2 + 1, :])

    runner = macs._runner(macs._hook_counts, Strided(), "meta")
    assert macs.extrapolate(runner, (240, 427)) is None
    # the polynomial case is exact: FSRCNN from ten tiny sizes equals the direct full-size count
    runner = macs._runner(macs._hook_counts, create("fsrcnn", scale=3), "meta")
    assert macs.extrapolate(runner, (240, 427)) == runner((240, 427))


def test_dead_work_that_fvcore_drops_is_reported():
    """fvcore's jit trace drops a conv whose output is unused; module hooks count it (it runs)."""

    class Dead(nn.Module):
        in_channels = 1

        def __init__(self) -> None:
            super().__init__()
            self.used, self.unused = nn.Conv2d(1, 2, 3, padding=1), nn.Conv2d(1, 2, 3, padding=1)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.unused(x)
            return self.used(x)

    net = Dead()
    ours, fv, th = hook_macs(net, 4), fvcore_macs(net, 4), thop_macs(net, 4)
    assert ours.weight == th.weight == 2 * fv.weight
    assert compare_tools(ours, fv, th)[0].startswith("weight MACs differ")
    assert any(d.startswith("unused:") for d in module_differences(net))


def test_params_of_deployed_networks():
    assert params(create("fsrcnn", scale=4)).total == 12_809
    assert params(create("fsrcnn", scale=4, in_channels=3)).total == 24_683
    assert params(create("dssd_teacher", scale=4)).total == 12_809  # a teacher: its backbone only
    assert params(create("drcn", scale=2)).weights == 1_774_080


def test_runtime_and_environment():
    env = environment("cpu")
    assert env["cpu"] and env["torch"] == torch.__version__ and env["torch_threads"] >= 1
    assert runtime_ms(create("fsrcnn", scale=4), 4, repeats=2, warmup=0, lr_hw=(16, 16)) > 0


def test_cli_json_schema_and_table(tmp_path, capsys):
    out = tmp_path / "c.json"
    rc = main(["complexity", "--models", "fsrcnn", "--scales", "2", "--no-runtime", "--json", str(out),
               "--table-dir", str(tmp_path)])
    assert rc == 0
    rows = json.loads(out.read_text())
    assert isinstance(rows, list) and len(rows) == 1
    row = rows[0]
    for key in ("model", "scale", "params", "macs_g", "macs_legacy_g", "macs_fvcore_g", "macs_thop_g",
                "runtime_cpu_ms", "runtime_gpu_ms", "environment"):
        assert key in row, key
    assert (row["model"], row["scale"], row["params"]) == ("fsrcnn", 2, 12_809)
    assert row["macs_g"] == row["macs_fvcore_g"] == row["macs_thop_g"] == pytest.approx(2.8717056)
    assert row["macs_legacy_g"] == pytest.approx(6.0069888)
    assert row["runtime_cpu_ms"] is None and row["runtime_gpu_ms"] is None
    assert isinstance(row["environment"], dict) and "cpu" in row["environment"]
    md = (tmp_path / "complexity.md").read_text()
    assert "| FSRCNN* / PISR / DSSD | x2 |" in md and "6.01" in md and "Findings" in md
    assert "x3 Set14 PSNR DSSD 29.51 vs PISR 29.57" in md  # the "every scale" claim, from the CSV
    assert "\\begin{tabular}" in (tmp_path / "complexity.tex").read_text()


def test_cli_errors(capsys):
    assert main(["complexity", "--models", "nosuchnet", "--no-runtime", "--no-table"]) == 2
    err = capsys.readouterr().err
    assert "valid choices" in err and "fsrcnn" in err
    assert main(["complexity", "--models", "fsrcnn", "--scales", "two", "--no-table"]) == 2
    if not torch.cuda.is_available():
        assert main(["complexity", "--models", "fsrcnn", "--device", "cuda", "--no-table"]) == 2
        assert "no CUDA" in capsys.readouterr().err


def test_findings_state_the_measured_figures():
    """Findings come from measurements and the CSV: the printed counts are x2 / x4 / RGB / legacy figures."""
    from repro.complexity.measure import Options, measure
    from repro.complexity.table import findings

    names = ["fsrcnn", "idn", "srfbn", "imdn"]
    opts = Options(tools=False, runtime=False)
    rows = [measure(n, s, opts, {}) for n in names for s in (2, 3, 4)]
    text = {f["topic"]: f["text"] for f in findings(rows)}
    fs = text["FSRCNN* / PISR / DSSD"]
    assert "6.01 G legacy" in fs and "the printed MultiAdds match x2 (legacy)" in fs and "24,683" in fs
    assert "The printed params match x2 (all parameters);" in text["IMDN"]
    assert "703,059" in text["IMDN"] and "158.77 G true" in text["IMDN"]
    assert "The printed params match x4 (all parameters);" in text["SRFBN"]
    assert "IDN on RGB: 590,915 parameters, x2 135.75 G true" in text["IDN"]
    assert "on Y: 552,769 parameters" in text["IDN"]
