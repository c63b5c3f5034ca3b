"""The benchmarks that can run here, kept working: the GPU one with tiny configs (bench/gpu_fullsize.py --tiny), the
activation count on the meta device."""

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


def test_policy_activation_count_on_the_meta_device_runs_and_checkpointing_keeps_less():
    """bench/policy_activations.py at the real FLUX configs (meta device: instant); its last line's ratio below 1."""
    res = subprocess.run(
        [sys.executable, str(BENCH / "policy_activations.py"), "--sizes", "256"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    last = res.stdout.splitlines()[-1]
    assert last.startswith("FLUX policy activations at 256 px, checkpointing/plain: ")
    assert 0 < float(last.split(": ")[1].split()[0]) < 0.5
