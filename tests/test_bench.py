"""The GPU benchmark's code path, kept working on CPU with tiny configs (bench/gpu_fullsize.py --tiny)."""

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[1] / "bench"


def test_gpu_fullsize_runs_on_cpu_with_tiny_configs(tmp_path):
    out = tmp_path / "gpu.json"
    res = subprocess.run(
        [sys.executable, str(BENCH / "gpu_fullsize.py"), "--tiny", "--steps", "2", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    r = json.loads(out.read_text())
    assert r["sample/64"]["seconds"] > 0 and r["sample/64"]["true_cfg"] == 4.0
    for path in ("prefix", "naive"):
        for kind in ("fwd", "fwd+bwd"):
            assert r["reward/64"][f"{path}/{kind}"]["d4_s"] > 0
    for key in (
        "lora/standard/64",
        "lora/dynamic/64",
        "lora/standard+cache/64",
        "full/standard/64",
        "full/dynamic/64",
    ):
        assert r[key]["time/step"] > 0 and r[key]["time/reward"] > 0 and r[key]["time/grad_step"] > 0, key
    # the cached run never rolls the reference out: it only reads the cache
    assert r["lora/standard+cache/64"]["time/reference"] < 0.05 * r["lora/standard/64"]["time/reference"]
    assert res.stdout.splitlines()[-1].startswith("lora dynamic/standard peak memory at 64")
