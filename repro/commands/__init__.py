"""Subcommands of the `repro` command line: one module per command, each with `register(subparsers)`.

`repro.cli` discovers the modules here, so adding a command means adding one file.
"""
