"""The reference-network example runs on a small slice and draws the documentation's figures."""

import os
import subprocess
import sys
from pathlib import Path

from stdp_plugins.models.kheradpisheh import KheradpishehNet

ROOT = Path(__file__).resolve().parent.parent


def test_kheradpisheh_example_trains_evaluates_and_draws(tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "kheradpisheh_mnist.py"), "--train", "96", "--test", "64",
         "--epochs", "1", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    lines = result.stdout.splitlines()
    accuracy = float(lines[0].split()[-1])
    assert 0.25 < accuracy <= 1.0  # 10 classes: well above chance even on 96 digits
    _, _, metric1, _, metric2 = lines[1].split()
    start = KheradpishehNet(seed=0)  # the example's initial weights: both layers have learned
    assert abs(float(metric1) - start.convergence(1)) > 1e-4 and abs(float(metric2) - start.convergence(2)) > 1e-4
    for name in ("kheradpisheh_kernels.png", "kheradpisheh_convergence.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
