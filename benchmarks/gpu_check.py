"""GPU check of the fused STDP update: run the GPU tests, then benchmark, print JSON.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy)::

    python benchmarks/gpu_check.py [--skip-tests] [--max-batch 256]

1. Runs the ``gpu``-marked tests of ``tests/test_kernels.py`` (CuPy path == torch path).
2. Times ``fused_winner_update`` with the CuPy and the torch backend on the layer sizes of
   Kheradpisheh et al.'s MNIST network (conv1: weights [32, 2, 5, 5], input [N, 2, 28, 28],
   padding 2, 5 winners per image; conv2: [150, 32, 2, 2], input [N, 32, 17, 17], 8 winners)
   for batch sizes 1 to 256.
3. Times one layer-1 training step per backend on real MNIST digits (DoG/latency-coded
   once, outside the timing): convolution over the 15 cumulative spike waves, first spikes
   at threshold 10, pointwise inhibition, 5 winners with inhibition radius 2, fused update.

Everything is printed as one JSON object on stdout; the exit status is the tests' (or 2
without a GPU). Timings are wall-clock per call, synchronised, median of repeated runs.
The whole script takes well under 5 minutes on a current GPU.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch
import torch.nn.functional as F
from torch import Tensor

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from stdp_plugins.datasets import embedded_mnist  # noqa: E402
from stdp_plugins.encoding import encode_images  # noqa: E402
from stdp_plugins.backends import cupy_available, fused_winner_update  # noqa: E402
from stdp_plugins.learning import STDPConfig, WTAMode, get_first_spike_times, select_winners  # noqa: E402

LAYERS = {
    # name: (C_in, C_out, input size, kernel, padding, winners per image)
    "conv1": (2, 32, 28, 5, 2, 5),
    "conv2": (32, 150, 17, 2, 0, 8),
}
BACKENDS = ("cupy", "torch")
DEVICE = "cuda"
TIME_STEPS = 15
THRESHOLD = 10.0


def run_gpu_tests() -> Dict[str, object]:
    """Run the GPU-marked kernel tests in a subprocess; return their outcome."""
    command = [sys.executable, "-m", "pytest", "tests/test_kernels.py", "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {
        "command": " ".join(command[1:]),
        "returncode": result.returncode,
        "summary": lines[-1] if lines else result.stderr.strip()[-500:],
        "failures": [line for line in lines if line.startswith(("FAILED", "ERROR"))][:20],
        "seconds": round(time.perf_counter() - started, 2),
    }


def time_call(function: Callable[[], object], min_seconds: float = 0.2, max_runs: int = 200) -> float:
    """Median wall-clock milliseconds of ``function`` (synchronised), after warm-up."""
    for _ in range(3):
        function()
    torch.cuda.synchronize()
    samples: List[float] = []
    budget_end = time.perf_counter() + min_seconds
    while len(samples) < 5 or (time.perf_counter() < budget_end and len(samples) < max_runs):
        start = time.perf_counter()
        function()
        torch.cuda.synchronize()
        samples.append((time.perf_counter() - start) * 1e3)
    return statistics.median(samples)


def layer_problem(layer: str, batch: int, generator: torch.Generator) -> Dict[str, object]:
    """Inputs of one layer's update: latency-coded times and ``k`` winners per image."""
    c_in, c_out, size, k, padding, winners = LAYERS[layer]
    out = size + 2 * padding - k + 1
    pre = torch.randint(0, TIME_STEPS, (batch, c_in, size, size), generator=generator).float()
    pre = pre.masked_fill(torch.rand(pre.shape, generator=generator) < 0.6, math.inf)
    post = torch.randint(0, TIME_STEPS, (batch, c_out, out, out), generator=generator).float()
    chosen = torch.rand(batch, c_out * out * out, generator=generator).argsort(dim=1)[:, :winners]
    mask = torch.zeros(batch, c_out * out * out, dtype=torch.bool).scatter_(1, chosen, True).view(post.shape)
    weights = (0.8 + 0.05 * torch.randn(c_out, c_in, k, k, generator=generator)).clamp(0, 1)
    return {"weights": weights.to(DEVICE), "pre": pre.to(DEVICE), "post": post.to(DEVICE), "mask": mask.to(DEVICE),
            "padding": padding}


