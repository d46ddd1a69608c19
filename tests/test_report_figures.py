"""The report's figures, built from a real (tiny) results folder: a smoke quickstart cut to a few
iterations on the embedded sample photos, so no download is needed. Checks that files are valid PNG/PDF,
that a figure which cannot be drawn says why, that the windowed SR of the crop figure equals the
whole-image SR, that a crop's PSNR label is the suite's PSNR, and that figures/regions.toml is valid."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from repro.cli import main
from repro.data.testsets import load_set
from repro.errors import ReproError
from repro.evaluate.metrics import psnr_y
from repro.evaluate.sr import super_resolve, super_resolve_rgb
from repro.imaging import imresize, rgb_to_y
from repro.report.figures import compact, crops, make_figures, spread
from repro.report.figures.common import load_network, torch_threads
from repro.report.figures.crops import Region, load_regions
from repro.report.inputs import ReportInputs, load_inputs

DATA = os.environ.get("REPRO_DATA")
FAST = ["--profile", "smoke", "--no-estimate", "--no-report", "--set", "optim.iters_per_epoch=10",
        "--set", "run.checkpoint_every=5"]
PNG, PDF = b"\x89PNG\r\n\x1a\n", b"%PDF-"


@pytest.fixture(scope="session")
def results(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("figures") / "quickstart"
    assert main(["reproduce", "quickstart", "--out", str(out), *FAST]) == 0
    return out


@pytest.fixture(scope="session")
def inputs(results) -> ReportInputs:
    return load_inputs(results)


@pytest.fixture(scope="session")
def figures(inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("figs") / "figures"
    return folder, make_figures(inputs, folder)


def _chelsea() -> tuple[Region, object]:
    region = next(r for r in load_regions() if r.group == "sample" and r.image == "chelsea")
    pair = next(p for p in load_set("sample", 4) if p.name == "chelsea")
    return region, pair


# ---------------------------------------------------------------- every figure
def test_every_figure_is_written_as_png_and_pdf_or_says_why(figures):
    """Each figure is one or more phone-wide images (PNG + PDF) or one line saying why it is absent."""
    folder, figs = figures
    groups = list(dict.fromkeys(f.group or f.key for f in figs))
    assert groups == ["crops", "compact_lr", "curves", "frontier", "seed_spread"]
    for fig in figs:
        assert fig.title and fig.caption
        if fig.missing is None:
            assert fig.png == folder / f"{fig.key}.png" and fig.pdf == folder / f"{fig.key}.pdf"
            assert fig.png.read_bytes()[:8] == PNG and fig.pdf.read_bytes()[:5] == PDF
            assert fig.width_px <= 346  # at its natural width inside a 390 px phone's margins
            from PIL import Image

            with Image.open(fig.png) as img:  # about 2 image pixels per CSS pixel: sharp on a phone
                assert img.width >= 2 * fig.width_px - 2, img.size
        else:
            assert fig.png is None and fig.pdf is None
    assert not list(folder.glob(".*tmp")), "a temporary file was left behind"
    by_group: dict[str, list] = {}
    for f in figs:
        by_group.setdefault(f.group or f.key, []).append(f)
    for key in ("crops", "compact_lr", "curves"):
        assert all(f.missing is None for f in by_group[key]), key
    # the quickstart trains no PISR networks: no empty panels, one line saying so and what trains them
    assert any("PISR student: not in these results (`repro reproduce table4`" in n
               for n in by_group["crops"][0].notes)
    assert any("PISR teacher" in n and "repro reproduce table4" in n for n in by_group["compact_lr"][0].notes)
    assert len(by_group["compact_lr"]) == 2  # the bicubic LR and the DSSD teacher: no PISR image
    # nothing of Appendix Table I measured: one line with the command, not 12 panels of printed points
    (frontier,) = by_group["frontier"]
    assert frontier.missing and "repro reproduce appendix1" in frontier.missing
    # one seed: the spread figure cannot be drawn, and says how to get it
    (spread_fig,) = by_group["seed_spread"]
    assert spread_fig.missing and "--seeds 3" in spread_fig.missing


def test_no_figure_text_is_too_small_or_too_wide_for_a_phone():
    from repro.report.figures.common import MIN_FONT_PT, check_readable, new_figure

    fig = new_figure(3.6, 2)
    fig.text(0.5, 0.5, "fine", fontsize=MIN_FONT_PT)
    check_readable(fig)
    fig.text(0.5, 0.2, "too small", fontsize=6.5)
    with pytest.raises(ValueError, match="too small"):
        check_readable(fig)
    with pytest.raises(ValueError, match="wide"):
        check_readable(new_figure(8.2, 2))


def test_the_crop_figure_marks_equal_psnrs_alike(inputs, tmp_path, monkeypatch):
    """Two panels whose PSNRs read the same (21.56 and 21.5649) are both bold."""
    from matplotlib.text import Text

    region, pair = _chelsea()
    panels = crops.panel_values(inputs, region, pair)
    panels = [(img, value) for img, value in [p for p in panels if p is not None]]
    panels[0], panels[1] = (panels[0][0], 21.56), (panels[1][0], 21.5649)
    panels[2] = (panels[2][0], 20.0)
    fig = crops._draw(region, panels, [(i, f"c{i}") for i in range(len(panels))])
    weights = {t.get_text(): t.get_fontweight() for t in fig.findobj(Text) if t.get_text().endswith(" dB")}
    assert weights["21.56 dB"] == "bold" and weights["20.00 dB"] == "normal"
    bold = [t for t in fig.findobj(Text) if t.get_text() == "21.56 dB" and t.get_fontweight() == "bold"]
    assert len(bold) == 2


def test_crops_without_the_benchmark_images_say_where_to_get_them(inputs, tmp_path, monkeypatch):
    monkeypatch.setattr(crops, "group_for", lambda _inputs: "paper")
    empty = dataclasses.replace(inputs, data_root=tmp_path)
    fig = crops.build(empty, tmp_path / "figs")
    assert not isinstance(fig, list) and fig.png is None and fig.missing == (
        f"no region could be drawn: Set14, B100, Urban100 not found under {tmp_path}: "
        "fetch them with `repro data fetch benchmark` or set REPRO_DATA")
    assert "not found under" in compact.build(empty, tmp_path / "figs").missing


def test_seed_spread_draws_several_seeds(inputs, tmp_path):
    # the fixture has one seed; a second one is made up here only to exercise the drawing
    df = inputs.results
    psnr = df[(df["metric"] == "psnr") & df["seed"].notna()]
    other = psnr.assign(seed=pd.array([1] * len(psnr), dtype="Int64"), value=psnr["value"] + 0.2)
    two = dataclasses.replace(inputs, results=pd.concat([df, other], ignore_index=True))
    figs = spread.build(two, tmp_path)
    assert figs and all(f.missing is None and f.png.read_bytes()[:8] == PNG for f in figs)
    assert len(spread.multi_seed(two.results)) == 2 * len(psnr)


def test_curves_draw_many_runs_four_to_an_image(inputs, tmp_path):
    from repro.report.figures import curves

    run = next(iter(inputs.runs.values()))
    many = {f"student-fsrcnn-x4-{i:08x}": dataclasses.replace(run, name=f"student-fsrcnn-x4-{i:08x}")
            for i in range(10)}
    fake = dataclasses.replace(inputs, _runs=many)
    figs = curves.build(fake, tmp_path)
    assert [f.key for f in figs] == ["curves", "curves-2", "curves-3"]
    assert all(f.missing is None for f in figs)
    assert {f.group for f in figs} == {"curves"}


# ---------------------------------------------------------------- crops: windowed SR, PSNR labels
def test_windowed_sr_equals_whole_image_sr_on_the_crop(inputs):
    run = inputs.run_for("dssd_student")
    net, channels = load_network(str(run.folder))
    region, pair = _chelsea()
    corner = dataclasses.replace(region, x=16, y=16)  # the window is clipped by the image border
    with torch_threads():
        whole_y = super_resolve(net, pair.lr, channels, scale=4)
        whole_rgb = super_resolve_rgb(net, pair.lr, channels, scale=4)
        for reg in (region, corner):
            shown, measured = crops.sr_crop(net, pair, reg, channels)
            box = np.s_[reg.y:reg.y + reg.size, reg.x:reg.x + reg.size]
            assert np.array_equal(measured, whole_y[box])
            assert np.array_equal(shown, whole_rgb[box])
            assert np.array_equal(crops.bicubic_crop(pair, reg), imresize(pair.lr, 4)[box])


def test_crop_psnr_label_is_the_suites_psnr_on_that_crop(inputs):
    region, pair = _chelsea()
    panels = crops.panel_values(inputs, region, pair)
    box = np.s_[region.y:region.y + region.size, region.x:region.x + region.size]
    hr_y = rgb_to_y(pair.hr[box])
    assert panels[0][1] == pytest.approx(psnr_y(rgb_to_y(imresize(pair.lr, 4)[box]), hr_y, 0), abs=1e-9)
    for (_, role), panel in zip(crops.COLUMNS[1:-1], panels[1:-1], strict=True):
        run = inputs.run_for(role)
        if run is None:
            assert panel is None
            continue
        net, channels = load_network(str(run.folder))
        with torch_threads():
            whole = super_resolve(net, pair.lr, channels, scale=4)
        assert panel[1] == pytest.approx(psnr_y(whole[box], hr_y, 0), abs=1e-9)


# ---------------------------------------------------------------- regions.toml
def test_regions_toml_is_valid_and_every_region_lies_inside_its_image():
    regions = load_regions()
    paper = [r for r in regions if r.group == "paper"]
    assert {r.set for r in paper} == {"Set14", "B100", "Urban100"}
    assert any(r.set == "Set14" and r.image == "barbara" for r in paper)
    assert 1 <= sum(r.group == "sample" for r in regions) <= 2
    for region in regions:
        assert region.scale == 4 and region.size >= 16
        if region.set == "sample":
            assert crops.outside(region, crops.load_region_pair(region, Path(".")).hr.shape) is None
    if not (DATA and Path(DATA, "benchmark").is_dir()):
        pytest.skip("REPRO_DATA is not set: the paper regions' images (Set14, B100, Urban100) are needed")
    for region in paper:
        pair = crops.load_region_pair(region, Path(DATA))
        assert crops.outside(region, pair.hr.shape) is None


@pytest.mark.parametrize("bad", ['x = 3', 'group = "elsewhere"', 'size = "big"', 'colour = "red"'])
def test_a_bad_region_is_refused_with_its_place(tmp_path, bad):
    key = bad.split(" ")[0]
    fields = {"group": '"sample"', "set": '"sample"', "image": '"chelsea"', "x": "140", "y": "76",
              "size": "96", "scale": "4"}
    fields[key] = bad.split(" = ")[1]
    path = tmp_path / "regions.toml"
    path.write_text("[[region]]\n" + "".join(f"{k} = {v}\n" for k, v in fields.items()))
    with pytest.raises(ReproError, match="region 1"):
        load_regions(path)
