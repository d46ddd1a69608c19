"""Benchmarks run by `nox -s bench`: one module per area, each exposing `run() -> dict`.

`python -m repro.bench --out bench/results.json [--only NAME ...]` runs them and writes one
JSON file with the environment and every module's figures. Timings are wall-clock on whatever
machine runs them; compare ratios measured in the same run, not figures across machines.
"""
