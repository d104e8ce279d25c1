"""GPU check of the CUDA kernels: agreement with torch and training speed, as one JSON object.

Usage (from the repository root, on a machine with a CUDA GPU and CuPy)::

    python benchmarks/gpu_check.py [--skip-tests] [--batch 1024] [--images 8192] [--budget 20]

1. Runs the ``gpu``-marked tests (``tests/test_cupy_gpu.py``, ``tests/test_stdp_backends.py``).
2. Agreement per operation on real digits (layers 1 and 2 of the reference network): the
   CuPy kernel against the torch path on the same GPU and against the CPU path (``equal``:
   bit for bit; otherwise the largest absolute difference).
3. Images per second per phase for ``KheradpishehNet`` (layer-1 training, layer-2 training,
   features) and for the SpikingJelly example (``examples/spikingjelly_kheradpisheh.py``:
   layer-1 and layer-2 training through the learners), with the CuPy kernels (``"cupy"``:
   ``backend="auto"`` on CUDA tensors, which takes CuPy wherever it is written) and
   ``backend="torch"`` on the same GPU in the same run, and their ratio. Each measurement
   runs whole batches for at most ``--budget`` seconds (after a warm-up batch), synchronised.
4. Whether layer-1 training on the GPU ends with the CPU path's weights.

The exit status is 0 when the tests pass and every operation agrees, 1 otherwise and 2
without a GPU or CuPy (the JSON then says why). Sized for one 15-minute GPU window: about
5 minutes on an H100/H200 with the defaults.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "examples"))

from stdp_plugins.backends import (  # noqa: E402
    cupy_available,
    first_spike_conv,
    first_spike_times,
    fused_winner_update,
    select_winners,
)
from stdp_plugins.datasets import embedded_mnist  # noqa: E402
from stdp_plugins.learning import WTAMode  # noqa: E402
from stdp_plugins.models import KheradpishehNet  # noqa: E402

CUDA = "cuda"
GPU_TESTS = ("tests/test_cupy_gpu.py", "tests/test_stdp_backends.py")


def parse_arguments(argv: List[str]) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-tests", action="store_true", help="do not run the gpu-marked tests")
    parser.add_argument("--batch", type=int, default=1024, help="images per training step (default 1024)")
    parser.add_argument("--images", type=int, default=8192, help="training digits per phase (default 8192)")
    parser.add_argument("--budget", type=float, default=20.0, help="seconds per measurement at most (default 20)")
    parser.add_argument("--agreement-images", type=int, default=256, help="digits of the agreement checks")
    args = parser.parse_args(argv)
    for name in ("batch", "images", "agreement_images"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    if args.budget <= 0:
        parser.error(f"--budget must be > 0, got {args.budget}")
    return args


def run_gpu_tests() -> Dict[str, object]:
    """Run the gpu-marked tests in a subprocess; their outcome."""
    command = [sys.executable, "-m", "pytest", *GPU_TESTS, "-m", "gpu", "-q", "-p", "no:cacheprovider"]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    return {"returncode": result.returncode, "summary": lines[-1] if lines else result.stderr.strip()[-500:],
            "failures": [line for line in lines if line.startswith(("FAILED", "ERROR"))][:20],
            "seconds": round(time.perf_counter() - started, 1)}


def compare(cupy_result: torch.Tensor, reference: torch.Tensor) -> Dict[str, object]:
    """``equal`` bit for bit, else the largest absolute difference (mismatching entries for bools)."""
    a, b = cupy_result.cpu(), reference.cpu()
    if torch.equal(a, b):
        return {"equal": True}
    if a.dtype == torch.bool:
        return {"equal": False, "mismatches": int((a != b).sum())}
    finite = torch.isfinite(a) & torch.isfinite(b)
    return {"equal": False, "max_abs_diff": float((a - b)[finite].abs().max()) if finite.any() else None,
            "inf_pattern_equal": bool(torch.equal(torch.isfinite(a), torch.isfinite(b)))}


def agreement(images: torch.Tensor) -> Dict[str, Dict[str, object]]:
    """Each CuPy operation against the torch path on the GPU and on the CPU, on real digits."""
    net = KheradpishehNet(seed=0, backend="torch")
    report: Dict[str, Dict[str, object]] = {}
    layer_input = net.layer_input(1, net.encode(images))
    for layer in (1, 2):
        if layer == 2:
            layer_input = net.next_input(2, layer_input)
        spec, weight = net.spec(layer), net.weight(layer).detach()
        args = (spec.threshold, spec.padding, net.config.time_steps)
        on = {"gpu_torch": (CUDA, "torch"), "cpu": ("cpu", "auto")}
        outputs = {name: first_spike_conv(layer_input.to(device), weight.to(device), *args, backend=backend)
                   for name, (device, backend) in {**on, "cupy": (CUDA, "cupy")}.items()}
        for index, what in enumerate(("times", "potentials")):
            report[f"first_spike_conv_layer{layer}_{what}"] = {
                name: compare(outputs["cupy"][index], outputs[name][index]) for name in on}
        times, potentials = outputs["cpu"]
        winners = {}
        for name, (device, backend) in {**on, "cupy": (CUDA, "cupy")}.items():
            winners[name] = select_winners(times.to(device), potentials.to(device), WTAMode.BOTH, spec.radius,
                                           spec.k_winners, pointwise=True, backend=backend)
        report[f"select_winners_layer{layer}"] = {name: compare(winners["cupy"], winners[name]) for name in on}
        for reduction in ("mean", "sequential"):
            updated = {}
            for name, (device, backend) in {**on, "cupy": (CUDA, "cupy")}.items():
                w = weight.clone().to(device)
                fused_winner_update(w, layer_input.to(device), times.to(device), winners["cpu"].to(device),
                                    net.config.stdp, *net.learning_rates(layer, 0), 1, spec.padding, backend,
                                    reduction=reduction)
                updated[name] = w
            report[f"stdp_{reduction}_layer{layer}"] = {name: compare(updated["cupy"], updated[name]) for name in on}
        if layer == 1:
            window = times[None] <= torch.arange(net.config.time_steps, dtype=torch.float32).view(-1, 1, 1, 1, 1)
            drive = torch.randn(window.shape, generator=torch.Generator().manual_seed(0))
            for cumulative in (False, True):
                result = {name: first_spike_times(window.to(device), drive.to(device), cumulative=cumulative,
                                                  backend=backend)
                          for name, (device, backend) in {**on, "cupy": (CUDA, "cupy")}.items()}
                report[f"first_spike_times_{'cumulative' if cumulative else 'step'}"] = {
                    name: {"times": compare(result["cupy"][0], result[name][0]),
                           "values": compare(result["cupy"][1], result[name][1])} for name in on}
    return report


def images_per_second(batches: List[torch.Tensor], step: Callable[[torch.Tensor, int], None],
                      budget: float) -> Dict[str, float]:
    """Run ``step(batch, images_seen)`` over ``batches`` (the first one as a warm-up) for at
    most ``budget`` seconds; images per second of the timed batches."""
    step(batches[0], 0)
    torch.cuda.synchronize()
    seen, started = 0, time.perf_counter()
    for batch in batches[1:]:
        step(batch, seen)
        seen += batch.shape[0]
        if time.perf_counter() - started > budget:
            break
    torch.cuda.synchronize()
    seconds = time.perf_counter() - started
    return {"images_per_s": round(seen / seconds, 1), "images": seen, "seconds": round(seconds, 2)}


def with_ratios(phases: Dict[str, Dict[str, Dict[str, float]]]) -> Dict[str, Dict[str, object]]:
    """Per phase: both backends' rates and ``cupy_over_torch``."""
    return {phase: {**rates, "cupy_over_torch": round(rates["cupy"]["images_per_s"] / rates["torch"]["images_per_s"],
                                                      2)}
            for phase, rates in phases.items()}


