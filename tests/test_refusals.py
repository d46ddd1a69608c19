"""Broken inputs are refused: a malformed results.csv by `repro report` and `repro regression`, an output
path that cannot be written before any work is done. Each refusal is one line on stderr, exit 2, and
writes nothing (no report folder, no file, no folder tree, no download, no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from repro.cli import main
from repro.results.collect import frame, write_results

ROWS = [{"table": "table3", "row": r, "scale": 4, "dataset": "Set5", "metric": "psnr", "value": v, "seed": 0,
         "run": "", "profile": "smoke", "commit": "", "device": "cpu"}
        for r, v in (("recon_only", 30.95), ("first_level", 30.80), ("deep_supervision", 28.3812))]
GOLDEN = Path(__file__).parent / "golden" / "smoke.json"


def _files(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*")}


def _refused(argv: list[str], capsys, *needles: str) -> str:
    """`repro argv` exits 2 with one line on stderr holding every needle, and nothing on stdout."""
    assert main(argv) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert out == "", out
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def results(tmp_path) -> Path:
    folder = tmp_path / "results"
    write_results(frame(ROWS), folder)
    return folder


def _damage(folder: Path, how: str) -> int:
    """Damage results.csv the way `how` says; returns the line the refusal must name."""
    path = folder / "results.csv"
    text = path.read_text()
    lines = text.splitlines()
    if how == "half-written row":  # cut off in the middle of a row (28.3812 -> 28.3): what was left
        path.write_text(text[:text.rindex("28.38") + 4])
        return next(i for i, line in enumerate(lines, start=1) if "28.38" in line)
    if how == "short row":  # a row that lost its last fields (its line end kept)
        lines[2] = ",".join(lines[2].split(",")[:6])
        path.write_text("\n".join(lines) + "\n")
        return 3
    if how == "missing column":
        cut = [",".join(f for i, f in enumerate(line.split(",")) if i != 5) for line in lines]
        path.write_text("\n".join(cut) + "\n")
        return 1
    if how == "non-numeric value":
        at = next(i for i, line in enumerate(lines) if "30.95" in line)
        lines[at] = lines[at].replace("30.95", "30.9S")
        path.write_text("\n".join(lines) + "\n")
        return at + 1
    raise ValueError(how)


DAMAGE = ("half-written row", "short row", "missing column", "non-numeric value")
PROBLEM = {"half-written row": "cut off while being written", "short row": "fields where the header has",
           "missing column": "lacks the column(s) value", "non-numeric value": "'30.9S' is not a number"}


@pytest.mark.parametrize("how", DAMAGE)
def test_report_refuses_a_malformed_results_csv(results, how, capsys):
    line = _damage(results, how)
    before = _files(results)
    _refused(["report", "--results", str(results), "--no-figures"], capsys,
             f"{results / 'results.csv'}, line {line}: ", PROBLEM[how])
    assert _files(results) == before  # no report folder


@pytest.mark.parametrize("how", DAMAGE)
def test_regression_refuses_a_malformed_results_csv(results, how, capsys):
    line = _damage(results, how)
    for given in (results, results / "results.csv"):
        _refused(["regression", "--results", str(given), "--golden", str(GOLDEN)], capsys,
                 f"{results / 'results.csv'}, line {line}: ", PROBLEM[how])


def test_an_intact_results_csv_is_read_back_exactly(results):
    from repro.results.collect import read_results

    back = read_results(results)
    expected = sorted((r["row"], r["value"]) for r in ROWS)
    assert sorted(zip(back["row"], back["value"], strict=True)) == expected
    assert back["seed"].tolist() == [0, 0, 0] and (back["scale"] == 4).all()


def test_report_out_that_is_a_file_is_refused(results, tmp_path, capsys):
    target = tmp_path / "report.html"
    target.write_text("mine")
    _refused(["report", "--results", str(results), "--out", str(target)], capsys, str(target),
             "is a file, not a folder")
    assert target.read_text() == "mine" and not (results / "report").exists()


@pytest.fixture
def no_work(monkeypatch):
    """Fail the test if anything of a reproduction starts: the estimate, a download, a launch."""
    from repro.plan import cost, launchers, orchestrate

    def fail(*a, **k):
        raise AssertionError("work started before the input was refused")

    monkeypatch.setattr(cost, "estimate", fail)
    monkeypatch.setattr(orchestrate, "ensure_data", fail)
    monkeypatch.setattr(launchers, "launch", fail)


@pytest.mark.parametrize("args, needle", [
    (["--eval-images", "0"], "--eval-images must be at least 1, got 0"),
    (["--eval-images", "-3"], "--eval-images must be at least 1, got -3"),
    (["--eval-crop", "0"], "--eval-crop must be at least 1, got 0"),
])
def test_reproduce_refuses_bad_quick_check_sizes_before_any_work(args, needle, tmp_path, capsys, no_work):
    out = tmp_path / "out"
    _refused(["reproduce", "table3", "--profile", "smoke", "--out", str(out), *args], capsys, needle)
    assert not out.exists()


@pytest.mark.parametrize("command", [["reproduce", "table3"], ["plan", "table3"], ["quickstart"]])
def test_an_out_that_is_a_file_is_refused_before_any_work(command, tmp_path, capsys, no_work):
    target = tmp_path / "results.txt"
    target.write_text("mine")
    _refused([*command, "--profile", "smoke", "--out", str(target)], capsys, f"--out {target} is a file")
    assert target.read_text() == "mine" and _files(tmp_path) == {target}


@pytest.mark.parametrize("argv", [
    ["plan", "table3", "--profile", "smoke", "--no-estimate", "--json", "{missing}/plan.json"],
    ["bicubic", "--sets", "Set5", "--scales", "4", "--json", "{missing}/bicubic.json"],
    ["complexity", "--models", "fsrcnn", "--scales", "4", "--no-table", "--json", "{missing}/c.json"],
])
def test_json_into_a_missing_folder_is_one_line_and_creates_nothing(argv, tmp_path, capsys):
    missing = tmp_path / "no" / "such"
    argv = [a.replace("{missing}", str(missing)) for a in argv]
    _refused(argv, capsys, f"its folder {missing} does not exist")
    assert not (tmp_path / "no").exists()


def test_evaluate_refuses_a_csv_into_a_missing_folder(tmp_path, capsys):
    missing = tmp_path / "no"
    _refused(["evaluate", str(tmp_path), "--csv", str(missing / "rows.csv")], capsys, "--csv ",
             "does not exist")
    assert not missing.exists()
