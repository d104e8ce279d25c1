"""Layer-wise unsupervised training of the reference network, with exact resumption.

:class:`LayerwiseTrainer` trains layer 1, then layer 2, and so on up to the network's
:attr:`~stdp_plugins.models.kheradpisheh.KheradpishehNet.num_layers`, on mini-batches of images: every
image of a batch is run with the same weights, then the images' STDP steps are applied one
after another (or averaged into one step, ``reduction="mean"``; see
:func:`~stdp_plugins.backends.fused_winner_update`), so batch size 1 is the exact
one-image-at-a-time algorithm. A layer stops after its epoch
budget or, when ``stop_at_convergence``, as soon as its convergence metric falls below
the preset's threshold (0.01).

Checkpoints (:func:`save_checkpoint` / :func:`load_checkpoint`, from
:mod:`stdp_plugins.serialization`) are single files written atomically that open with
``torch.load(path, weights_only=True)``; they carry their format version and a SHA-256 of
their content, and a truncated, corrupted or other-version file raises
:class:`CheckpointError` and nothing is loaded. They hold the
weights, the position in the data order (phase, epoch, index), images seen per layer (the
learning-rate schedule position), the convergence history, the RNG state and the
configuration; resuming continues bit for bit like an uninterrupted run (on the CPU).

Given a ``process_group`` (:mod:`stdp_plugins.distributed`), the trainer runs
data-parallel: every rank computes its share of the layer inputs and of every batch, the
learning step is exactly the one-process step of the whole batch, and rank 0 alone writes
checkpoints; the weights, and so the checkpoints, do not depend on the number of ranks.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import os
import signal
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Optional, Tuple, Union

import torch
from torch import Tensor

from . import distributed
from .backends import REDUCTIONS
from .learning._checks import check_int, check_tensor
from .models.kheradpisheh import KheradpishehNet
from .backends import codes_to_times, kernel_threads, times_to_codes
from .serialization import CHECKPOINT_VERSION, CheckpointError, checkpoint_weights, load_checkpoint, save_checkpoint

__all__ = [
    "epoch_order",
    "TrainingInterrupted",
    "TrainConfig",
    "LayerwiseTrainer",
    "SpikeCodeFile",
]
# CHECKPOINT_VERSION, CheckpointError, save_checkpoint and load_checkpoint stay importable
# from here; they are documented in stdp_plugins.serialization.

class TrainingInterrupted(Exception):
    """Training stopped on SIGINT (Ctrl-C) after saving a checkpoint.

    Attributes
    ----------
    checkpoint : Path or None
        Where the checkpoint was written (``None`` without a checkpoint path).
    """

    def __init__(self, checkpoint: Optional[Path]) -> None:
        super().__init__(f"training interrupted; checkpoint saved to {checkpoint}")
        self.checkpoint = checkpoint


class SpikeCodeFile:
    """uint8 spike codes ``[N, C, H, W]`` (``255`` = never) of many images, kept in an
    unnamed temporary file and read back by index through a read-only memory map, so that
    holding them costs no memory beyond the pages the OS keeps cached.

    Parameters
    ----------
    chunks : iterable of Tensor
        uint8 ``[n_i, C, H, W]`` blocks with equal ``C, H, W``, written in order.
    """

    def __init__(self, chunks: Iterable[Tensor]) -> None:
        self._file = tempfile.TemporaryFile()
        self._map = None  # numpy memmap [N, record], made on the first read
        self.shape: Tuple[int, ...] = ()
        self._count = 0
        for chunk in chunks:
            check_tensor("chunk", chunk, 4, "[n, C, H, W]")
            if chunk.dtype != torch.uint8 or (self._count and tuple(chunk.shape[1:]) != self.shape):
                raise ValueError(f"chunks must be uint8 [n, C, H, W] of one shape, got {chunk.dtype} {tuple(chunk.shape)}")
            self.shape = tuple(chunk.shape[1:])
            self._file.write(chunk.contiguous().cpu().numpy().tobytes())
            self._count += chunk.shape[0]
        self._file.flush()
        self._record = math.prod(self.shape)

    def __len__(self) -> int:
        return self._count

    def _rows(self):
        """The file as a read-only numpy memory map ``[N, C * H * W]``."""
        if self._map is None:
            import numpy as np  # the train extra's

            self._map = np.memmap(self._file, dtype=np.uint8, mode="r", shape=(self._count, self._record))
        return self._map

    def take(self, indices: Tensor) -> Tensor:
        """Codes of the images at ``indices`` (1-D int64), in that order (one gather)."""
        check_tensor("indices", indices, 1, "[B]")
        rows = indices.detach().cpu().to(torch.int64)
        if rows.numel() == 0:
            return torch.empty(0, *self.shape, dtype=torch.uint8)
        if int(rows.min()) < 0 or int(rows.max()) >= self._count:
            raise ValueError(f"indices must lie in [0, {self._count}), got values outside")
        return torch.from_numpy(self._rows()[rows.numpy()]).view(rows.numel(), *self.shape)

    def chunks(self, size: int) -> Iterator[Tensor]:
        """All codes in order, ``size`` images at a time."""
        size = check_int("size", size, minimum=1)
        for start in range(0, self._count, size):
            block = self._rows()[start:start + size].copy()
            yield torch.from_numpy(block).view(block.shape[0], *self.shape)



def epoch_order(seed: int, layer: int, epoch: int, n: int) -> Tensor:
    """The order of ``n`` training images in one epoch of one layer: a permutation seeded by
    ``(seed, layer, epoch)``, the one :class:`LayerwiseTrainer` uses (so a SpikingJelly or
    snnTorch version of the network can walk the same batches)."""
    generator = torch.Generator().manual_seed(seed * 1_000_003 + layer * 10_007 + epoch)
    return torch.randperm(n, generator=generator)

@dataclass
class TrainConfig:
    """Options of :class:`LayerwiseTrainer`.

    Attributes
    ----------
    batch_size : int
        Images per forward pass (1 = the one-image-at-a-time algorithm).
    reduction : {"sequential", "mean"}
        How a batch's STDP steps are applied (see
        :func:`~stdp_plugins.backends.fused_winner_update`). ``"sequential"`` (default)
        applies each image's step in turn, as one-image-at-a-time training does; only
        the spikes of a batch come from the weights at its start. ``"mean"`` applies one
        step per batch, the per-channel average, so a channel takes up to ``batch_size``
        times fewer steps.
    epochs : tuple of int
        Epoch budget of each layer, in order; one value applies to every layer. The
        default (3, 20), for the two-layer MNIST network, takes both layers well
        below the preset's convergence threshold on 6,000 digits (layer 1 after about one
        epoch, layer 2 after about 16); the extra epochs keep sharpening the features
        (measured on a validation split of the training digits).
    stop_at_convergence : bool
        Stop a layer as soon as its convergence metric is below the preset's threshold.
    seed : int
        Seed of the weight initialisation and of the per-epoch data order.
    checkpoint_every : int
        Write a checkpoint after every this many training images (0 = only at the end
        of each layer and on Ctrl-C).
    progress : bool
        Show a tqdm progress bar (images/s and the live convergence metric).
    """

    batch_size: int = 32
    reduction: str = "sequential"
    epochs: Tuple[int, int] = (3, 20)
    stop_at_convergence: bool = False
    seed: int = 0
    checkpoint_every: int = 2000
    progress: bool = True

    def __post_init__(self) -> None:
        self.batch_size = check_int("batch_size", self.batch_size, minimum=1)
        if self.reduction not in REDUCTIONS:
            raise ValueError(
                f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {self.reduction!r}"
            )
        if not isinstance(self.epochs, (tuple, list)) or len(self.epochs) == 0:
            raise ValueError(f"epochs must be a non-empty tuple (one budget per layer, or one for all), "
                             f"got {self.epochs!r}")
        self.epochs = tuple(check_int(f"epochs[{i}]", e, minimum=0) for i, e in enumerate(self.epochs))
        self.seed = check_int("seed", self.seed, minimum=0)
        self.checkpoint_every = check_int("checkpoint_every", self.checkpoint_every, minimum=0)


    def layer_epochs(self, num_layers: int) -> Tuple[int, ...]:
        """The epoch budget of each of ``num_layers`` layers (one value applies to all)."""
        if len(self.epochs) == 1:
            return self.epochs * num_layers
        if len(self.epochs) != num_layers:
            raise ValueError(f"epochs must hold 1 or {num_layers} budgets for a {num_layers}-layer network, "
                             f"got {self.epochs!r}")
        return self.epochs


@dataclass
class _Progress:
    phase: int = 1  # layer being trained; num_layers + 1 = done
    epoch: int = 0
    position: int = 0
    images_seen: Tuple[int, ...] = (0, 0)
    converged: Tuple[bool, ...] = (False, False)
    elapsed: Tuple[float, ...] = (0.0, 0.0)

    @classmethod
    def start(cls, num_layers: int) -> "_Progress":
        """Nothing trained yet in a ``num_layers``-layer network."""
        return cls(images_seen=(0,) * num_layers, converged=(False,) * num_layers, elapsed=(0.0,) * num_layers)


def _data_fingerprint(images: Tensor) -> str:
    """SHA-256 of the images' bytes, hashed in blocks (no copy of the whole data set)."""
    digest = hashlib.sha256()
    for block in images.split(4096):
        digest.update(block.contiguous().cpu().numpy().tobytes())
    return digest.hexdigest()


