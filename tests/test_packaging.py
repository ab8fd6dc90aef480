"""Building molexp's wheel: no deprecation warnings from the build backend, and
the licence as an SPDX expression (setuptools >= 77)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


def test_the_wheel_builds_without_deprecation_warnings(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0 and "setuptools" in proc.stderr and "No matching" in proc.stderr:
        pytest.skip("no package index offers setuptools>=77 here")
    assert proc.returncode == 0, proc.stderr[-2000:]
    output = proc.stdout + proc.stderr
    assert "DeprecationWarning" not in output, [
        line for line in output.splitlines() if "Deprecat" in line
    ]
    (wheel,) = tmp_path.glob("molexp-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        metadata = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        text = zf.read(metadata).decode()
    assert "License-Expression: MIT" in text.splitlines()
