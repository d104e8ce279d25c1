"""Unsupervised first-spike STDP on MNIST digits with an ordinary SpikingJelly model.

A plain ``nn.Sequential`` of SpikingJelly layers (convolution, IF neurons) plus the
plug-in's WTA layer learns without labels: :func:`stdp_plugins.registry.attach` adds a
learner to the convolution, and every batch the weights move by Kheradpisheh-2018
first-spike STDP. The convergence metric ``mean(w (1 - w))`` falls as the weights settle
at 0 or 1.

Run::

    python examples/spikingjelly_stdp.py --images 600 --batch-size 5
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import List, Optional, Sequence

import numpy as np
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import stdp_plugins
from stdp_plugins.learning import STDPConfig, WTAConfig, WTAMode
from stdp_plugins.registry import attach
from stdp_plugins.spikingjelly import WTALayer

DATA = Path(stdp_plugins.__file__).parent / "data" / "mnist8k.npz"
TIME_STEPS = 15


def load_digits(count: int) -> torch.Tensor:
    """The first ``count`` training digits as floats in [0, 1], ``[count, 28, 28]``."""
    with np.load(DATA) as data:
        images = data["images"][:count]
    return torch.from_numpy(images).float() / 255.0


def latency_encode(images: torch.Tensor, steps: int = TIME_STEPS, cutoff: float = 0.2) -> torch.Tensor:
    """Intensity-to-latency spike waves ``[T, N, 1, H, W]``: brighter pixels fire earlier
    and keep firing; pixels at or below ``cutoff`` never fire."""
    first = ((1.0 - images) * steps).floor().clamp(max=steps - 1)
    t = torch.arange(steps).view(steps, 1, 1, 1)
    return ((t >= first) & (images > cutoff)).float().unsqueeze(2)


def build_model() -> nn.Sequential:
    """Conv 5x5 (1 -> 16 maps), non-leaky IF neurons, k-winners-take-all."""
    return nn.Sequential(
        layer.Conv2d(1, 16, 5, bias=False),
        neuron.IFNode(v_threshold=15.0),
        WTALayer(WTAConfig(mode=WTAMode.BOTH, local_radius=2, k_winners=5)),
    )


def train(images: int, batch_size: int = 5, seed: int = 0, lr_plus: float = 0.2) -> List[float]:
    """Learn on the first ``images`` digits; the convergence metric before and after each batch."""
    torch.manual_seed(seed)
    net = build_model()
    functional.set_step_mode(net, "m")
    group = attach(net, config=STDPConfig(lr_plus=lr_plus, lr_minus=0.75 * lr_plus), initialize_weights=True)
    digits = load_digits(images)
    history = [group.convergence()["0"]]
    with torch.no_grad():
        for start in range(0, len(digits), batch_size):
            net(latency_encode(digits[start:start + batch_size]))
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
    args = parser.parse_args(argv)
    history = train(args.images, args.batch_size, args.seed)
    print("images  convergence")
    for batch, metric in enumerate(history):
        print(f"{min(batch * args.batch_size, args.images):6d}  {metric:.5f}")


if __name__ == "__main__":
    main()
