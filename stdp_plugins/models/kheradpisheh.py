"""The Kheradpisheh et al. (2018) MNIST network, as replicated in SpykeTorch.

Input coding (:mod:`stdp_plugins.encoding`): on/off DoG, threshold 50, local normalisation
radius 8, 15 time steps of intensity-to-latency coding. Then

- conv1: 2 -> 32 maps, 5x5, padding 2, threshold 10; for learning pointwise inhibition and
  k = 5 winners with inhibition radius 2; a+ starts at 0.004 and doubles every 500 images up
  to 0.15, a- = 0.75 a+;
- max-pooling 2x2, stride 2, padding 1, then zero-padding 1;
- conv2: 32 -> 150 maps, 2x2, threshold 1; k = 8 winners, radius 1; (a+, a-) = (0.004, 0.003);
- max-pooling 2x2, stride 2, padding 1: the features are the max over time of these spikes,
  ``150 x 9 x 9`` for 28x28 digits.

Neurons are non-leaky integrate-and-fire and fire at most once, so every layer is computed
on first-spike times. Every step goes through the dispatchers of :mod:`stdp_plugins.backends`,
the same ones the SpikingJelly and snnTorch learners use: the first-spike convolution,
the learning winners (pointwise inhibition, then k winners with a radius:
:func:`~stdp_plugins.backends.select_winners`) and the batch STDP step
(:func:`~stdp_plugins.backends.fused_winner_update`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backends import (
    first_spike_conv,
    first_spike_conv_pointwise,
    first_spike_conv_winners,
    first_spike_training_step_,
    fires_at_all,
    fires_given_inputs,
    fused_winner_update,
    select_winners,
)
from ..encoding import DoGLatencyEncoder
from ..learning import STDPConfig, STDPLearner, WTAMode
from ..learning._checks import check_float, check_int, check_tensor
from .pooling import max_pool_binary, min_pool_times, pad_times

__all__ = ["LayerSpec", "KheradpishehConfig", "KheradpishehNet"]


@dataclass
class LayerSpec:
    """One STDP convolution layer of the reference network.

    Attributes
    ----------
    in_channels, out_channels, kernel_size, padding : int
        Convolution geometry (stride 1).
    threshold : float
        Firing threshold of the IF neurons.
    k_winners : int
        Winners per image for learning (global per feature map).
    radius : int
        Lateral inhibition radius around each winner (all maps).
    lr_plus, lr_minus : float
        Initial STDP rates.
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    padding: int
    threshold: float
    k_winners: int
    radius: int
    lr_plus: float = 0.004
    lr_minus: float = 0.003

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "kernel_size", "k_winners"):
            setattr(self, name, check_int(name, getattr(self, name), minimum=1))
        for name in ("padding", "radius"):
            setattr(self, name, check_int(name, getattr(self, name), minimum=0))
        self.threshold = check_float("threshold", self.threshold, minimum=0.0, strict_min=True)
        self.lr_plus = check_float("lr_plus", self.lr_plus, minimum=0.0)
        self.lr_minus = check_float("lr_minus", self.lr_minus, minimum=0.0)


def _layer1() -> LayerSpec:
    return LayerSpec(2, 32, 5, 2, 10.0, 5, 2)


def _layer2() -> LayerSpec:
    return LayerSpec(32, 150, 2, 0, 1.0, 8, 1)


