"""Table specs and plans: runs keyed by settings hash, shared between rows and tables, teachers first,
every printed cell mapped to a run, bad input named (no training here)."""

from __future__ import annotations

import json

import pytest

from repro.cli import main
from repro.errors import ReproError
from repro.plan.runs import make_plan
from repro.published import published_values
from repro.specs import get_table, paper_tables, tables


@pytest.fixture(scope="module")
def paper_plan():
    return make_plan(tables("all"), "paper")


def _run(plan, table, row, scale=4, seed=0):
    return plan.measured[table, row, scale, seed]


def test_a_run_several_rows_need_is_one_run(paper_plan):
    p = paper_plan
    assert _run(p, "table1", "teacher_hfrm") == _run(p, "table2", "sdm_none")
    dssd = {_run(p, "table2", "sdm"), _run(p, "table3", "deep_supervision"), _run(p, "table4", "fsrcnn_dssd"),
            _run(p, "appendix1", "DSSD")}
    assert len(dssd) == 1
    fsrcnn_star = {_run(p, "table1", "baseline_fsrcnn"), _run(p, "table4", "fsrcnn_baseline"),
                   _run(p, "appendix1", "FSRCNN*"), _run(p, "appendix1", "FSRCNN")}
    assert len(fsrcnn_star) == 1
    assert _run(p, "table4", "fsrcnn_pisr") == _run(p, "appendix1", "PISR")
    assert len({r.id for r in p.runs.values()}) == len(p.runs)  # keyed by hash: no duplicates
    assert len(p.runs) == 64


def test_teachers_come_before_their_students(paper_plan):
    order = [r.id for r in paper_plan.ordered()]
    for run in paper_plan.runs.values():
        if run.teacher is not None:
            assert order.index(run.teacher.id) < order.index(run.id)
            assert set(run.used_by) <= set(run.teacher.used_by)


def test_equal_compute_control_trains_as_long_as_teacher_and_student(paper_plan):
    control = paper_plan.runs[_run(paper_plan, "table3", "equal_compute_fsrcnn")]
    student = paper_plan.runs[_run(paper_plan, "table3", "deep_supervision")]
    assert control.cfg.kind == "baseline" and control.cfg.model.name == student.cfg.model.name
    assert control.cfg.optim.iterations == student.cfg.optim.iterations + student.teacher.cfg.optim.iterations


def test_every_printed_cell_maps_to_a_run(tmp_path, capsys):
    path = tmp_path / "plan.json"
    assert main(["plan", "all", "--profile", "paper", "--no-estimate", "--out", str(tmp_path / "o"),
                 "--json", str(path)]) == 0
    data = json.loads(path.read_text())
    assert len({r["id"] for r in data["runs"]}) == len(data["runs"]) == 64
    assert {"id", "kind", "model", "scale", "seed", "status", "used_by"} <= set(data["runs"][0])
    assert all(r["status"] == "missing" for r in data["runs"])
    cells = {(c["table"], c["row"], c["scale"], c["dataset"], c["metric"]): c for c in data["cells"]}
    printed = published_values()
    printed = printed[printed.table.isin(paper_tables()) & printed.metric.isin(["psnr", "ssim"])
                      & (printed.row != "Bicubic")]
    assert len(printed) == 293
    for r in printed.itertuples():
        cell = cells[(r.table, r.row, r.scale, r.dataset, r.metric)]
        assert cell["printed"] == pytest.approx(r.value) and cell["run"], cell
    assert cells[("appendix1", "DRCN", 2, "Set5", "psnr")]["source"].startswith("Kim et al.")
    assert "plan: 64 runs" in capsys.readouterr().out


def test_seeds_multiply_the_runs():
    one = make_plan([get_table("table3")], "smoke")
    three = make_plan([get_table("table3")], "smoke", seeds=3)
    assert len(three.runs) == 3 * len(one.runs)
    ids = {three.measured["table3", "recon_only", 4, s] for s in range(3)}
    assert len(ids) == 3
    with pytest.raises(ReproError, match="at least 1"):
        make_plan([get_table("table3")], "smoke", seeds=0)


@pytest.mark.parametrize("argv, expected", [
    (["plan", "table9"], "valid choices: table1, table2, table3, table4, appendix1, quickstart, all"),
    (["plan", "table3", "--profile", "fast"], "valid choices: laptop, laptop_table, paper"),
    (["reproduce", "table9", "--no-estimate"], "unknown table 'table9'"),
])
def test_bad_input_is_one_line_exit_2(argv, expected, capsys, tmp_path):
    assert main([*argv, "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o").exists()  # nothing half-written


def test_a_dataset_that_cannot_be_fetched_names_the_command_and_folder(tmp_path, monkeypatch, capsys):
    import repro.data.fetch

    def offline(manifest, root, **kwargs):
        raise ReproError(f"could not download {manifest.name}: no network")

    monkeypatch.setattr(repro.data.fetch, "fetch", offline)
    out = tmp_path / "o"
    code = main(["reproduce", "table3", "--profile", "smoke", "--no-estimate", "--out", str(out),
                 "--data-root", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "repro data fetch benchmark --root DIR" in err and str(tmp_path / "empty" / "benchmark") in err
    assert not (out / "runs").exists()  # nothing trained, nothing half-written
