"""dssd-repro: reproduce every table of the DSSD super-resolution paper."""

__version__ = "0.1.0"
