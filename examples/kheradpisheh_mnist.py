"""Replicate Kheradpisheh et al. (2018) on the embedded MNIST digits, and draw its figures.

Trains the reference network layer by layer without labels, reads it out with a linear
SVM (fitted on the training digits and shifted copies of them, as ``stdp-plugins train``
does), prints the test accuracy and the convergence metric of both layers, and writes the
two figures of the documentation into ``--out``: ``kheradpisheh_kernels.png`` (the learned
layer-1 kernels as on/off-centre images) and ``kheradpisheh_convergence.png`` (the
convergence metric against the images each layer has seen).

Run (the documentation's figures come from the full default run)::

    python examples/kheradpisheh_mnist.py --out docs/_static
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Optional, Sequence

import torch

from stdp_plugins.datasets import embedded_split
from stdp_plugins.figures import plot_convergence, plot_layer1_kernels
from stdp_plugins.models.kheradpisheh import KheradpishehNet
from stdp_plugins.readout import fit_readout, predict_shifted, shifted_training_set
from stdp_plugins.training import LayerwiseTrainer, TrainConfig


def main(argv: Optional[Sequence[str]] = None) -> float:
    """Train, evaluate and draw; returns the test accuracy."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=6000, help="training digits (first N of 6,000)")
    parser.add_argument("--test", type=int, default=2000, help="test digits (first N of 2,000)")
    parser.add_argument("--epochs", type=int, nargs=2, default=list(TrainConfig.epochs), metavar=("E1", "E2"))
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the two figures")
    args = parser.parse_args(argv)

    (train_x, train_y), (test_x, test_y) = embedded_split()
    train_x, train_y = train_x[: args.train], train_y[: args.train]
    test_x, test_y = test_x[: args.test], test_y[: args.test]

    net = KheradpishehNet(seed=0)
    config = TrainConfig(batch_size=args.batch_size, epochs=tuple(args.epochs), checkpoint_every=0)
    history = LayerwiseTrainer(net, train_x, config).train()

    with torch.no_grad():
        readout = fit_readout(*shifted_training_set(net, train_x, train_y, shift=1, copies=2))
        accuracy = (predict_shifted(readout, net, test_x, shift=1) == test_y).double().mean().item()
    print(f"test accuracy {accuracy:.4f}")
    print(f"convergence layer1 {net.convergence(1):.5f} layer2 {net.convergence(2):.5f}")

    args.out.mkdir(parents=True, exist_ok=True)
    plot_layer1_kernels(net.conv1.weight, args.out / "kheradpisheh_kernels.png")
    plot_convergence(history, args.out / "kheradpisheh_convergence.png", net.config.stdp.convergence_threshold)
    return accuracy


if __name__ == "__main__":
    main()