def benchmark_fused_update(batches: List[int]) -> List[Dict[str, object]]:
    """Per layer and batch size: milliseconds per fused update for both backends."""
    config = STDPConfig.from_paper("kheradpisheh2018")
    generator = torch.Generator().manual_seed(0)
    rows = []
    for layer in LAYERS:
        for batch in batches:
            problem = layer_problem(layer, batch, generator)
            row: Dict[str, object] = {"layer": layer, "batch": batch}
            for backend in BACKENDS:
                weights = problem["weights"].clone()
                row[f"{backend}_ms"] = round(time_call(lambda: fused_winner_update(
                    weights, problem["pre"], problem["post"], problem["mask"], config,
                    padding=problem["padding"], backend=backend)), 4)
            row["speedup"] = round(row["torch_ms"] / row["cupy_ms"], 2)
            rows.append(row)
    return rows


def mnist_spike_times(batch: int) -> Tensor:
    """First-spike times [batch, 2, 28, 28] of the package's MNIST digits (on the GPU)."""
    images, _ = embedded_mnist()
    return encode_images(images[:batch].to(DEVICE), TIME_STEPS)


def layer1_training(batch: int, backend: str, times: Tensor) -> Dict[str, object]:
    """Images per second of layer-1 training steps, with a per-stage breakdown."""
    _, c_out, _, k, padding, winners = LAYERS["conv1"]
    config = STDPConfig.from_paper("kheradpisheh2018")
    weights = (0.8 + 0.05 * torch.randn(c_out, 2, k, k, device=DEVICE)).clamp(0, 1)
    steps = torch.arange(TIME_STEPS, device=DEVICE, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    state: Dict[str, Tensor] = {}

    def fire() -> None:
        waves = (times[None] <= steps).float().flatten(0, 1)  # [T*N, 2, 28, 28]
        potentials = F.conv2d(waves, weights, padding=padding)
        potentials = potentials.view(TIME_STEPS, batch, *potentials.shape[1:])
        post = get_first_spike_times(potentials >= THRESHOLD)
        index = post.clamp(max=TIME_STEPS - 1).long()  # never-fired neurons read the last step
        state["post"] = post
        state["potential"] = potentials.gather(0, index[None])[0]

    def inhibit() -> None:
        pointwise = select_winners(state["post"], state["potential"], WTAMode.LOCAL, 0)
        kept = state["post"].masked_fill(~pointwise, math.inf)
        state["mask"] = select_winners(kept, state["potential"], WTAMode.BOTH, 2, winners)

    def learn() -> None:
        fused_winner_update(weights, times, state["post"], state["mask"], config, padding=padding, backend=backend)

    def step() -> None:
        fire()
        inhibit()
        learn()

    step_ms = time_call(step, min_seconds=1.0)
    stage_ms = {name: round(time_call(stage), 4) for name, stage in
                (("conv_and_fire", fire), ("wta", inhibit), ("stdp_update", learn))}
    return {"step_ms": round(step_ms, 4), "images_per_s": round(batch / step_ms * 1e3, 1), "stage_ms": stage_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true", help="only benchmark")
    parser.add_argument("--max-batch", type=int, default=256, help="largest batch size (power of two)")
    args = parser.parse_args()
    started = time.perf_counter()
    report: Dict[str, object] = {"torch": torch.__version__}
    if not torch.cuda.is_available() or not cupy_available():
        report["error"] = "needs a CUDA GPU and CuPy"
        print(json.dumps(report, indent=2))
        return 2
    import cupy

    report.update(device=torch.cuda.get_device_name(), cupy=cupy.__version__,
                  cuda_runtime=cupy.cuda.runtime.runtimeGetVersion())
    report["tests"] = None if args.skip_tests else run_gpu_tests()

    batches = [2 ** i for i in range(int(math.log2(args.max_batch)) + 1)]
    report["fused_update"] = benchmark_fused_update(batches)

    training_batch = min(256, args.max_batch)
    times = mnist_spike_times(training_batch)
    report["layer1_training"] = {"batch": training_batch, "encoding_excluded": True,
                                 **{b: layer1_training(training_batch, b, times) for b in BACKENDS}}

    at_64 = [row["speedup"] for row in report["fused_update"] if row["batch"] == 64]
    images_per_s = report["layer1_training"]["cupy"]["images_per_s"]
    report["targets"] = {
        "fused_speedup_at_batch_64": {"value": min(at_64) if at_64 else None, "target": 5.0,
                                      "met": bool(at_64) and min(at_64) >= 5.0},
        "layer1_training_images_per_s": {"value": images_per_s, "target": 20000,
                                         "met": images_per_s >= 20000},
    }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    tests = report["tests"]
    return 0 if tests is None else int(tests["returncode"] != 0)


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