@dataclass
class KheradpishehConfig:
    """Hyper-parameters of the reference network (defaults: the SpykeTorch replication).

    Attributes
    ----------
    time_steps : int
        Time steps of the latency code.
    layer1, layer2 : LayerSpec
        The two STDP convolutions.
    pool_kernel, pool_stride, pool_padding : int
        Max-pooling after each convolution.
    inter_padding : int
        Zero padding between pooling 1 and conv2.
    lr_double_every : int
        Layer 1's a+ doubles every this many training images ...
    lr_plus_max : float
        ... up to this value ...
    lr_minus_ratio : float
        ... with a- = ratio * a+.
    paper : str
        STDP preset (:meth:`STDPConfig.from_paper`) for initialisation, bounds, variant
        and convergence threshold.
    """

    time_steps: int = 15
    layer1: LayerSpec = field(default_factory=_layer1)
    layer2: LayerSpec = field(default_factory=_layer2)
    pool_kernel: int = 2
    pool_stride: int = 2
    pool_padding: int = 1
    inter_padding: int = 1
    lr_double_every: int = 500
    lr_plus_max: float = 0.15
    lr_minus_ratio: float = 0.75
    paper: str = "kheradpisheh2018"

    def __post_init__(self) -> None:
        self.time_steps = check_int("time_steps", self.time_steps, minimum=1)
        if self.time_steps > 254:
            raise ValueError(f"time_steps must be <= 254, got {self.time_steps}")
        for name in ("layer1", "layer2"):
            value = getattr(self, name)
            if isinstance(value, dict):
                setattr(self, name, LayerSpec(**value))
            elif not isinstance(value, LayerSpec):
                raise TypeError(f"{name} must be a LayerSpec, got {type(value).__name__}")
        if self.layer2.in_channels != self.layer1.out_channels:
            raise ValueError(
                f"layer2.in_channels must equal layer1.out_channels ({self.layer1.out_channels}), "
                f"got {self.layer2.in_channels}"
            )
        self.pool_kernel = check_int("pool_kernel", self.pool_kernel, minimum=1)
        self.pool_stride = check_int("pool_stride", self.pool_stride, minimum=1)
        self.pool_padding = check_int("pool_padding", self.pool_padding, minimum=0)
        self.inter_padding = check_int("inter_padding", self.inter_padding, minimum=0)
        self.lr_double_every = check_int("lr_double_every", self.lr_double_every, minimum=1)
        self.lr_plus_max = check_float("lr_plus_max", self.lr_plus_max, minimum=0.0)
        self.lr_minus_ratio = check_float("lr_minus_ratio", self.lr_minus_ratio, minimum=0.0)
        self.stdp = STDPConfig.from_paper(self.paper)

    def learning_rates(self, layer: int, images_seen: int) -> Tuple[float, float]:
        """``(a+, a-)`` of ``layer`` (1 or 2) after ``images_seen`` training images of that layer.

        Layer 1 doubles a+ every ``lr_double_every`` images up to ``lr_plus_max`` with
        ``a- = lr_minus_ratio * a+``; layer 2 keeps its initial rates.
        """
        if layer not in (1, 2):
            raise ValueError(f"layer must be 1 or 2, got {layer!r}")
        spec = self.layer1 if layer == 1 else self.layer2
        images_seen = check_int("images_seen", images_seen, minimum=0)
        doublings = images_seen // self.lr_double_every
        if layer == 2 or doublings == 0:
            return spec.lr_plus, spec.lr_minus
        lr_plus = min(spec.lr_plus * 2.0 ** min(doublings, 64), self.lr_plus_max)
        return lr_plus, self.lr_minus_ratio * lr_plus

    def to_dict(self) -> Dict:
        """Plain-dict form (for checkpoints and ``metrics.json``)."""
        out = {k: v for k, v in asdict(self).items() if k != "stdp"}
        return out


