"""Data: manifests and verified downloads, image I/O, MATLAB bicubic, benchmark sets, the embedded sample."""
