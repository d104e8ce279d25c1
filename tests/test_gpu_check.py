"""benchmarks/gpu_check.py, the GPU check of the CUDA kernels: its command line, and without
a GPU a clear JSON error with exit status 2 (on a GPU machine the script itself is the check)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import torch

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120)


def test_command_line_is_documented_and_checked():
    result = run("--help")
    assert result.returncode == 0
    for option in ("--skip-tests", "--batch", "--images", "--budget", "--agreement-images"):
        assert option in result.stdout
    result = run("--batch", "0")
    assert result.returncode == 2 and "--batch must be >= 1, got 0" in result.stderr


def test_without_a_gpu_it_says_so_in_json_and_exits_2():
    if torch.cuda.is_available():
        return  # a GPU machine runs the whole check instead
    result = run("--skip-tests")
    assert result.returncode == 2
    report = json.loads(result.stdout)
    assert report["error"].startswith("needs a CUDA GPU and CuPy") and report["torch"] == torch.__version__
