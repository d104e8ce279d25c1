"""Unsupervised first-spike STDP on MNIST digits with an ordinary SpikingJelly model.

A plain ``nn.Sequential`` of a SpikingJelly convolution, the paper's neuron
(:class:`stdp_plugins.spikingjelly.FireOnceIFNode`: non-leaky integrate-and-fire, at most
one spike per digit) and the plug-in's WTA layer learns without labels: the digits are
coded as spike events (every input fires once, at its DoG latency),
:func:`stdp_plugins.attach` adds a learner to the convolution, and every batch the weights
move by Kheradpisheh-2018 first-spike STDP, each image's step in turn. The convergence
metric ``mean(w (1 - w))`` falls as the weights settle at 0 or 1.

Run::

    python examples/spikingjelly_stdp.py --images 600 --batch-size 5
"""

from __future__ import annotations

import argparse
from typing import List, Optional, Sequence

import torch
from spikingjelly.activation_based import functional, layer
from torch import nn

from stdp_plugins import STDPConfig, WTAConfig, WTAMode, attach
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.encoding import DoGLatencyEncoder
from stdp_plugins.spikingjelly import FireOnceIFNode, WTALayer

TIME_STEPS = 15
ENCODER = DoGLatencyEncoder(time_steps=TIME_STEPS)


def encode(images: torch.Tensor) -> torch.Tensor:
    """Spike events ``[T, N, 2, 28, 28]`` of grey ``[N, 28, 28]`` digits: each on- or
    off-centre DoG input fires once, at its first-spike time (strong edges first)."""
    times = ENCODER.spike_times(images)                     # [N, 2, 28, 28], inf = never
    steps = torch.arange(TIME_STEPS).view(TIME_STEPS, 1, 1, 1, 1)
    return (times == steps).float()


def build_model(threshold: float = 10.0) -> nn.Sequential:
    """Conv 5x5 (2 -> 16 maps), fire-once IF neurons, k-winners-take-all, multi-step."""
    net = nn.Sequential(
        layer.Conv2d(2, 16, 5, bias=False),
        FireOnceIFNode(v_threshold=threshold),
        WTALayer(WTAConfig(mode=WTAMode.BOTH, local_radius=2, k_winners=5, pointwise_inhibition=True)),
    )
    functional.set_step_mode(net, "m")
    return net


def train(images: int, batch_size: int = 5, seed: int = 0, lr_plus: float = 0.2,
          reduction: str = "sequential") -> List[float]:
    """Learn on the first ``images`` digits; the convergence metric before and after each batch."""
    torch.manual_seed(seed)
    net = build_model()
    group = attach(net, config=STDPConfig(lr_plus=lr_plus, lr_minus=0.75 * lr_plus),
                   initialize_weights=True, reduction=reduction)
    digits = embedded_mnist()[0][:images]
    history = [group.convergence()["0"]]
    with torch.no_grad():
        for batch in digits.split(batch_size):
            net(encode(batch))
            group.apply()
            functional.reset_net(net)
            history.append(group.convergence()["0"])
    group.close()
    return history


def main(argv: Optional[Sequence[str]] = None) -> None:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=600, help="number of training digits (default 600)")
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reduction", choices=("sequential", "mean"), default="sequential",
                        help="apply each image's STDP step in turn (default) or one averaged step per batch")
    args = parser.parse_args(argv)
    history = train(args.images, args.batch_size, args.seed, reduction=args.reduction)
    print("images  convergence")
    for batch, metric in enumerate(history):
        print(f"{min(batch * args.batch_size, args.images):6d}  {metric:.5f}")


if __name__ == "__main__":
    main()
