"""Choices of the complexity columns that the command line offers (no torch import: `repro --help`
reads them). Their meaning is documented where they are used: `repro.complexity.macs` (roundings) and
`repro.complexity.measure` (the runtime ceiling)."""

ROUNDINGS = ("area", "floor", "ceil")  # how an HR size the scale does not divide gives an LR size
RUNTIME_MAX_GMACS = 250.0  # networks above this many GMACs are not timed on a CPU
