"""Runs: their settings (`config`: dataclasses, profiles, resolution) and their folders (`folder`).

A run is a folder named by the hash of its resolved settings. Training writes it (`repro.train`);
evaluation, the planner and the report read it through `repro.runs.folder` alone, so the format has
one definition and readers need no training code.
"""
