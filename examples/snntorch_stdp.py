"""Unsupervised first-spike STDP on MNIST digits with an ordinary snnTorch model.

The model is written the way snnTorch's tutorials write one: a custom ``nn.Module`` with an
``nn.Conv2d`` layer, a neuron and an explicit loop over time steps. The neuron is the
paper's (:class:`stdp_plugins.snntorch.FireOnceIF`: non-leaky integrate-and-fire, at most
one spike per digit), the digits are coded as spike events (every input fires once, at its
DoG latency), the plug-in's WTA layer keeps the earliest spikes, and
:func:`stdp_plugins.attach` adds a first-spike STDP learner to the convolution, which
applies each image's step in turn. The convergence metric ``mean(w (1 - w))`` falls as
the weights settle at 0 or 1.

Run::

    python examples/snntorch_stdp.py --images 600 --batch-size 5
"""

from __future__ import annotations

import argparse
from typing import List, Optional, Sequence

import torch
from torch import nn

from stdp_plugins import STDPConfig, WTAConfig, WTAMode, attach
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.encoding import DoGLatencyEncoder
from stdp_plugins.snntorch import FireOnceIF, WTALayer

NUM_STEPS = 15
ENCODER = DoGLatencyEncoder(time_steps=NUM_STEPS)


def encode(images: torch.Tensor) -> torch.Tensor:
    """Spike events ``[T, N, 2, 28, 28]`` of grey ``[N, 28, 28]`` digits: each on- or
    off-centre DoG input fires once, at its first-spike time (strong edges first)."""
    times = ENCODER.spike_times(images)                     # [N, 2, 28, 28], inf = never
    steps = torch.arange(NUM_STEPS).view(NUM_STEPS, 1, 1, 1, 1)
    return (times == steps).float()


class Net(nn.Module):
    """Conv 5x5 (2 -> 16 maps), fire-once IF neurons, k-winners-take-all."""

    def __init__(self, threshold: float = 10.0) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(2, 16, 5, bias=False)
        self.lif1 = FireOnceIF(threshold=threshold)
        self.wta1 = WTALayer(WTAConfig(mode=WTAMode.BOTH, local_radius=2, k_winners=5,
                                       pointwise_inhibition=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Output spikes ``[T, N, 16, 24, 24]`` for input spikes ``[T, N, 2, 28, 28]``."""
        mem1 = self.lif1.reset_mem()
        self.wta1.reset()
        spk1_rec = []
        for step in range(x.shape[0]):
            spk1, mem1 = self.lif1(self.conv1(x[step]), mem1)
            spk1_rec.append(self.wta1(spk1, mem1))
        return torch.stack(spk1_rec)


def train(images: int, batch_size: int = 5, seed: int = 0, lr_plus: float = 0.2,
          reduction: str = "sequential") -> List[float]:
    """Learn on the first ``images`` digits; the convergence metric before and after each batch."""
    torch.manual_seed(seed)
    net = Net()
    group = attach(net, config=STDPConfig(lr_plus=lr_plus, lr_minus=0.75 * lr_plus),
                   initialize_weights=True, reduction=reduction)
    digits = embedded_mnist()[0][:images]
    history = [group.convergence()["conv1"]]
    with torch.no_grad():
        for batch in digits.split(batch_size):
            net(encode(batch))
            group.apply()
            history.append(group.convergence()["conv1"])
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
