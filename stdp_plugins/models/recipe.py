"""The reference network's recipe for a SpikingJelly or snnTorch version of it: the command
line, layer-wise training through the learners, the read-out of ``stdp-plugins train`` and
``metrics.json``. The examples ``examples/spikingjelly_kheradpisheh.py`` and
``examples/snntorch_kheradpisheh.py`` supply the framework parts (:class:`FrameworkNetwork`).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, Optional, Sequence

import torch
from torch import Tensor, nn

from ..backends import kernel_threads
from ..datasets import load_train_test
from ..encoding import DoGLatencyEncoder
from ..learning import STDPConfig, WTAConfig, WTAMode
from ..readout import shifted_readout_accuracy
from ..registry import attach
from .kheradpisheh import KheradpishehConfig

__all__ = ["FrameworkNetwork", "PAPER", "attach_paper_learners", "run"]

PAPER = KheradpishehConfig()
"""The paper's hyper-parameters: thresholds, winners, radii, pooling and rate schedule."""


def attach_paper_learners(model: nn.Module, seed: int = 0, synapses: Sequence[str] = ("conv1", "conv2")):
    """Attach the paper's learners to a framework model's two convolutions and draw their
    initial weights.

    Both learn by the multiplicative rule of the ``"kheradpisheh2018"`` preset from the
    winners of pointwise inhibition followed by ``k`` winners with a blocking radius (k = 5,
    radius 2 and k = 8, radius 1). The weights are drawn from one generator seeded with
    ``seed``, in model order, as :class:`~stdp_plugins.models.kheradpisheh.KheradpishehNet`
    draws them.

    Parameters
    ----------
    model : nn.Module
        A SpikingJelly or snnTorch version of the network.
    seed : int
        Seed of the initial weights.
    synapses : sequence of str
        Names of layer 1's and layer 2's convolution in ``model``.

    Returns
    -------
    LearnerGroup
        The learners by synapse name.
    """
    winners = {name: WTAConfig(mode=WTAMode.BOTH, local_radius=spec.radius, k_winners=spec.k_winners,
                               pointwise_inhibition=True)
               for name, spec in zip(synapses, (PAPER.layer1, PAPER.layer2))}
    group = attach(model, config=STDPConfig.from_paper(PAPER.paper), wta=winners)
    group.initialize_weights(torch.Generator().manual_seed(seed))
    return group


@dataclass(frozen=True)
class FrameworkNetwork:
    """The framework-specific parts of the reference network, as an example writes them.

    Attributes
    ----------
    name : str
        The framework, e.g. ``"SpikingJelly"`` (also the default ``--out`` folder).
    build_model : callable
        ``() -> model``.
    train_layer : callable
        ``(model, group, layer, inputs, epochs, batch_size, seed, progress)``: one layer's
        training through its learner.
    layer2_input : callable
        ``(model, input_times) -> times``: what layer 2 sees in training.
    featurizer : callable
        ``(model, encoder) -> featurize``: images to bool features.
    """

    name: str
    build_model: Callable[[], nn.Module]
    train_layer: Callable[..., None]
    layer2_input: Callable[[nn.Module, Tensor], Tensor]
    featurizer: Callable[[nn.Module, DoGLatencyEncoder], Callable[[Tensor], Tensor]]


def run(network: FrameworkNetwork, argv: Optional[Sequence[str]] = None) -> float:
    """The example's command line: train ``network`` layer by layer through its learners,
    read it out like ``stdp-plugins train``, write ``metrics.json``; returns the test accuracy.

    Options: ``--data FILE --test-data FILE --out DIR [--device cpu|cuda] [--batch-size B]
    [--seed S] [--train N] [--test N] [--epochs L1 L2] [--no-progress]``; the last line
    printed is ``accuracy: X%``.
    """
    parser = argparse.ArgumentParser(description=f"The reference network as a plain {network.name} model")
    parser.add_argument("--data", help="training set (.npz or *-images-idx3-ubyte[.gz]); default: embedded MNIST")
    parser.add_argument("--test-data", help="test set in the same formats (needed with --data)")
    parser.add_argument("--out", type=Path, default=Path(f"runs/{network.name.lower()}"), help="folder for metrics.json")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--batch-size", type=int, default=32, help="images per forward pass and learner step")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and the image orders")
    parser.add_argument("--train", type=int, help="use only the first N training digits")
    parser.add_argument("--test", type=int, help="use only the first N test digits")
    parser.add_argument("--epochs", type=int, nargs=2, default=[3, 20], metavar=("L1", "L2"),
                        help="epochs of layer 1 and layer 2 (default: 3 20)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    if args.data is not None and args.test_data is None:
        parser.error("--data needs --test-data (the accuracy is measured on a test set)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda was requested but CUDA is not available")
    started = time.perf_counter()
    train, test = load_train_test(args.data, args.test_data)
    (train_x, train_y), (test_x, test_y) = ((part[0][:n], part[1][:n]) for part, n in ((train, args.train),
                                                                                    (test, args.test)))
    device = torch.device(args.device)

    net = network.build_model().to(device)
    group = attach_paper_learners(net, args.seed)
    encoder = DoGLatencyEncoder(PAPER.time_steps).to(device)
    seconds: Dict[str, float] = {}
    # many small steps: torch runs in this thread, the learners' C kernels on all cores
    with kernel_threads():
        clock = time.perf_counter()
        input_times = encoder.spike_times(train_x.to(device))
        network.train_layer(net, group, 1, input_times, args.epochs[0], args.batch_size, args.seed, not args.no_progress)
        seconds["layer1_training"] = time.perf_counter() - clock
        clock = time.perf_counter()
        network.train_layer(net, group, 2, network.layer2_input(net, input_times), args.epochs[1], args.batch_size, args.seed,
                    not args.no_progress)
        seconds["layer2_training"] = time.perf_counter() - clock
        convergence = group.convergence()
        group.close()  # the hooks are gone: net is a plain framework model again

        clock = time.perf_counter()
        featurize = network.featurizer(net, encoder)
        accuracy = shifted_readout_accuracy(featurize, (train_x, train_y), (test_x, test_y), shift=1, copies=2,
                                            c=2.4, seed=args.seed)
        seconds["readout"] = time.perf_counter() - clock

    n_train, n_test = train_x.shape[0], test_x.shape[0]
    images = {"layer1_training": args.epochs[0] * n_train, "layer2_training": args.epochs[1] * n_train,
              "readout": 3 * n_train + 5 * n_test}  # images featurized: digits and shifted copies
    metrics = {
        "accuracy": {"test": accuracy},
        "wall_time_seconds": time.perf_counter() - started,
        "seconds": seconds,
        "images_per_second": {phase: images[phase] / max(s, 1e-9) for phase, s in seconds.items()},
        "convergence": convergence,
        "n_train": n_train, "n_test": n_test, "epochs": args.epochs, "batch_size": args.batch_size,
        "seed": args.seed, "device": args.device, "threads": torch.get_num_threads(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(f"wrote {args.out / 'metrics.json'}")
    print(f"accuracy: {accuracy:.2%}")
    return accuracy
