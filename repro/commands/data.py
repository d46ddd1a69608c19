"""`repro data list|fetch|verify`: the datasets of the suite, verified downloads and pixel checks."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

# manifests and paths import only the standard library; fetch and verify (numpy, tqdm) load in the handlers
from repro.data.manifests import Manifest, get_manifest, list_datasets
from repro.errors import ReproError
from repro.paths import data_root

if TYPE_CHECKING:
    from repro.data.verify import VerifyReport

MAX_LISTED = 50  # per kind of problem; the rest is counted


def _human(size: int | None) -> str:
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1000 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{size} B"


def _size(m: Manifest, root: Path) -> str:
    if m.embedded:
        return "embedded"
    if m.size is None:  # md5-pinned archive: a recorded size (first verified download) if any
        from repro.data.fetch import load_record

        recorded = load_record(root, m.name)["archives"]
        known = [recorded.get(a.file, {}).get("size") or a.size for a in m.archives]
        return _human(sum(known)) if all(known) else "unknown"
    return _human(m.size)


def _print_report(report: VerifyReport) -> int:
    print(report.summary())
    for note in report.notes:
        print(f"  note: {note}")
    if report.ok:
        return 0
    for problem in report.folder_problems:
        print(f"  {problem}")
    for label, items in (("missing", report.missing), ("mismatch", report.mismatched)):
        for item in items[:MAX_LISTED]:
            print(f"  {label}: {item}")
        if len(items) > MAX_LISTED:
            print(f"  ... and {len(items) - MAX_LISTED} more {label}")
    fix = "rebuild the embedded sample" if report.dataset == "sample" else \
        f"fix with `repro data fetch {report.dataset} --force`"
    print(f"{report.dataset}: verification failed; {fix}")
    return 1


def main_list(args: argparse.Namespace) -> int:
    from repro.data.verify import folder_status

    root = data_root(args.root)
    rows = [(m.name, _size(m, root), folder_status(m, root), m.description)
            for m in (get_manifest(n) for n in list_datasets())]
    widths = [max(len(r[i]) for r in [("name", "size", "status", ""), *rows]) for i in range(3)]
    print(f"data root: {root}")
    print(f"{'name':<{widths[0]}}  {'size':>{widths[1]}}  {'status':<{widths[2]}}  description")
    for name, size, status, desc in rows:
        print(f"{name:<{widths[0]}}  {size:>{widths[1]}}  {status:<{widths[2]}}  {desc}")
    return 0


def main_fetch(args: argparse.Namespace) -> int:
    from repro.data.fetch import fetch

    manifest = get_manifest(args.name)
    if manifest.embedded:
        print(f"{manifest.name}: embedded in the suite (built in memory from the photos bundled with "
              "scikit-image); nothing to download")
        return 0
    root = data_root(args.root)
    result = fetch(manifest, root, force=args.force, only=args.only or (), retries=args.retries,
                   timeout=args.timeout, progress=not args.quiet)
    if result.report is None:
        print(f"{manifest.name}: fetched {', '.join(result.fetched) or 'nothing'}; "
              f"`repro data verify {manifest.name}` checks the whole set")
        return 0
    return _print_report(result.report)


def main_verify(args: argparse.Namespace) -> int:
    from repro.data.verify import verify

    manifest = get_manifest(args.name)
    return _print_report(verify(manifest, data_root(args.root)))


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data", help="list, fetch (verified download) and verify the datasets",
        description="Datasets under the data root (--root, else $REPRO_DATA, else ~/.cache/dssd-repro/data).")
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    def add_root(p: argparse.ArgumentParser) -> None:
        p.add_argument("--root", "--data-root", dest="root", metavar="DIR",
                       help="data root (default: $REPRO_DATA, else ~/.cache/dssd-repro/data)")

    p = sub.add_parser("list", help="the datasets, their download size and whether they are under the root")
    add_root(p)
    p.set_defaults(func=main_list)

    p = sub.add_parser("fetch", help="download, check and extract a dataset (resumable, skipped if present)")
    p.add_argument("name", metavar="NAME", help=f"dataset: {', '.join(_names())}")
    add_root(p)
    p.add_argument("--force", action="store_true", help="download and extract again even if present")
    p.add_argument("--only", action="append", metavar="FILE",
                   help="fetch only this archive of the dataset (repeatable), e.g. DIV2K_train_HR.zip")
    p.add_argument("--retries", type=int, default=3, help="resumes per mirror after a dropped connection")
    p.add_argument("--timeout", type=float, default=60.0, help="network timeout in seconds")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main_fetch)

    p = sub.add_parser("verify", help="check image counts and per-image pixel digests (exit 1 on problems)")
    p.add_argument("name", metavar="NAME", help=f"dataset: {', '.join(_names())}")
    add_root(p)
    p.set_defaults(func=main_verify)


def _names() -> list[str]:
    try:
        return list_datasets()
    except ReproError:  # help text only: a missing data_manifests/ must not break `repro --help`
        return ["see `repro data list`"]
