"""The GPU benchmark's code path, kept working on CPU with tiny configs (bench/gpu_fullsize.py --tiny)."""

import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_gpu_fullsize_runs_on_cpu_with_tiny_configs():
    res = subprocess.run(
        [sys.executable, str(BENCH / "gpu_fullsize.py"), "--tiny", "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    lines = res.stdout.splitlines()
    for variant in ("standard", "dynamic", "standard+cache"):
        row = next(line for line in lines if line.startswith(variant + " "))
        assert "reference" in row and "reward" in row
    # the cached run never rolls the reference out
    cached = next(line for line in lines if line.startswith("standard+cache"))
    assert "reference 0.00" in cached
