"""The complexity table beside Appendix Table I's printed columns, and the findings list (docs/protocol.md,
"Published complexity figures").

Every figure in a finding comes from a measurement (the rows of `repro complexity`, or a variant
measured here: RGB IDN/FSRCNN, MemNet with one reconstruction) or from the published CSV; only the
explanations are prose.
"""

from __future__ import annotations

import os
from pathlib import Path

import jinja2

from repro.complexity import physics
from repro.complexity.macs import hook_macs
from repro.complexity.measure import PAPER_ROWS
from repro.complexity.params import params
from repro.formatting import number
from repro.io_utils import atomic_write_text
from repro.models import create
from repro.provenance import threads_text
from repro.published import published, published_values
from repro.scales import SCALES

TABLE = "appendix1"
TEMPLATES = Path(__file__).parent / "templates"

WHY = {
    "drcn": "DRCN, DRRN, MemNet and CARN are printed with the CARN paper's x2 figures at every scale "
            "(DRCN, DRRN and MemNet run on the bicubic-upscaled image, so only the x3 rounding moves them).",
    "drrn": "Weights only, shared recursion weights once: the CARN paper's figures.",
    "memnet": "The deployed M6R6 reconstructs every memory block's output and averages them "
              "(multi-supervision), so its one reconstruction conv runs six times; the printed figure "
              "counts it once.",
    "carn": "CARN is one multi-scale network (all three upsamplers); the printed MultiAdds are its x2 cost.",
    "idn": "The printed parameter count is that of an RGB IDN; the official IDN works on Y.",
    "srfbn": "The printed parameters are the x4 network's; each scale has its own network.",
    "imdn": "The printed parameters are the x2 network's; its MultiAdds figure matches no scale here "
            "(IMDN's own paper printed its x2 count).",
}


def _latex(text: object) -> str:
    out = str(text)
    for a, b in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                 ("*", r"$^*$")):
        out = out.replace(a, b)
    return out


def _k(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e3:,.0f}k"


def _printed(model: str, scale: int, metric: str) -> float | None:
    rows = PAPER_ROWS.get(model, ())
    return published(TABLE, rows[0], scale, None, metric) if rows else None


def table_rows(rows: list[dict]) -> list[dict[str, str]]:
    """Display rows: measured columns, then the printed ones; the printed runtime with the throughput
    it implies (flagged `!` above the named GPU's fp32 peak, `!!` above every peak) and the GPU runtime
    measured here with its own."""
    out = []
    checked = physics.rows(rows, _printed)
    for r, c in zip(rows, checked, strict=True):
        m, s = r["model"], r["scale"]
        label = " / ".join(PAPER_ROWS.get(m) or ()) or m.upper()
        out.append({
            "model": label if m != "vdsr" else "VDSR (not in Appendix Table I)",
            "scale": f"x{s}",
            "params": f"{_k(r['params'])} ({_k(r['params_weights'])} weights)",
            "macs": number(r["macs_g"], grouping=True),
            "legacy": number(r["macs_legacy_g"], grouping=True),
            "fvcore": number(r["macs_fvcore_g"], grouping=True),
            "thop": number(r["macs_thop_g"], grouping=True),
            "cpu": number(r["runtime_cpu_ms"], 1, grouping=True),
            "gpu": number(r["runtime_gpu_ms"], 2, grouping=True),
            "p_params": number(_printed(m, s, "params_k"), 0, grouping=True)
                        + ("k" if _printed(m, s, "params_k") else ""),
            "p_macs": number(_printed(m, s, "multiadds_g"), 1, grouping=True),
            "p_runtime": number(_printed(m, s, "runtime_ms"), 2, grouping=True),
            "p_implied": number(c["implied"], 1, grouping=True) + _FLAG.get(c["verdict"], ""),
            "gpu_implied": number(c["measured_implied"], 1, grouping=True)
                           + _FLAG.get(c["measured_verdict"], ""),
        })
    return out


_FLAG = {"above fp32 peak": " !", "above every peak": " !!"}


def _match_params(printed_k: float, row: dict) -> str | None:
    if round(row["params"] / 1e3) == printed_k:
        return "all parameters"
    if round(row["params_weights"] / 1e3) == printed_k:
        return "weights only"
    return None