def kheradpisheh_phases(images: torch.Tensor, batch: int, budget: float) -> Dict[str, object]:
    """Images/s of the reference network's phases per backend, on the GPU. The layers'
    training inputs are computed once, outside the timing (they are exact, so the same for
    both backends)."""
    source = KheradpishehNet(seed=0).to(CUDA)
    input_times = source.encode(images.to(CUDA))
    inputs = {1: source.layer_input(1, input_times)}
    inputs[2] = torch.cat([source.next_input(2, part) for part in inputs[1].split(batch)])
    phases: Dict[str, Dict[str, Dict[str, float]]] = {"layer1_training": {}, "layer2_training": {}, "features": {}}
    for backend in ("cupy", "torch"):
        net = KheradpishehNet(seed=0, backend="auto" if backend == "cupy" else backend).to(CUDA)
        for layer in (1, 2):
            phases[f"layer{layer}_training"][backend] = images_per_second(
                list(inputs[layer].split(batch)),
                lambda part, seen, layer=layer: net.train_step(layer, part, seen, reduction="sequential"), budget)
        phases["features"][backend] = images_per_second(list(input_times.split(batch)),
                                                         lambda part, seen: net.features(part), budget)
    return with_ratios(phases)


def weights_match_cpu(images: torch.Tensor, batch: int) -> Dict[str, object]:
    """Layer-1 training on ``images``: the GPU (CuPy) weights against the CPU path's."""
    weights = {}
    encoded = KheradpishehNet(seed=0).encode(images)  # encoded once: the DoG filter is a float32 convolution
    for device in ("cpu", CUDA):
        net = KheradpishehNet(seed=0).to(device)
        layer_input = net.layer_input(1, encoded.to(device))
        for start in range(0, layer_input.shape[0], batch):
            net.train_step(1, layer_input[start:start + batch], start, reduction="sequential")
        weights[device] = net.weight(1).detach().cpu()
    return {"images": images.shape[0], **compare(weights[CUDA], weights["cpu"])}


