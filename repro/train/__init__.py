"""Training: the loop (`engine`), per-kind objectives, distributed set-up and RNG state.

`repro train baseline|teacher|student ...` is the command line; `train(cfg, out=...)` the same in Python
(settings: `repro.runs.config`; what a run leaves on disk and how to read it: `repro.runs.folder`).
"""