def _match_macs(printed_g: float, row: dict) -> str | None:
    """Which convention reproduces a figure printed with one decimal (half a unit of its last digit)."""
    hits = [name for name, key in (("true", "macs_g"), ("legacy", "macs_legacy_g"))
            if row.get(key) is not None and abs(row[key] - printed_g) <= 0.05 + 1e-9]
    return " = ".join(hits) or None


def _variants(models: set[str]) -> dict[str, dict]:
    """Measured variants some findings need (cheap: parameter counts and meta-device MACs)."""
    out: dict[str, dict] = {}
    if "idn" in models:
        rgb = create("idn", scale=2, in_channels=3)
        out["idn"] = {"rgb": params(rgb).total, "y": params(create("idn", scale=2)).total,
                      "rgb_x2": hook_macs(rgb, 2)}
    if "fsrcnn" in models:
        out["fsrcnn"] = {"rgb": params(create("fsrcnn", scale=2, in_channels=3)).total,
                         "y": params(create("fsrcnn", scale=2)).total}
    if "memnet" in models:
        net = create("memnet", scale=2, multi_supervision=False)
        out["memnet"] = {"one_recon_g": hook_macs(net, 2).weight / 1e9}
    if "srfbn" in models:
        out["srfbn"] = {s: hook_macs(create("srfbn", scale=s, reconstruct_every_step=False), s).weight / 1e9
                        for s in SCALES}
    return out


def findings(rows: list[dict]) -> list[dict[str, str]]:
    """Each discrepancy between the printed complexity columns (and one claim) and the measurement."""
    by = {(r["model"], r["scale"]): r for r in rows}
    models = sorted({r["model"] for r in rows}, key=lambda m: list(PAPER_ROWS).index(m)
                    if m in PAPER_ROWS else 99)
    var = _variants(set(models))
    out: list[dict[str, str]] = []
    for m in models:
        paper = PAPER_ROWS.get(m, ())
        scales = sorted(s for (mm, s) in by if mm == m)
        if not paper or not scales:
            continue
        pk = {s: _printed(m, s, "params_k") for s in scales}
        pg = {s: _printed(m, s, "multiadds_g") for s in scales}
        if None in pk.values() or None in pg.values():
            continue
        same = len(set(pk.values())) == 1 and len(set(pg.values())) == 1
        measured = "; ".join(
            f"x{s}: {by[(m, s)]['params']:,} params ({by[(m, s)]['params_weights']:,} weights), "
            f"{by[(m, s)]['macs_g']:,.2f} G true / {by[(m, s)]['macs_legacy_g']:,.2f} G legacy"
            for s in scales)
        p_match = [f"x{s} ({w})" for s in scales if (w := _match_params(pk[s], by[(m, s)]))]
        g_match = [f"x{s} ({w})" for s in scales if (w := _match_macs(pg[s], by[(m, s)]))]
        first = scales[0]
        text = (f"Printed {pk[first]:.0f}k params and {pg[first]:,.1f} G MultiAdds"
                f"{' at every scale' if same and len(scales) > 1 else ''}. Measured {measured}. "
                f"The printed params match {', '.join(p_match) or 'no measured scale'}; "
                f"the printed MultiAdds match {', '.join(g_match) or 'no measured scale'}.")
        if m == "fsrcnn" and "fsrcnn" in var:
            y, rgb = var["fsrcnn"]["y"], var["fsrcnn"]["rgb"]
            text += (f" FSRCNN on Y has {y:,} parameters, on RGB {rgb:,}: the "
                     "paper's HFRM description (3->56, 12->3) implies RGB, its 13k is the Y count (the suite "
                     "uses Y). The printed MultiAdds are the legacy convention (the transposed convolution "
                     "charged per output pixel); the true cost is the first figure of each scale.")
        if m == "idn" and "idn" in var:
            c = var["idn"]["rgb_x2"]
            text += (f" IDN on RGB: {var['idn']['rgb']:,} parameters, x2 {c.weight / 1e9:,.2f} G true / "
                     f"{c.extra['legacy'] / 1e9:,.2f} G legacy; on Y: {var['idn']['y']:,} parameters.")
        if m == "memnet" and "memnet" in var:
            g = var["memnet"]["one_recon_g"]
            text += f" Counting the reconstruction conv once (multi_supervision=False): {g:,.2f} G."
        if m == "srfbn" and "srfbn" in var:
            text += " Reconstructing only the last step: " + ", ".join(
                f"x{s} {g:,.2f} G" for s, g in var["srfbn"].items() if s in scales) + "."
        if m in WHY:
            text += " " + WHY[m]
        out.append({"topic": " / ".join(paper), "text": text})
    for m in models:
        notes = [f"x{r['scale']}: {n}" for r in rows if r["model"] == m for n in r.get("tool_notes", [])
                 if n.startswith(("weight MACs differ", "fvcore per module"))]
        if notes:
            out.append({"topic": f"counters disagree on {m}",
                        "text": "; ".join(notes) + ". fvcore counts a jit trace, which drops work whose "
                                "result is unused; module hooks (thop, ours) count every executed call."})
    out.extend(_claims())
    physical = physics.finding(physics.rows([r for r in rows if PAPER_ROWS.get(r["model"])], _printed),
                               label=lambda m: " / ".join(PAPER_ROWS.get(m) or ()) or m.upper())
    if physical:
        out.append(physical)
    cpu = [r for r in rows if r["runtime_cpu_ms"] is not None and PAPER_ROWS.get(r["model"])]
    if cpu:
        env = cpu[0]["environment"]
        text = "; ".join(f"{r['model']} x{r['scale']} {r['runtime_cpu_ms']:,.1f} ms (printed "
                         f"{number(_printed(r['model'], r['scale'], 'runtime_ms'), grouping=True)} ms)"
                         for r in cpu)
        out.append({"topic": "runtime",
                    "text": "The printed runtimes are the same at every scale and name no device. "
                            f"Measured CPU runtime ({env.get('cpu')}, "
                            f"{threads_text(env.get('torch_threads'))}, "
                            f"torch {env.get('torch')}): {text}."})
    return out


