"""Experiments: sequences of runs that produce table rows (tidy rows: table, row, scale, dataset,
metric, value, seed, run)."""