class KheradpishehNet(nn.Module):
    """The two-layer STDP network with its input encoder.

    The convolutions are ordinary ``nn.Conv2d`` modules (no bias, no gradients) whose
    weights are learned by STDP; the spiking dynamics run on first-spike times.

    Parameters
    ----------
    config : KheradpishehConfig, optional
        Hyper-parameters (default: the paper's).
    seed : int
        Seed of the weight initialisation ``N(0.8, 0.05)`` clamped to ``[0, 1]``.
    backend : {"auto", "torch", "native"}
        Implementation of every step (see :func:`~stdp_plugins.backends.resolve_backend`):
        ``"torch"`` runs the reference implementations throughout.

    Examples
    --------
    >>> net = KheradpishehNet(seed=0)
    >>> times = net.encode(images)              # [N, 2, 28, 28] input spike times
    >>> feats = net.features(times)             # [N, 150, 9, 9] bool
    """

    def __init__(
        self,
        config: Optional[KheradpishehConfig] = None,
        seed: int = 0,
        backend: str = "auto",
    ) -> None:
        super().__init__()
        if config is None:
            config = KheradpishehConfig()
        if not isinstance(config, KheradpishehConfig):
            raise TypeError(f"config must be a KheradpishehConfig, got {type(config).__name__}")
        self.config = config
        self.backend = backend
        self.encoder = DoGLatencyEncoder(config.time_steps)
        if self.encoder.kernels.shape[0] != config.layer1.in_channels:
            raise ValueError(
                f"config.layer1.in_channels must be {self.encoder.kernels.shape[0]} (DoG channels), "
                f"got {config.layer1.in_channels}"
            )
        learner = STDPLearner(config.stdp)
        generator = torch.Generator().manual_seed(check_int("seed", seed))
        self.conv1 = self._conv(config.layer1, learner, generator)
        self.conv2 = self._conv(config.layer2, learner, generator)

    @staticmethod
    def _conv(spec: LayerSpec, learner: STDPLearner, generator: torch.Generator) -> nn.Conv2d:
        conv = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, padding=spec.padding, bias=False)
        shape = (spec.out_channels, spec.in_channels, spec.kernel_size, spec.kernel_size)
        conv.weight.data = learner.initialize_weights(shape, generator=generator)
        conv.weight.requires_grad_(False)
        return conv

    def spec(self, layer: int) -> LayerSpec:
        """The :class:`LayerSpec` of layer 1 or 2."""
        if layer not in (1, 2):
            raise ValueError(f"layer must be 1 or 2, got {layer!r}")
        return self.config.layer1 if layer == 1 else self.config.layer2

    def weight(self, layer: int) -> Tensor:
        """The weight tensor of layer 1 or 2 (the parameter itself, updated in place)."""
        self.spec(layer)
        return (self.conv1 if layer == 1 else self.conv2).weight

    def encode(self, images: Tensor) -> Tensor:
        """Input first-spike times ``[N, 2, H, W]`` of grey images ``[N, H, W]`` in [0, 255]."""
        return self.encoder.spike_times(images.to(self.encoder.kernels.device))

    def _pool(self, times: Tensor) -> Tensor:
        cfg = self.config
        return min_pool_times(times, cfg.pool_kernel, cfg.pool_stride, cfg.pool_padding)

    def layer_forward(self, layer: int, layer_input: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """First-spike times, potentials and pointwise-inhibition survivors of a layer.

        Parameters
        ----------
        layer : int
            1 or 2.
        layer_input : Tensor
            ``[N, C_in, H, W]`` spike times of the layer's input (see :meth:`layer_input`).

        Returns
        -------
        (Tensor, Tensor, Tensor)
            Float32 times ``[N, C_out, H_out, W_out]`` (``inf`` = silent), float64
            potentials at the first spike, and the int64 ``[N, H_out, W_out]`` channel that
            survives pointwise inhibition at each position (``-1``: none fired), see
            :func:`~stdp_plugins.backends.first_spike_conv_pointwise`.
        """
        spec = self.spec(layer)
        return first_spike_conv_pointwise(
            layer_input, self.weight(layer), spec.threshold, spec.padding, self.config.time_steps, self.backend
        )

    def layer_input(self, layer: int, input_times: Tensor) -> Tensor:
        """Spike times entering ``layer`` during its training.

        Layer 1: the input itself. Layer 2: layer 1's spikes (no inhibition in layer 1),
        max-pooled, zero-padded and pointwise-inhibited (at each position only the
        earliest channel, ties to the lowest channel, passes), as in SpykeTorch's
        replication. At inference (:meth:`features`) layer 2 sees the pooled spikes
        without inhibition.
        """
        if self.spec(layer) is self.config.layer1:
            return input_times
        spec = self.config.layer1
        times, _ = first_spike_conv(  # channels-last: the kernel's layout, and quick to pool
            input_times, self.conv1.weight, spec.threshold, spec.padding, self.config.time_steps, self.backend,
            potentials=False, memory_format=torch.channels_last,
        )
        pooled = pad_times(self._pool(times), self.config.inter_padding)
        inhibited = select_winners(pooled, None, WTAMode.LOCAL, 0, backend=self.backend)
        return torch.where(inhibited, pooled, math.inf)

    def select_winners(self, layer: int, times: Tensor, potentials: Tensor) -> Tensor:
        """Learning winners: pointwise inhibition, then ``k`` winners with radius ``r``.

        :func:`~stdp_plugins.backends.select_winners` with ``pointwise=True``: at each
        position only the earliest neuron (ties to the highest potential, then the lowest
        channel) survives, then ``BOTH`` blocking with the layer's radius and ``k`` among
        the survivors.

        Returns
        -------
        Tensor
            Bool winner mask shaped like ``times``.
        """
        spec = self.spec(layer)
        return select_winners(times, potentials, WTAMode.BOTH, spec.radius, spec.k_winners, pointwise=True,
                              backend=self.backend)

    def forward_winners(self, layer: int, layer_input: Tensor) -> Tuple[Tensor, Tensor]:
        """First-spike times of ``layer`` and its learning winners in one pass.

        Equal to :meth:`layer_forward` followed by :meth:`select_winners`
        (:func:`~stdp_plugins.backends.first_spike_conv_winners`); on the native path the
        event-driven kernel selects the winners of each image as it finishes it.

        Parameters
        ----------
        layer : int
            1 or 2.
        layer_input : Tensor
            ``[N, C_in, H, W]`` spike times (see :meth:`layer_input`).

        Returns
        -------
        (Tensor, Tensor)
            Float32 times ``[N, C_out, H_out, W_out]`` and the bool winner mask.
        """
        spec = self.spec(layer)
        return first_spike_conv_winners(
            layer_input, self.weight(layer), spec.threshold, spec.padding, self.config.time_steps,
            WTAMode.BOTH, spec.radius, spec.k_winners, self.backend,
        )

    def learning_rates(self, layer: int, images_seen: int) -> Tuple[float, float]:
        """``(a+, a-)`` of ``layer`` after ``images_seen`` training images of that layer:
        :meth:`KheradpishehConfig.learning_rates`."""
        self.spec(layer)
        return self.config.learning_rates(layer, images_seen)

    def learn(
        self,
        layer: int,
        layer_input: Tensor,
        times: Tensor,
        winners: Tensor,
        lr_plus: float,
        lr_minus: float,
        reduction: str = "mean",
    ) -> Tensor:
        """Apply one batch STDP step to ``layer`` (in place) and return its per-channel
        convergence ``[C_out]``: :func:`~stdp_plugins.backends.fused_winner_update`, which
        also explains ``reduction``."""
        spec = self.spec(layer)
        return fused_winner_update(
            self.weight(layer), layer_input, times, winners, self.config.stdp, lr_plus=lr_plus, lr_minus=lr_minus,
            stride=1, padding=spec.padding, backend=self.backend, reduction=reduction,
        )

    def train_step(self, layer: int, layer_input: Tensor, images_seen: int, reduction: str = "mean") -> float:
        """One unsupervised training step of ``layer`` on a batch; returns the layer's
        convergence metric afterwards.

        :func:`~stdp_plugins.backends.first_spike_training_step_` (:meth:`forward_winners`
        then :meth:`learn`, in one pass of the C library on the native path) with the rates
        of :meth:`learning_rates` after ``images_seen`` images of this layer.
        """
        lr_plus, lr_minus = self.learning_rates(layer, images_seen)
        spec = self.spec(layer)
        first_spike_training_step_(
            self.weight(layer), layer_input, spec.threshold, spec.padding, self.config.time_steps, WTAMode.BOTH,
            spec.radius, spec.k_winners, self.config.stdp, lr_plus, lr_minus, reduction, self.backend,
        )
        return self.convergence(layer)

    def convergence(self, layer: int) -> float:
        """Kheradpisheh's convergence metric of a layer's weights, ``mean(w (1 - w))``."""
        return STDPLearner(self.config.stdp).get_convergence(self.weight(layer))

    def features(self, input_times: Tensor) -> Tensor:
        """Max over time of the final pooled spikes, bool ``[N, 150, 9, 9]``.

        No inhibition acts at inference, and the maximum over time of a cumulative wave is
        its last step, so only the set of neurons that fire matters: each layer is
        :func:`~stdp_plugins.backends.fires_given_inputs` of the pooled (and padded) binary map
        before it.
        """
        check_tensor("input_times", input_times, 4, "[N, C, H, W]")
        cfg = self.config
        fired1 = fires_at_all(input_times, self.conv1.weight, cfg.layer1.threshold, cfg.layer1.padding, cfg.time_steps,
                              backend=self.backend)
        layer2_in = F.pad(self._pool_binary(fired1), (cfg.inter_padding,) * 4)
        fired2 = fires_given_inputs(layer2_in, self.conv2.weight, cfg.layer2.threshold, cfg.layer2.padding,
                                    backend=self.backend)
        return self._pool_binary(fired2)

    def _pool_binary(self, fired: Tensor) -> Tensor:
        """Max-pooling of a bool spike map (padding never fires)."""
        cfg = self.config
        return max_pool_binary(fired, cfg.pool_kernel, cfg.pool_stride, cfg.pool_padding)

    def forward(self, images: Tensor) -> Tensor:
        """Features (float32 0/1 ``[N, 150, 9, 9]``) of grey images ``[N, H, W]``."""
        return self.features(self.encode(images)).to(torch.float32)