def _claims() -> list[dict[str, str]]:
    """The text's claim that DSSD beats PISR at every scale, against the printed cells themselves."""
    df = published_values()
    df = df[(df["table"] == TABLE) & df["metric"].isin(["psnr", "ssim"]) & df["row"].isin(["DSSD", "PISR"])]
    wide = df.pivot_table(index=["scale", "dataset", "metric"], columns="row", values="value").dropna()
    worse = wide[wide["DSSD"] < wide["PISR"]]
    if worse.empty:
        return []
    cells = "; ".join(f"x{int(s)} {d} {m.upper()} DSSD {r['DSSD']:g} vs PISR {r['PISR']:g}"
                      for (s, d, m), r in worse.iterrows())
    ties = wide[wide["DSSD"] == wide["PISR"]]
    tie_cells = "; ".join(f"x{int(s)} {d} {m.upper()} {r.DSSD:g}" for (s, d, m), r in ties.iterrows())
    tie_text = f" Ties: {tie_cells}." if tie_cells else ""
    return [{"topic": "claim: DSSD beats PISR at every scale",
             "text": f"The text says the DSSD student beats PISR at every scale; its own Appendix Table I "
                     f"cells say otherwise: {cells}.{tie_text}"}]


def render(rows: list[dict], found: list[dict[str, str]] | None = None) -> dict[str, str]:
    """The Markdown and LaTeX documents (file name -> text); `found`: the findings, if already made."""
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                             trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["latex"] = _latex
    env.filters["threads"] = threads_text
    context = {"rows": table_rows(rows), "findings": findings(rows) if found is None else found,
               "environment": rows[0]["environment"] if rows else {},
               "rounding": sorted({r["lr_rounding"] for r in rows})}
    return {name: env.get_template(f"{name}.j2").render(**context)
            for name in ("complexity.md", "complexity.tex")}


def write_tables(rows: list[dict], out_dir: str | os.PathLike[str]) -> list[Path]:
    paths = []
    for name, text in render(rows).items():
        paths.append(atomic_write_text(Path(out_dir) / name, text))
    return paths
