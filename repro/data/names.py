"""The test sets the paper measures on, by name (no third-party import: the command line reads them)."""

BENCHMARK_SETS = ("Set5", "Set14", "B100", "Urban100")
SET_NAMES = (*BENCHMARK_SETS, "sample")  # `sample`: the embedded photos, no download