@contextmanager
def _sigint_flag() -> Iterator[Dict[str, bool]]:
    """Turn SIGINT into a flag checked between batches (main thread only)."""
    flag = {"stop": False}
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):  # noqa: ARG001 - signal handler signature
        flag["stop"] = True

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)


class LayerwiseTrainer:
    """Train :class:`~stdp_plugins.models.kheradpisheh.KheradpishehNet` layer by layer.

    Parameters
    ----------
    model : KheradpishehNet
        The network (its weights are trained in place).
    images : Tensor
        uint8 ``[N, H, W]`` training images (labels are not used).
    config : TrainConfig
        Options.
    checkpoint_path : path, optional
        Where checkpoints are written.
    process_group : ProcessGroup, optional
        Train data-parallel over these ranks (each started with the same model, images
        and config; see :mod:`stdp_plugins.distributed`); ``None``: one process.

    Attributes
    ----------
    history : dict
        ``{1: [(images_seen, metric), ...], 2: [...], ...}`` convergence of each layer
        after every step.
    """

    def __init__(
        self,
        model: KheradpishehNet,
        images: Tensor,
        config: Optional[TrainConfig] = None,
        checkpoint_path: Optional[Union[str, os.PathLike]] = None,
        process_group: Optional[Any] = None,
    ) -> None:
        if not isinstance(model, KheradpishehNet):
            raise TypeError(f"model must be a KheradpishehNet, got {type(model).__name__}")
        check_tensor("images", images, 3, "[N, H, W]")
        if images.dtype != torch.uint8 or images.shape[0] == 0:
            raise ValueError(f"images must be non-empty uint8 [N, H, W], got {images.dtype} {tuple(images.shape)}")
        self.model = model
        self.images = images
        self.config = config if config is not None else TrainConfig()
        self.epochs = self.config.layer_epochs(model.num_layers)
        self.layers = range(1, model.num_layers + 1)
        self.checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
        self.history: Dict[int, List[Tuple[int, float]]] = {layer: [] for layer in self.layers}
        self.state = _Progress.start(model.num_layers)
        self.rng_state = torch.get_rng_state()
        self._fingerprint = _data_fingerprint(images)
        self._inputs: Dict[int, SpikeCodeFile] = {}
        self.process_group = process_group
        self.rank = distributed.get_rank(process_group)

    # ----------------------------------------------------------------- checkpoints
    def state_dict(self) -> Dict[str, Any]:
        """Everything needed to continue exactly (see :func:`save_checkpoint`)."""
        s = self.state
        return {
            "kind": "training",
            "model_config": self.model.config.to_dict(),
            "train_config": asdict(self.config),
            "weights": {f"conv{layer}": self.model.weight(layer).detach().cpu().clone() for layer in self.layers},
            "phase": s.phase,
            "epoch": s.epoch,
            "position": s.position,
            "images_seen": list(s.images_seen),
            "converged": list(s.converged),
            "elapsed": list(s.elapsed),
            "history": {str(k): [list(p) for p in v] for k, v in self.history.items()},
            "rng_state": self.rng_state,
            "data": {"n_images": int(self.images.shape[0]), "sha256": self._fingerprint},
        }

    def load_state_dict(self, payload: Dict[str, Any], source: str = "checkpoint") -> None:
        """Restore a :meth:`state_dict`; raises :class:`CheckpointError` on any mismatch,
        before changing anything."""
        try:
            if payload.get("kind") != "training":
                raise CheckpointError(f"{source}: not a training checkpoint (kind {payload.get('kind')!r})")
            if payload["model_config"] != self.model.config.to_dict():
                raise CheckpointError(f"{source}: written for another network configuration")
            saved = dict(payload["train_config"])
            current = asdict(self.config)
            for key in ("batch_size", "seed", "reduction"):
                if saved.get(key, "mean") != current[key]:
                    raise CheckpointError(
                        f"{source}: written with {key}={saved[key]}, cannot resume with {key}={current[key]}"
                    )
            data = payload["data"]
            if data["n_images"] != self.images.shape[0] or data["sha256"] != self._fingerprint:
                raise CheckpointError(f"{source}: written for other training data ({data['n_images']} images)")
            weights = checkpoint_weights(payload, source)
            if len(weights) != self.model.num_layers or any(
                    saved.shape != self.model.weight(layer).shape for layer, saved in zip(self.layers, weights)):
                raise CheckpointError(f"{source}: weights of shapes {[tuple(w.shape) for w in weights]}, the network's "
                                      f"are {[tuple(w.shape) for w in self.model.weights()]}")
            progress = _Progress(
                phase=int(payload["phase"]), epoch=int(payload["epoch"]), position=int(payload["position"]),
                images_seen=tuple(int(v) for v in payload["images_seen"]),
                converged=tuple(bool(v) for v in payload["converged"]),
                elapsed=tuple(float(v) for v in payload["elapsed"]),
            )
            if not 1 <= progress.phase <= self.model.num_layers + 1:
                raise CheckpointError(f"{source}: invalid phase {progress.phase}")
            if not len(progress.images_seen) == len(progress.converged) == len(progress.elapsed) == len(weights):
                raise CheckpointError(f"{source}: progress of another number of layers than {len(weights)}")
            history = {int(k): [(int(a), float(b)) for a, b in v] for k, v in payload["history"].items()}
            rng_state = payload["rng_state"]
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, CheckpointError):
                raise
            raise CheckpointError(f"{source}: incomplete or malformed checkpoint ({exc!r})") from exc
        with torch.no_grad():
            for param, saved in zip(self.model.weights(), weights):
                param.copy_(saved)
        self.state = progress
        self.history = {layer: history.get(layer, []) for layer in self.layers}
        self.rng_state = rng_state

    def save(self) -> Optional[Path]:
        """Write a checkpoint now (no-op without ``checkpoint_path`` and on ranks other than 0)."""
        if self.checkpoint_path is None or self.rank != 0:
            return None
        return save_checkpoint(self.checkpoint_path, self.state_dict())

    def resume(self, path: Optional[Union[str, os.PathLike]] = None) -> None:
        """Load the checkpoint at ``path`` (default ``checkpoint_path``) into this trainer;
        with a process group, rank 0 reads it and sends it to the others."""
        path = Path(path) if path is not None else self.checkpoint_path
        if path is None:
            raise ValueError("path must be given when the trainer has no checkpoint_path")
        if self.process_group is None:
            payload = load_checkpoint(path)
        else:
            try:
                loaded: Any = load_checkpoint(path) if self.rank == 0 else None
            except CheckpointError as error:
                loaded = error
            payload = distributed.broadcast_object(loaded, self.process_group)
            if isinstance(payload, CheckpointError):
                raise CheckpointError(str(payload))
        self.load_state_dict(payload, str(path))

    # ------------------------------------------------------------------- training
    def layer_inputs(self, layer: int) -> "SpikeCodeFile":
        """The spike codes entering ``layer`` for every training image, computed once.

        Layer 1: the encoded images; layer ``l > 1``: layer ``l - 1``'s pooled, padded and
        inhibited output on its own inputs
        (:meth:`~stdp_plugins.models.kheradpisheh.KheradpishehNet.next_input`), computed
        from the current weights of layer ``l - 1`` when first asked for. They are written
        in chunks to a temporary file (:class:`SpikeCodeFile`), so memory does not grow
        with the number of images. With a process group, chunk ``j`` of 512 images is
        computed by rank ``j mod W`` and every rank gets all of them.
        """
        if layer not in self._inputs:
            steps = self.model.config.time_steps
            device = self.model.conv1.weight.device

            def compute(chunk: Tensor) -> Tensor:
                if layer == 1:
                    return times_to_codes(self.model.layer_input(1, self.model.encode(chunk)), steps)
                return times_to_codes(self.model.next_input(layer, codes_to_times(chunk).to(device)).cpu(), steps)

            sources = self.images.split(512) if layer == 1 else self.layer_inputs(layer - 1).chunks(512)
            self._inputs[layer] = SpikeCodeFile(self._shared(sources, compute))
        return self._inputs[layer]

    def _shared(self, sources: Iterable[Tensor], compute: Callable[[Tensor], Tensor]) -> Iterator[Tensor]:
        """``compute`` of every chunk of ``sources`` in order; with a process group chunk
        ``j`` is computed by rank ``j mod W`` and gathered on every rank."""
        if self.process_group is None:
            yield from map(compute, sources)
            return
        chunks = iter(sources)
        while True:
            round_ = list(itertools.islice(chunks, distributed.get_world_size(self.process_group)))
            if not round_:
                return
            mine = compute(round_[self.rank]) if self.rank < len(round_) else torch.zeros(0, 1, 1, 1, dtype=torch.uint8)
            yield distributed.all_gather_rows(mine, self.process_group, "computing the layer inputs")

    def _order(self, layer: int, epoch: int, n: int) -> Tensor:
        return epoch_order(self.config.seed, layer, epoch, n)

    def _set(self, **changes: Any) -> None:
        self.state = replace(self.state, **changes)  # the fields are immutable: no deep copy

    def _replace(self, name: str, layer: int, value: Any) -> None:
        values = list(getattr(self.state, name))
        values[layer - 1] = value
        self._set(**{name: tuple(values)})

    def train(self) -> Dict[int, List[Tuple[int, float]]]:
        """Train (or continue training) every layer in turn; returns :attr:`history`.

        Raises
        ------
        TrainingInterrupted
            On Ctrl-C, after saving a checkpoint at the end of the current batch.
        """
        if self.process_group is not None:
            settings = {k: v for k, v in asdict(self.config).items() if k != "progress"}
            weights = [hashlib.sha256(w.detach().cpu().numpy().tobytes()).hexdigest() for w in self.model.weights()]
            distributed.check_same((self._fingerprint, settings, self.model.config.to_dict(), weights, self.state),
                                   "the training images, TrainConfig, network, weights or progress",
                                   self.process_group)
        torch.set_rng_state(self.rng_state)
        # many small steps: torch's ops run in this thread, the C kernel gets the threads
        with _sigint_flag() as flag, kernel_threads():
            for layer in self.layers:
                if self.state.phase == layer:
                    self._train_layer(layer, flag)
        self._inputs.clear()  # the cached layer inputs' files and maps; recomputed if asked again
        self.save()
        return self.history

    def _train_layer(self, layer: int, flag: Dict[str, bool]) -> None:
        model, cfg = self.model, self.config
        device = model.conv1.weight.device
        threshold = model.config.stdp.convergence_threshold
        started = time.perf_counter()
        inputs = self.layer_inputs(layer)
        n = len(inputs)
        budget = self.epochs[layer - 1]
        bar = None
        if cfg.progress and self.rank == 0:
            from tqdm.auto import tqdm

            bar = tqdm(total=budget * n, initial=min(self.state.epoch * n + self.state.position, budget * n),
                       unit="img", desc=f"layer {layer}", dynamic_ncols=True)
        last_saved = sum(self.state.images_seen) // cfg.checkpoint_every if cfg.checkpoint_every else 0
        try:
            while self.state.epoch < budget and not (cfg.stop_at_convergence and self.state.converged[layer - 1]):
                order = self._order(layer, self.state.epoch, n)
                while self.state.position < n:
                    start = self.state.position
                    idx = order[start:start + cfg.batch_size]
                    layer_input = codes_to_times(inputs.take(idx)).to(device)
                    metric = distributed.distributed_train_step(model, layer, layer_input,
                                                                self.state.images_seen[layer - 1], cfg.reduction,
                                                                self.process_group)
                    seen = self.state.images_seen[layer - 1] + idx.numel()
                    self._replace("images_seen", layer, seen)
                    self._set(position=start + idx.numel())
                    self.history[layer].append((seen, metric))
                    if metric < threshold:
                        self._replace("converged", layer, True)
                    if bar is not None:
                        bar.update(idx.numel())
                        bar.set_postfix(convergence=f"{metric:.4f}", refresh=False)
                    total = sum(self.state.images_seen)
                    stop_now = cfg.stop_at_convergence and self.state.converged[layer - 1]
                    if cfg.checkpoint_every and total // cfg.checkpoint_every > last_saved:
                        last_saved = total // cfg.checkpoint_every
                        self._checkpoint(layer, started)
                        started = time.perf_counter()
                    if distributed.any_rank(flag["stop"], self.process_group):
                        self._checkpoint(layer, started)
                        raise TrainingInterrupted(self.checkpoint_path)
                    if stop_now:
                        break
                if self.state.position >= n:
                    self._set(epoch=self.state.epoch + 1, position=0)
            self._replace("elapsed", layer, self.state.elapsed[layer - 1] + time.perf_counter() - started)
            self._set(phase=layer + 1, epoch=0, position=0)
            self.rng_state = torch.get_rng_state()
        finally:
            if bar is not None:
                bar.close()

    def _checkpoint(self, layer: int, started: float) -> None:
        self._replace("elapsed", layer, self.state.elapsed[layer - 1] + time.perf_counter() - started)
        self.rng_state = torch.get_rng_state()
        self.save()

    def images_per_second(self) -> Dict[str, float]:
        """Training throughput per layer (images seen / seconds spent, incl. input caching)."""
        out = {}
        for layer in self.layers:
            seconds = self.state.elapsed[layer - 1]
            out[f"layer{layer}"] = self.state.images_seen[layer - 1] / seconds if seconds > 0 else math.nan
        return out