def spikingjelly_phases(images: torch.Tensor, batch: int, budget: float) -> Dict[str, object]:
    """Images/s of the SpikingJelly example's layer training through the learners, per backend."""
    import spikingjelly_kheradpisheh as example
    from spikingjelly.activation_based import functional

    from stdp_plugins.encoding import DoGLatencyEncoder, spike_events
    from stdp_plugins.models.recipe import PAPER, attach_paper_learners

    phases: Dict[str, Dict[str, Dict[str, float]]] = {"layer1_training": {}, "layer2_training": {}}
    encoder = DoGLatencyEncoder(PAPER.time_steps).to(CUDA)
    input_times = encoder.spike_times(images.to(CUDA))
    for backend in ("cupy", "torch"):
        net = example.build_model().to(CUDA)
        group = attach_paper_learners(net)
        for name in example.SYNAPSES:
            group[name].backend = "auto" if backend == "cupy" else backend
        inputs = {1: input_times, 2: example.layer2_input(net, input_times, batch)}
        for layer in (1, 2):
            learner = group[example.SYNAPSES[layer - 1]]
            group.disable()
            learner.enable()
            stage = example.training_stage(net, layer).train()

            def step(part: torch.Tensor, seen: int, layer=layer, learner=learner, stage=stage) -> None:
                learner.set_learning_rates(*PAPER.learning_rates(layer, seen))
                with torch.no_grad():
                    stage(spike_events(part, PAPER.time_steps))
                    learner.apply()
                functional.reset_net(net)

            phases[f"layer{layer}_training"][backend] = images_per_second(list(inputs[layer].split(batch)), step,
                                                                          budget)
        group.close()
    return with_ratios(phases)


def all_equal(report: Dict[str, object]) -> bool:
    """Whether every comparison in the agreement report is bit-exact (torch's CUDA cumsum aside)."""
    def walk(node: object, path: str) -> bool:
        if isinstance(node, dict) and "equal" in node:
            return node["equal"] or ("cumulative" in path and "gpu_torch" in path)
        return all(walk(value, f"{path}/{key}") for key, value in node.items()) if isinstance(node, dict) else True
    return walk(report, "")


def main(argv: List[str]) -> int:
    args = parse_arguments(argv)
    started = time.perf_counter()
    report: Dict[str, object] = {"torch": torch.__version__}
    if not torch.cuda.is_available() or not cupy_available():
        report["error"] = ("needs a CUDA GPU and CuPy (pip install 'stdp-plugins[cuda13]'); "
                           f"torch.cuda.is_available()={torch.cuda.is_available()}, cupy importable={cupy_available()}")
        print(json.dumps(report, indent=2))
        return 2
    import cupy

    report.update(device=torch.cuda.get_device_name(), cupy=cupy.__version__,
                  cuda_runtime=cupy.cuda.runtime.runtimeGetVersion())
    report["tests"] = None if args.skip_tests else run_gpu_tests()
    images, _ = embedded_mnist()
    images = images.repeat((args.images + images.shape[0] - 1) // images.shape[0], 1, 1)[:args.images]
    report["agreement"] = agreement(images[:args.agreement_images])
    report["layer1_weights_equal_cpu"] = weights_match_cpu(images[:4 * min(args.batch, 256)], min(args.batch, 256))
    report["kheradpisheh_net"] = kheradpisheh_phases(images, args.batch, args.budget)
    report["spikingjelly_example"] = spikingjelly_phases(images, args.batch, args.budget)
    layer1 = report["kheradpisheh_net"]["layer1_training"]
    report["goals"] = {
        "layer1_training_images_per_s": {"value": layer1["cupy"]["images_per_s"], "goal": 50000,
                                         "met": layer1["cupy"]["images_per_s"] >= 50000},
        "layer1_cupy_over_torch": {"value": layer1["cupy_over_torch"], "goal": 10.0,
                                   "met": layer1["cupy_over_torch"] >= 10.0},
        "weights_equal_cpu": report["layer1_weights_equal_cpu"]["equal"],
    }
    report["wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    tests_ok = report["tests"] is None or report["tests"]["returncode"] == 0
    return 0 if tests_ok and all_equal(report["agreement"]) else 1


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main(sys.argv[1:]))
