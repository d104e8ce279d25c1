"""The ``stdp-plugins`` command: ``train``, ``evaluate``, ``plot`` and ``export``.

``stdp-plugins train`` trains the Kheradpisheh (2018) network layer by layer without
labels, reads it out with a linear SVM and writes into ``--out``:

- ``model.pt``: weights, configuration and the fitted read-out (for ``evaluate``, and
  :func:`~stdp_plugins.serialization.load_weights` into a SpikingJelly or snnTorch model);
- ``checkpoint.pt``: the training state (for ``--resume``);
- ``metrics.json``: accuracy, silent-image fraction, convergence per layer, images/s per
  phase and wall time;
- ``kernels.png`` and ``convergence.png``.

Without ``--data`` the embedded MNIST subset is used: the first 6,000 digits train, the
last 2,000 test. ``--config`` takes a network file (TOML or JSON, ``docs/networks.md``) or a
shipped preset (``mnist``, the default, or ``caltech``); both ``.pt`` files open with
``torch.load(path, weights_only=True)``.

Started by ``torchrun`` (``WORLD_SIZE`` > 1), ``train`` runs data-parallel
(:mod:`stdp_plugins.distributed`) with the weights of one process: every rank trains on
its shard of each batch and computes its share of the read-out features; rank 0 fits the
read-out and alone writes files. A lost rank ends the others with exit status 3 after at
most ``--dist-timeout`` seconds; the last checkpoint is kept for ``--resume``.
"""

from __future__ import annotations

import argparse
import collections
import json
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor

from . import distributed
from .datasets import DatasetError, load_dataset, load_train_test, shift_images
from .encoding import dog_filter
from .figures import plot_convergence, plot_layer1_kernels
from .backends import REDUCTIONS, kernel_threads
from .models.config import PRESETS, load_network_config
from .models.kheradpisheh import KheradpishehConfig, KheradpishehNet
from .readout import (
    FeatureMemo,
    Featurizer,
    LinearReadout,
    fit_readout,
    predict_shifted,
    shift_offsets,
    shifted_training_set,
    silent_fraction,
)
from .serialization import CheckpointError, checkpoint_weights, load_checkpoint, save_checkpoint
from .training import LayerwiseTrainer, TrainConfig, TrainingInterrupted

__all__ = ["main", "build_parser", "load_model", "extract_features", "spike_features"]

MODEL_FILE = "model.pt"
CHECKPOINT_FILE = "checkpoint.pt"
METRICS_FILE = "metrics.json"
EXIT_INTERRUPTED = 130
EXIT_LOST_RANK = 3


def _non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {value}")
    return value


