"""Subcommands of the `repro` command line: one module per command, each with `register(subparsers)`
and a handler `main(args) -> int` (`main_<action>` for the actions of `repro data`).

`repro.cli` discovers the modules here, so adding a command means adding one file. `repro --help`
imports every one of them: keep their top level to argparse, the standard library and light repro
modules (errors, scales, runs.config, runs.profiles), and import torch, numpy, pandas and the rest
inside the handler (tests/test_cli_startup.py checks).
"""
