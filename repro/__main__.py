"""`python -m repro` (and `torchrun -m repro`) run the command line."""

from repro.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
