"""`repro regression`: the measured cells of a results folder against golden files (tests/golden/), so
that a change of the code that moves a number is caught. Exit 1 when a golden cell is outside its
tolerance or not measured (each is listed), 0 otherwise.

Examples:
    repro reproduce table3 --profile smoke --out /tmp/smoke
    repro regression --results /tmp/smoke --golden tests/golden/smoke.json
    repro regression --results /tmp/smoke --golden tests/golden/smoke.json --update-golden
    repro bicubic --json /tmp/bicubic.json && \\
        repro regression --results /tmp/bicubic.json --golden tests/golden/bicubic_paper.json
"""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("regression", help="check measured cells against golden files (exit 1 on a miss)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--results", action="append", required=True, metavar="PATH",
                   help="a results folder of `repro reproduce` (its results.csv), or the JSON of "
                        "`repro bicubic --json`; repeatable (the cells are pooled)")
    p.add_argument("--golden", action="append", required=True, metavar="FILE",
                   help="a golden file (JSON, e.g. tests/golden/smoke.json); repeatable")
    p.add_argument("--update-golden", action="store_true",
                   help="rewrite the measured (smoke) values of the golden files from the results and print "
                        "what changed; printed (paper) values are never rewritten")
    p.add_argument("--quiet", action="store_true", help="a summary and each miss, not a line per cell")
    p.set_defaults(func=main)


def _command_line(args: argparse.Namespace) -> str:
    results = " ".join(f"--results {r}" for r in args.results)
    return f"repro regression {results} --golden GOLDEN --update-golden"


def main(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from repro.provenance import git_commit
    from repro.results.regression import check, combine_results, load_golden, load_results, update_golden

    goldens = [load_golden(g) for g in args.golden]  # every path is checked before any work
    results = combine_results(load_results(r) for r in args.results)
    if args.update_golden:
        date = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
        commit = git_commit() or ""
        for path in args.golden:
            update_golden(results, path, updated_by=_command_line(args), commit=commit, date=date)
        goldens = [load_golden(g) for g in args.golden]
    failed = []
    for golden in goldens:
        comparison = check(results, golden)
        misses = comparison.misses
        print(f"== {golden.path}: {len(comparison.checks)} golden cells")
        for c in comparison.checks:
            if not args.quiet or c.status != "ok":
                print(f"  {c.status.upper() if c.status != 'ok' else 'ok'}: {c.line()}")
        n_out = sum(m.kind == "outside tolerance" for m in misses)
        n_absent = len(misses) - n_out
        print(f"   {len(comparison.checks) - len(misses)} ok, {n_out} outside tolerance, {n_absent} not "
              f"measured; {comparison.ignored} cells of the results not in this golden file (ignored)")
        failed += [(golden.path, m) for m in misses]
    if failed:
        print(f"regression FAILED: {len(failed)} golden cells outside tolerance or not measured:")
        for path, miss in failed:
            print(f"  {path}: {miss}")
        if any(m.kind == "not measured" for _, m in failed):
            print("not measured: pass --results for every table the golden files hold (nox -s regression "
                  "reproduces them)")
        if any(m.kind != "not measured" for _, m in failed):
            print("outside tolerance: if the change is intended, rewrite the measured values with "
                  "--update-golden and commit them (printed values are never rewritten)")
        return 1
    print(f"regression passed: every golden cell of {len(goldens)} file(s) within tolerance")
    return 0
