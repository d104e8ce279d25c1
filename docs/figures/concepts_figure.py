"""Draw the figure of the concepts page (``docs/_static/concepts.png``).

Panel (a) plots the STDP step of both variants against the weight; panels (b) and (c)
train the first convolutional layer of Kheradpisheh et al. (2018) without labels on the first
2,000 embedded MNIST digits (batches of 4), with nothing but the functional core, and show
the convergence metric (eq. 4) after every batch update and the learned kernels.

Run ``python docs/figures/concepts_figure.py [OUTPUT.png] [--images N]``; the test suite
runs it on a small slice.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from stdp_plugins import (  # noqa: E402
    STDPConfig,
    STDPLearner,
    STDPVariant,
    WTAMode,
    get_first_spike_times,
    select_winners,
    stdp_weight_factor,
)
from stdp_plugins.datasets import embedded_mnist  # noqa: E402
from stdp_plugins.encoding import encode_images, spike_waves  # noqa: E402

DEFAULT_OUTPUT = Path(__file__).resolve().parent.parent / "_static" / "concepts.png"
TIME_STEPS = 15
THRESHOLD = 10.0


def stdp_step_panel(ax: plt.Axes) -> None:
    """Potentiation and depression step against the weight, both variants."""
    cfg = STDPConfig()
    w = torch.linspace(0.0, 1.0, 201)
    for variant, style in ((STDPVariant.MULTIPLICATIVE, "-"), (STDPVariant.ADDITIVE, "--")):
        factor = stdp_weight_factor(w, variant)
        name = variant.value
        ax.plot(w, cfg.lr_plus * factor, style, color="tab:red", label=f"LTP, {name}")
        ax.plot(w, -cfg.lr_minus * factor, style, color="tab:blue", label=f"LTD, {name}")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_xlabel("weight $w$")
    ax.set_ylabel(r"$\Delta w$")
    ax.set_title("(a) STDP step, $a^+=0.004$, $a^-=0.003$")
    ax.legend(fontsize=7, ncol=2, loc="center", bbox_to_anchor=(0.5, 0.74))


def train_first_layer(n_images: int, batch_size: int = 10, seed: int = 0) -> tuple[torch.Tensor, list[float]]:
    """Layer 1 of the reference network on the first ``n_images`` embedded digits."""
    torch.manual_seed(seed)
    images = embedded_mnist()[0][:n_images]
    learner = STDPLearner(STDPConfig(lr_plus=0.05, lr_minus=0.0375, weight_init_mean=0.8, weight_init_std=0.05))
    weights = learner.initialize_weights((32, 2, 5, 5))
    for batch in images.split(batch_size):
        pre_times = encode_images(batch, TIME_STEPS)                       # [N, 2, 28, 28]
        waves = spike_waves(pre_times, TIME_STEPS)                         # [T, N, 2, 28, 28]
        potentials = F.conv2d(waves.flatten(0, 1), weights, padding=2).unflatten(0, waves.shape[:2])
        post_times = get_first_spike_times(potentials >= THRESHOLD)        # fire once: [N, 32, 28, 28]
        step = post_times.nan_to_num(posinf=TIME_STEPS - 1).long()
        at_spike = potentials.gather(0, step[None])[0]                     # potential when it fired
        # Pointwise inhibition, then k = 5 winners that block their map and a radius of 2.
        pointwise = select_winners(post_times, at_spike, WTAMode.LOCAL, radius=0)
        post_times = torch.where(pointwise, post_times, torch.inf)
        winners = select_winners(post_times, at_spike, WTAMode.BOTH, radius=2, k_winners=5)
        delta = learner.compute_batch_update(weights, pre_times, post_times, winners, padding=2)
        learner.apply_update(weights, delta)
    return weights, learner.convergence_history


def convergence_panel(ax: plt.Axes, history: list[float], batch_size: int) -> None:
    images_seen = batch_size * np.arange(1, len(history) + 1)
    ax.plot(images_seen, history, color="tab:green")
    ax.axhline(0.01, color="0.5", ls=":", label="threshold 0.01")
    ax.set_yscale("log")
    ax.set_xlabel("images seen")
    ax.set_ylabel(r"$C = \overline{w(1-w)}$")
    ax.set_title("(b) convergence metric, layer 1")
    ax.legend(fontsize=7)


def kernels_panel(ax: plt.Axes, weights: torch.Tensor) -> None:
    """On-centre minus off-centre weight of every map, tiled 4 x 8 with a 1-pixel gap."""
    kernels = (weights[:, 0] - weights[:, 1]).unflatten(0, (4, 8))            # [4, 8, 5, 5]
    tiles = F.pad(kernels, (0, 1, 0, 1), value=float("nan"))                    # [4, 8, 6, 6]
    mosaic = tiles.permute(0, 2, 1, 3).reshape(4 * 6, 8 * 6)[:-1, :-1]
    ax.imshow(mosaic.numpy(), cmap="RdBu_r", vmin=-1.0, vmax=1.0)
    ax.set_axis_off()
    ax.set_title("(c) learned kernels, on $-$ off")


def main(argv: list[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", nargs="?", type=Path, default=DEFAULT_OUTPUT)
    parser.add_argument("--images", type=int, default=2000, help="training digits (default 2000)")
    args = parser.parse_args(argv)
    batch_size = 4
    weights, history = train_first_layer(args.images, batch_size)
    fig = plt.figure(figsize=(12, 3.4), layout="constrained")
    axes = fig.subplots(1, 3, width_ratios=[1.0, 1.0, 1.2])
    stdp_step_panel(axes[0])
    convergence_panel(axes[1], history, batch_size)
    kernels_panel(axes[2], weights)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.output, dpi=110)
    plt.close(fig)
    return args.output


if __name__ == "__main__":
    print(main())
