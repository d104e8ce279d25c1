"""PNG figures of a training run (matplotlib, Agg backend, no display needed)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Dict, Sequence, Tuple, Union

from torch import Tensor

from .learning._checks import check_tensor

__all__ = ["plot_layer1_kernels", "plot_convergence"]

PathLike = Union[str, os.PathLike]


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_layer1_kernels(weights: Tensor, path: PathLike, columns: int = 8) -> Path:
    """Draw each layer-1 kernel as an on/off-centre image: ``w[on] - w[off]``.

    Bright pixels are synapses from on-centre (dark-to-bright) inputs, dark pixels from
    off-centre inputs.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, 2, k, k]`` layer-1 weights in ``[0, 1]``.
    path : path
        Output PNG.
    columns : int
        Kernels per row.
    """
    check_tensor("weights", weights, 4, "[C_out, 2, k, k]")
    if weights.shape[1] != 2:
        raise ValueError(f"weights must have 2 input channels (on, off), got shape {tuple(weights.shape)}")
    plt = _pyplot()
    images = (weights[:, 0] - weights[:, 1]).detach().float().cpu()
    n = images.shape[0]
    columns = max(1, min(columns, n))
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(1.2 * columns, 1.2 * rows + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(images[i].numpy(), cmap="gray", vmin=-1.0, vmax=1.0, interpolation="nearest")
            ax.set_title(str(i), fontsize=7)
    fig.suptitle("Layer-1 kernels (on - off)")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_convergence(
    history: Dict[int, Sequence[Tuple[int, float]]], path: PathLike, threshold: float = 0.01
) -> Path:
    """Plot the convergence metric of each layer against the images it has seen.

    Parameters
    ----------
    history : dict
        ``{layer: [(images_seen, metric), ...]}``.
    path : path
        Output PNG.
    threshold : float
        Convergence threshold drawn as a dashed line.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 4))
    for layer, points in sorted(history.items()):
        if points:
            seen, metric = zip(*points)
            ax.plot(seen, metric, label=f"layer {layer}")
    ax.axhline(threshold, color="gray", linestyle="--", label=f"threshold {threshold:g}")
    ax.set_yscale("log")
    ax.set_xlabel("training images seen by the layer")
    ax.set_ylabel("convergence metric  mean w(1-w)")
    ax.legend()
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
