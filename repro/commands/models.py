"""`repro models`: every registered network, its role, its one-line summary and its settings (defaults)."""

from __future__ import annotations

import argparse


def format_model(name: str) -> str:
    from repro.models import model_info  # every model family registers itself on import (torch)

    info = model_info(name)
    settings = ", ".join(f"{k}={v!r}" for k, v in info.settings.items()) or "(none)"
    return f"{name} ({info.role}): {info.summary}\n    settings: scale=4, {settings}"


def main(args: argparse.Namespace) -> int:
    from repro.models import model_names

    names = args.names or model_names()
    for name in names:  # an unknown name raises ReproError listing the valid ones
        print(format_model(name))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models", help="list the networks (students, teachers, baselines) with their settings and defaults"
    )
    parser.add_argument("names", nargs="*", metavar="NAME", help="show only these models (default: all)")
    parser.set_defaults(func=main)
