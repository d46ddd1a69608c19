"""`repro --help` stays fast: the parser imports neither torch nor numpy. And the shared number format."""

from __future__ import annotations

import subprocess
import sys

from repro.formatting import number


def test_build_parser_imports_no_torch_or_numpy():
    code = ("import sys, repro.cli; repro.cli.build_parser(); "
            "print('torch' in sys.modules, 'numpy' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False False"


def test_number():
    assert number(None) == "-"
    assert number(float("nan")) == "-"
    assert number(float("nan"), 4, grouping=True) == "-"
    assert number(1234.5678) == "1234.57"
    assert number(1234.5678, 1) == "1234.6"
    assert number(1234.5678, grouping=True) == "1,234.57"
    assert number(1234.5678, 0, grouping=True) == "1,235"
