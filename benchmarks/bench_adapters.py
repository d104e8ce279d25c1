"""The plugin's cost on a plain SpikingJelly / snnTorch model: forward + ``apply()`` against
the forward alone, measured in the same run on the same weights and digits.

The models are the tutorials' one-layer models (a 2 -> 32 5x5 convolution, the paper's
fire-once IF neuron and a k-winner WTA layer; batch 32, 15 time steps), and for comparison
the same models with the frameworks' own neurons (``neuron.IFNode`` / ``snn.Leaky(beta=1)``).
Each round times every batch twice: with the learners disabled (the forward alone) and
enabled followed by ``group.apply()``; the figure is the median over rounds. Prints one JSON
line per model; the goal is a ratio of at most 1.25.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, List

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from stdp_plugins import STDPConfig, WTAConfig, WTAMode, attach  # noqa: E402
from stdp_plugins.backends import resolve_backend  # noqa: E402
from stdp_plugins.datasets import embedded_mnist  # noqa: E402
from stdp_plugins.encoding import DoGLatencyEncoder  # noqa: E402

TIME_STEPS = 15
WTA = WTAConfig(mode=WTAMode.BOTH, local_radius=2, k_winners=5)


def spike_events(images: Tensor) -> Tensor:
    """Encoded digits as spike events ``[T, N, 2, 28, 28]`` (each input fires once)."""
    times = DoGLatencyEncoder(TIME_STEPS).spike_times(images)
    steps = torch.arange(TIME_STEPS, dtype=times.dtype).view(-1, 1, 1, 1, 1)
    return (times[None] == steps).float()


def spikingjelly_model(paper_neuron: bool) -> Callable[[Tensor], Tensor]:
    from spikingjelly.activation_based import functional, layer, neuron

    from stdp_plugins.spikingjelly import FireOnceIFNode, WTALayer

    node = FireOnceIFNode(10.0) if paper_neuron else neuron.IFNode(v_threshold=10.0)
    net = nn.Sequential(layer.Conv2d(2, 32, 5, padding=2, bias=False), node, WTALayer(WTA))
    functional.set_step_mode(net, "m")

    def forward(x: Tensor) -> Tensor:
        out = net(x)
        functional.reset_net(net)
        return out

    forward.model = net
    return forward


class SnnTorchNet(nn.Module):
    """The snnTorch tutorial's layer: a per-step loop over the time steps."""

    def __init__(self, paper_neuron: bool) -> None:
        super().__init__()
        import snntorch as snn

        from stdp_plugins.snntorch import FireOnceIF, WTALayer

        self.conv = nn.Conv2d(2, 32, 5, padding=2, bias=False)
        self.lif = FireOnceIF(threshold=10.0) if paper_neuron else snn.Leaky(beta=1.0, threshold=10.0)
        self.wta = WTALayer(WTA)

    def forward(self, x: Tensor) -> Tensor:
        mem = self.lif.reset_mem()
        self.wta.reset()
        out = []
        for step in range(x.shape[0]):
            spk, mem = self.lif(self.conv(x[step]), mem)
            out.append(self.wta(spk, mem))
        return torch.stack(out)


def snntorch_model(paper_neuron: bool) -> Callable[[Tensor], Tensor]:
    net = SnnTorchNet(paper_neuron)
    net.model = net
    return net


def measure(build: Callable[[bool], Callable[[Tensor], Tensor]], paper_neuron: bool, batches: List[Tensor],
            rounds: int) -> dict:
    forward = build(paper_neuron)
    group = attach(forward.model, config=STDPConfig.from_paper("kheradpisheh2018"), initialize_weights=True)
    alone: List[float] = []
    learning: List[float] = []
    with torch.no_grad():
        for x in batches[:2]:  # warm-up: builds the native library, fills the caches
            forward(x)
            group.apply()
        for _ in range(rounds):
            for x in batches:
                group.disable()
                start = time.perf_counter()
                forward(x)
                alone.append(time.perf_counter() - start)
                group.enable()
                start = time.perf_counter()
                forward(x)
                group.apply()
                learning.append(time.perf_counter() - start)
    updates = group[0].update_count
    group.close()
    forward_s, learning_s = statistics.median(alone), statistics.median(learning)
    return {
        "forward_seconds_per_batch": round(forward_s, 5),
        "forward_and_apply_seconds_per_batch": round(learning_s, 5),
        "ratio": round(learning_s / forward_s, 3),
        "updates": updates,
    }


def main(argv: List[str] = None) -> List[dict]:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--batches", type=int, default=6)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    images, _ = embedded_mnist()
    batches = [spike_events(chunk) for chunk in images[: args.batch_size * args.batches].split(args.batch_size)]
    backend = resolve_backend("stdp_update", "auto", batches[0].device)
    results = []
    for framework, build in (("spikingjelly", spikingjelly_model), ("snntorch", snntorch_model)):
        for paper_neuron in (True, False):
            result = {
                "benchmark": "adapter_overhead",
                "framework": framework,
                "neuron": "fire-once IF (paper)" if paper_neuron else ("IFNode" if framework == "spikingjelly"
                                                                     else "snn.Leaky(beta=1)"),
                **measure(build, paper_neuron, batches, args.rounds),
                "goal_ratio": 1.25,
                "batch_size": args.batch_size,
                "time_steps": TIME_STEPS,
                "reduction": "sequential",
                "backend": backend,
                "threads": torch.get_num_threads(),
            }
            print(json.dumps(result), flush=True)
            results.append(result)
    return results


if __name__ == "__main__":
    main()