def _network_file(text: str) -> KheradpishehConfig:
    """argparse type: a network file or preset name (:func:`~stdp_plugins.models.config.load_network_config`)."""
    try:
        return load_network_config(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("error: --device cuda was requested but CUDA is not available")
    return torch.device(name)


def spike_features(model: KheradpishehNet) -> Callable[[Tensor], Tensor]:
    """The featurizer of ``model``: uint8 images ``[n, H, W]`` to bool features on the CPU,
    equal to ``model.features(model.encode(images))``.

    The features depend only on which inputs fire, not when (see
    :meth:`~stdp_plugins.models.kheradpisheh.KheradpishehNet.features`), and the latency
    code gives every DoG response that passes the encoder's threshold a step in
    ``[0, time_steps)``; so the DoG filter alone decides the input, and the local
    normalisation and the latency ranking (most of the encoder's work) are skipped. The
    native kernels get all of torch's threads, torch's own steps run in the calling thread
    (:func:`~stdp_plugins.backends.kernel_threads`).
    """
    device = model.conv1.weight.device
    encoder = model.encoder

    def featurize(images: Tensor) -> Tensor:
        # torch's small steps in this thread, the native kernels on all of torch's threads
        with kernel_threads():
            fired = dog_filter(images.to(device), encoder.kernels, encoder.threshold) > 0
            return model.features(torch.where(fired, 0.0, math.inf)).cpu()

    return featurize


def extract_features(model: KheradpishehNet, images: Tensor, batch_size: int = 512,
                     featurize: Optional[Featurizer] = None) -> Tuple[Tensor, float]:
    """Features (bool ``[N, 150, 9, 9]``, CPU) of uint8 images and the images/s it took
    (``featurize``: another featurizer of ``model``, default :func:`spike_features`)."""
    featurize = featurize or spike_features(model)
    start = time.perf_counter()
    parts = [featurize(chunk) for chunk in images.split(batch_size)]
    seconds = time.perf_counter() - start
    return torch.cat(parts), images.shape[0] / max(seconds, 1e-9)


def save_model(path: Path, model: KheradpishehNet, readout: LinearReadout, seed: int, readout_shift: int = 0) -> None:
    """Write ``model.pt`` (:func:`~stdp_plugins.serialization.save_checkpoint`):
    configuration, weights ``conv1 .. convN``, read-out and its shift (see
    :func:`~stdp_plugins.readout.predict_shifted`)."""
    save_checkpoint(path, {
        "kind": "model",
        "model_config": model.config.to_dict(),
        "seed": seed,
        "weights": {f"conv{layer}": model.weight(layer).detach().cpu() for layer in range(1, model.num_layers + 1)},
        "readout": readout.state_dict(),
        "readout_shift": readout_shift,
    })


def load_model(model_dir: Path, device: torch.device) -> Tuple[KheradpishehNet, LinearReadout, int]:
    """Load the network, read-out and read-out shift that ``train`` wrote into ``model_dir``;
    raises :class:`~stdp_plugins.serialization.CheckpointError` on a damaged or foreign file."""
    path = Path(model_dir) / MODEL_FILE
    payload = load_checkpoint(path)
    try:
        if payload.get("kind") != "model":
            raise CheckpointError(f"{path}: not a trained model file (kind {payload.get('kind')!r})")
        model = KheradpishehNet(KheradpishehConfig(**payload["model_config"]), seed=int(payload["seed"]))
        weights = checkpoint_weights(payload, str(path))
        if [tuple(w.shape) for w in weights] != [tuple(w.shape) for w in model.weights()]:
            raise CheckpointError(f"{path}: weights do not match the network configuration stored with them")
        with torch.no_grad():
            for param, saved in zip(model.weights(), weights):
                param.copy_(saved)
        readout = LinearReadout.from_state_dict(payload["readout"])
        readout_shift = int(payload["readout_shift"])
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        if isinstance(exc, CheckpointError):
            raise
        raise CheckpointError(f"{path}: incomplete or malformed model file ({exc!r})") from exc
    return model.to(device), readout, readout_shift


def _datasets(args: argparse.Namespace) -> Tuple[Tuple[Tensor, Tensor], Optional[Tuple[Tensor, Tensor]], str]:
    train, test = load_train_test(args.data, args.test_data)
    source = "embedded mnist8k.npz (first 6000 train, last 2000 test)" if args.data is None else str(args.data)
    if args.limit is not None:
        train = (train[0][: args.limit], train[1][: args.limit])
    if args.test_limit is not None and test is not None:
        test = (test[0][: args.test_limit], test[1][: args.test_limit])
    return train, test, source


def _convergence_report(trainer: LayerwiseTrainer) -> Dict[str, Dict]:
    model = trainer.model
    threshold = model.config.stdp.convergence_threshold
    report = {}
    for layer in range(1, model.num_layers + 1):
        metric = model.convergence(layer)
        report[f"layer{layer}"] = {
            "metric": metric,
            "threshold": threshold,
            "reached": metric < threshold,
            "images_seen": trainer.state.images_seen[layer - 1],
        }
    return report


def _train(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    device = _device(args.device)
    group = distributed.init_from_env(args.dist_timeout, device, args.dist_backend)
    try:
        return _train_in(args, device, group, started)
    finally:
        distributed.shutdown()


def _readout_images(args: argparse.Namespace, train_x: Tensor, test: Optional[Tuple[Tensor, Tensor]]
                    ) -> List[Tuple[Tensor, List[Tuple[int, int]]]]:
    """The image sets the read-out featurizes, each with its offsets: the training images
    in every direction the fit may take copies from, the test images at the prediction's."""
    sets = [(train_x, shift_offsets(args.readout_shift, args.readout_directions))]
    return sets + ([(test[0], shift_offsets(args.readout_shift))] if test is not None else [])


def _shared_featurizer(model: KheradpishehNet, image_sets: List[Tuple[Tensor, List[Tuple[int, int]]]],
                       group: Any) -> Tuple[Optional[Featurizer], float]:
    """Features of the image sets at their offsets computed by every rank and held on rank
    0 (:func:`~stdp_plugins.distributed.gathered_featurizer`), and the images/s."""
    start = time.perf_counter()
    sets = [x if (dy, dx) == (0, 0) else shift_images(x, dy, dx) for x, offsets in image_sets for dy, dx in offsets]
    featurize = distributed.gathered_featurizer(spike_features(model), sets, group)
    return featurize, sum(x.shape[0] for x in sets) / max(time.perf_counter() - start, 1e-9)


def _extract_readout_features(args: argparse.Namespace, featurize: FeatureMemo, train: Tuple[Tensor, Tensor],
                              test: Optional[Tuple[Tensor, Tensor]]) -> float:
    """Featurize, once, every image the read-out needs: the fit's rows (the training images
    and their copies) and the shifted copies the predictions sum; returns the images/s."""
    start = time.perf_counter()
    rows, _ = shifted_training_set(featurize, *train, args.readout_shift, args.readout_copies,
                                   directions=args.readout_directions)
    collections.deque(rows, maxlen=0)
    for images in [train[0]] + ([test[0]] if test is not None else []):
        for dy, dx in shift_offsets(args.readout_shift):
            for chunk in images.split(512):
                featurize(shift_images(chunk, dy, dx) if (dy, dx) != (0, 0) else chunk)
    return featurize.computed / max(time.perf_counter() - start, 1e-9)


def _train_in(args: argparse.Namespace, device: torch.device, group: Optional[Any], started: float) -> int:
    rank = distributed.get_rank(group)
    out = Path(args.out)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
    (train_x, train_y), test, source = _datasets(args)
    network = args.config if args.config is not None else KheradpishehConfig()
    try:
        network.feature_shape(*train_x.shape[1:])
    except ValueError as exc:
        raise DatasetError(f"{source}: the images do not fit the network: {exc}") from None
    config = TrainConfig(
        batch_size=args.batch_size, reduction=args.reduction, epochs=tuple(args.epochs),
        stop_at_convergence=args.stop_at_convergence, seed=args.seed,
        checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
    )
    model = KheradpishehNet(network, seed=args.seed).to(device)
    trainer = LayerwiseTrainer(model, train_x, config, out / CHECKPOINT_FILE, group)
    if args.resume:
        trainer.resume()
        if rank == 0:
            print(f"resumed from {out / CHECKPOINT_FILE} (layer {min(trainer.state.phase, model.num_layers)}, "
                  f"{sum(trainer.state.images_seen)} images trained)")
    encode_start = time.perf_counter()
    trainer.layer_inputs(1)
    encode_rate = train_x.shape[0] / max(time.perf_counter() - encode_start, 1e-9)
    try:
        trainer.train()
    except TrainingInterrupted as stop:
        if rank == 0:
            print(f"\ninterrupted: checkpoint saved to {stop.checkpoint}; continue with --resume", file=sys.stderr)
        return EXIT_INTERRUPTED
    if group is not None:
        featurize, feature_rate = _shared_featurizer(model, _readout_images(args, train_x, test), group)
        if featurize is None:  # rank 0 fits and evaluates the read-out
            return 0
    else:  # every feature the read-out uses, extracted once (the fit and the predictions share them)
        featurize = FeatureMemo(spike_features(model))
        feature_rate = _extract_readout_features(args, featurize, (train_x, train_y), test)
    readout_start = time.perf_counter()
    rows, labels = shifted_training_set(featurize, train_x, train_y, args.readout_shift, args.readout_copies,
                                        directions=args.readout_directions)
    readout = fit_readout(rows, labels, c=args.svm_c, seed=args.seed, max_iter=args.svm_max_iter)
    readout_seconds = time.perf_counter() - readout_start
    del rows, labels
    # the features are looked up chunk by chunk (never all of a set's rows at once)
    silent = {"train": _silent_fraction(featurize, train_x)}
    accuracy = {"train": _accuracy(readout, featurize, train_x, train_y, args.readout_shift)}
    if test is not None:
        silent["test"] = _silent_fraction(featurize, test[0])
        accuracy["test"] = _accuracy(readout, featurize, test[0], test[1], args.readout_shift)
    save_model(out / MODEL_FILE, model, readout, args.seed, args.readout_shift)
    rates = trainer.images_per_second()
    metrics = {
        "accuracy": accuracy,
        "silent_fraction": silent,
        "convergence": _convergence_report(trainer),
        "images_per_second": {
            "encoding": encode_rate,
            **{f"{layer}_training": rate for layer, rate in rates.items()},
            "feature_extraction": feature_rate,
        },
        "readout_fit_seconds": readout_seconds,
        "peak_rss_mib": _peak_rss_mib(),
        "wall_time_seconds": time.perf_counter() - started,
        "data": {"train": source, "n_train": int(train_x.shape[0]),
                 "test": args.test_data or (None if args.data else "embedded"),
                 "n_test": int(test[0].shape[0]) if test is not None else 0},
        "device": str(device),
        "processes": distributed.get_world_size(group),
        "threads": torch.get_num_threads(),
        "model_config": model.config.to_dict(),
        "train_config": asdict(config),
        "svm_c": args.svm_c,
        "svm_max_iter": args.svm_max_iter,
        "readout_shift": args.readout_shift,
        "readout_copies": args.readout_copies,
        "readout_directions": args.readout_directions,
    }
    metrics = _json_safe(metrics)
    (out / METRICS_FILE).write_text(json.dumps(metrics, indent=2))
    _figures(out, model, trainer.history)
    shown = ", ".join(f"{k} {v:.2%}" for k, v in accuracy.items())
    print(f"accuracy: {shown}; wrote {out / METRICS_FILE}")
    return 0


def _silent_fraction(featurize: Featurizer, images: Tensor, batch_size: int = 512) -> float:
    """:func:`~stdp_plugins.readout.silent_fraction` of the features of ``images``, computed
    ``batch_size`` images at a time."""
    silent = sum(silent_fraction(featurize(chunk)) * chunk.shape[0] for chunk in images.split(batch_size))
    return silent / max(images.shape[0], 1)


def _accuracy(readout: LinearReadout, featurize: Featurizer, images: Tensor, labels: Tensor, shift: int,
              features: Optional[Tensor] = None) -> float:
    """Fraction of ``labels`` that :func:`~stdp_plugins.readout.predict_shifted` gets right
    (``features``: the images' own, when the caller has them)."""
    if labels.numel() == 0:
        raise ValueError("labels must not be empty")
    predicted = predict_shifted(readout, featurize, images, shift, features=features)
    return float((predicted == labels.to(torch.int64)).to(torch.float64).mean())


def _peak_rss_mib() -> Optional[float]:
    try:
        import resource
    except ImportError:  # not on this platform
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024.0 * 1024.0) if sys.platform == "darwin" else peak / 1024.0


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def _figures(out: Path, model: KheradpishehNet, history: Dict[int, List[Tuple[int, float]]]) -> None:
    plot_layer1_kernels(model.conv1.weight, out / "kernels.png")
    plot_convergence(history, out / "convergence.png", model.config.stdp.convergence_threshold)


def _evaluate(args: argparse.Namespace) -> int:
    device = _device(args.device)
    model, readout, shift = load_model(Path(args.model), device)
    images, labels = load_dataset(args.data)
    features, rate = extract_features(model, images)
    accuracy = _accuracy(readout, spike_features(model), images, labels, shift, features)
    result = {
        "data": str(args.data),
        "n_images": int(images.shape[0]),
        "accuracy": accuracy,
        "silent_fraction": silent_fraction(features),
        "feature_images_per_second": rate,
    }
    target = Path(args.out) if args.out else Path(args.model) / "evaluation.json"
    target.write_text(json.dumps(result, indent=2))
    print(f"accuracy: {accuracy:.2%} on {images.shape[0]} images of {args.data}; wrote {target}")
    return 0


def _plot(args: argparse.Namespace) -> int:
    model_dir = Path(args.model)
    model, _, _ = load_model(model_dir, torch.device("cpu"))
    checkpoint = model_dir / CHECKPOINT_FILE
    history: Dict[int, List[Tuple[int, float]]] = {1: [], 2: []}
    if checkpoint.exists():
        history = {int(k): [tuple(p) for p in v] for k, v in load_checkpoint(checkpoint)["history"].items()}
    _figures(model_dir, model, history)
    print(f"wrote {model_dir / 'kernels.png'} and {model_dir / 'convergence.png'}")
    return 0


def _export(args: argparse.Namespace) -> int:
    """Write the trained network as a NIR graph (:func:`stdp_plugins.nir_export.export_nir`)."""
    from .nir_export import export_nir

    model, _, _ = load_model(Path(args.model), torch.device("cpu"))
    try:
        graph = export_nir(model, args.out, tuple(args.input_size))
    except ImportError as exc:  # the optional 'nir' package
        print(f"error: --format nir needs the 'nir' package ({exc}); install stdp-plugins[nir]", file=sys.stderr)
        return 2
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}: NIR graph of {len(graph.nodes)} nodes for [2, {args.input_size[0]}, "
          f"{args.input_size[1]}] spike waves")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``stdp-plugins``."""
    parser = argparse.ArgumentParser(
        prog="stdp-plugins",
        description="Train and evaluate the Kheradpisheh (2018) STDP network on digits.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train layer by layer without labels, then fit the SVM read-out")
    train.add_argument("--data", help="training set (.npz or *-images-idx3-ubyte[.gz]); default: embedded MNIST")
    train.add_argument("--test-data", help="test set in the same formats")
    train.add_argument("--out", default="stdp-run", help="output folder (default: %(default)s)")
    train.add_argument("--batch-size", type=int, default=TrainConfig.batch_size,
                       help="images per forward pass (1 = one image at a time)")
    train.add_argument("--reduction", choices=REDUCTIONS, default=TrainConfig.reduction,
                       help="apply a batch's STDP steps one image after another (sequential) or "
                            "as one per-channel average (mean)")
    train.add_argument("--config", type=_network_file, metavar="FILE",
                       help="the network: a TOML or JSON network file, or a preset "
                            f"({', '.join(PRESETS)}; default: mnist)")
    train.add_argument("--epochs", type=int, nargs="+", metavar="E",
                       help="epoch budget: one value for every layer or one per layer (default: 3 20 for a "
                            "two-layer network, 3 per layer otherwise)")
    train.add_argument("--stop-at-convergence", action="store_true",
                       help="end a layer as soon as its convergence metric is below the preset's 0.01")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--checkpoint-every", type=int, default=TrainConfig.checkpoint_every, metavar="N",
                       help="write a checkpoint every N training images (0: only at layer ends and Ctrl-C)")
    train.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.pt")
    train.add_argument("--limit", type=int, help="use only the first N training images")
    train.add_argument("--test-limit", type=int, help="use only the first N test images")
    train.add_argument("--svm-c", type=float, default=2.4, help="LinearSVC C (default: %(default)s)")
    train.add_argument("--svm-max-iter", type=int, default=1000, help="LinearSVC iteration cap (default: %(default)s)")
    train.add_argument("--readout-shift", type=_non_negative_int, default=1, metavar="PIXELS",
                       help="also fit the SVM on copies of the training images moved PIXELS up, down, left "
                            "or right, and classify by the summed scores of an image and its four shifted "
                            "copies (0: the images only; default: %(default)s)")
    train.add_argument("--readout-copies", type=int, choices=range(1, 9), default=4, metavar="{1..8}",
                       help="shifted copies per training image, directions taken round-robin "
                            "(at most --readout-directions; default: %(default)s)")
    train.add_argument("--readout-directions", type=int, choices=(4, 8), default=8,
                       help="directions of the training copies: 4 straight, or 8 with the diagonals "
                            "(default: %(default)s; chosen by cross-validation inside the training digits)")
    train.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    train.add_argument("--threads", type=int, help="CPU threads for torch and the event kernel (default: torch's)")
    train.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    train.add_argument("--dist-timeout", type=float, default=600.0, metavar="SECONDS",
                       help="with several processes (torchrun): seconds a rank waits for the others before it "
                            "stops with an error naming the lost rank (default: %(default)s)")
    train.add_argument("--dist-backend", choices=("gloo", "nccl"),
                       help="with several processes: the torch.distributed backend (default: nccl for cuda, "
                            "gloo for cpu)")
    train.set_defaults(handler=_train)

    evaluate = sub.add_parser("evaluate", help="accuracy of a trained model on a data file")
    evaluate.add_argument("--model", required=True, help="folder written by 'train'")
    evaluate.add_argument("--data", required=True, help=".npz or *-images-idx3-ubyte[.gz]")
    evaluate.add_argument("--out", help="JSON result file (default: MODEL/evaluation.json)")
    evaluate.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    evaluate.set_defaults(handler=_evaluate)

    plot = sub.add_parser("plot", help="redraw the figures of a trained model")
    plot.add_argument("--model", required=True, help="folder written by 'train'")
    plot.set_defaults(handler=_plot)

    export = sub.add_parser("export", help="write a trained model for other frameworks (a NIR graph)")
    export.add_argument("--model", required=True, help="folder written by 'train'")
    export.add_argument("--format", choices=("nir",), default="nir",
                        help="nir: a NIR graph for SpikingJelly's and snnTorch's importers (default)")
    export.add_argument("--out", required=True, help="file to write (NIR's HDF5 format)")
    export.add_argument("--input-size", type=int, nargs=2, default=[28, 28], metavar=("H", "W"),
                        help="image size the graph takes (default: 28 28)")
    export.set_defaults(handler=_export)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run ``stdp-plugins``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "train":
        if args.batch_size < 1:
            parser.error(f"--batch-size must be >= 1, got {args.batch_size}")
        layers = (args.config or KheradpishehConfig()).num_layers
        if args.epochs is None:
            args.epochs = list(TrainConfig.epochs) if len(TrainConfig.epochs) == layers else [TrainConfig.epochs[0]]
        if len(args.epochs) not in (1, layers) or min(args.epochs) < 0:
            parser.error(f"--epochs takes one non-negative integer or {layers} (one per layer), got {args.epochs}")
        if args.checkpoint_every < 0:
            parser.error(f"--checkpoint-every must be >= 0, got {args.checkpoint_every}")
        if args.readout_copies > args.readout_directions:
            parser.error(f"--readout-copies must be at most --readout-directions={args.readout_directions}, "
                         f"got {args.readout_copies}")
        if not args.dist_timeout > 0:
            parser.error(f"--dist-timeout must be > 0, got {args.dist_timeout}")
        for name in ("limit", "test_limit", "svm_max_iter", "threads"):
            value = getattr(args, name)
            if value is not None and value < 1:
                parser.error(f"--{name.replace('_', '-')} must be >= 1, got {value}")
    if args.command == "export" and min(args.input_size) < 1:
        parser.error(f"--input-size takes two integers >= 1, got {args.input_size}")
    try:
        return args.handler(args)
    except (DatasetError, CheckpointError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except distributed.DistributedError as exc:
        checkpoint = Path(args.out) / CHECKPOINT_FILE
        kept = f"; the last checkpoint {checkpoint} is intact: continue with --resume" if checkpoint.exists() else ""
        print(f"error: {exc}{kept}", file=sys.stderr)
        return EXIT_LOST_RANK
    except KeyboardInterrupt:  # outside the training loop: nothing to save
        print("\ninterrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
