"""The Kheradpisheh et al. (2018) network: N STDP convolution layers, each followed by
first-spike max-pooling, described by a :class:`~stdp_plugins.models.config.KheradpishehConfig`
(in code or a TOML/JSON file, :func:`~stdp_plugins.models.config.load_network_config`).

The default is the MNIST network as replicated in SpykeTorch. Input coding (:mod:`stdp_plugins.encoding`): on/off DoG, threshold 50, local normalisation
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
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..backends import (
    first_spike_conv,
    first_spike_conv_pointwise,
    first_spike_conv_winners,
    first_spike_training_step_,
    fires_given_inputs,
    fused_winner_update,
    pooled_fires,
    select_winners,
)
from ..backends.pooled import pooled_survivors
from ..encoding import DoGLatencyEncoder
from ..learning import STDPLearner, WTAMode
from ..learning._checks import check_int, check_spike_times, check_tensor
from .config import KheradpishehConfig, LayerSpec
from .pooling import min_pool_times, pad_times

__all__ = ["LayerSpec", "KheradpishehConfig", "KheradpishehNet"]


class KheradpishehNet(nn.Module):
    """The STDP network with its input encoder: ``config.num_layers`` convolutions (two for
    the default MNIST network), each followed by first-spike max-pooling.

    The convolutions are ordinary ``nn.Conv2d`` modules (no bias, no gradients) named
    ``conv1``, ``conv2``, ... whose weights are learned by STDP; the spiking dynamics run on
    first-spike times. Layers are numbered from 1 (:meth:`spec`, :meth:`weight`).

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
        if self.encoder.kernels.shape[0] != config.layers[0].in_channels:
            raise ValueError(
                f"config.layers[0].in_channels must be {self.encoder.kernels.shape[0]} (DoG channels), "
                f"got {config.layers[0].in_channels}"
            )
        learner = STDPLearner(config.stdp)
        generator = torch.Generator().manual_seed(check_int("seed", seed))
        for layer, spec in enumerate(config.layers, start=1):  # drawn in layer order from one generator
            self.add_module(f"conv{layer}", self._conv(spec, learner, generator))

    @staticmethod
    def _conv(spec: LayerSpec, learner: STDPLearner, generator: torch.Generator) -> nn.Conv2d:
        conv = nn.Conv2d(spec.in_channels, spec.out_channels, spec.kernel_size, padding=spec.padding, bias=False)
        shape = (spec.out_channels, spec.in_channels, spec.kernel_size, spec.kernel_size)
        conv.weight.data = learner.initialize_weights(shape, generator=generator)
        conv.weight.requires_grad_(False)
        return conv

    @property
    def num_layers(self) -> int:
        """Number of STDP convolution layers (layers are numbered ``1 .. num_layers``)."""
        return self.config.num_layers

    def spec(self, layer: int) -> LayerSpec:
        """The :class:`LayerSpec` of ``layer`` (1-based), with the pooling after it."""
        return self.config.spec(layer)

    def conv(self, layer: int) -> nn.Conv2d:
        """The ``nn.Conv2d`` of ``layer`` (``conv1``, ``conv2``, ...)."""
        self.spec(layer)
        return getattr(self, f"conv{layer}")

    def weight(self, layer: int) -> Tensor:
        """The weight tensor of ``layer`` (the parameter itself, updated in place)."""
        return self.conv(layer).weight

    def weights(self) -> List[Tensor]:
        """The weight tensors of all layers, in order."""
        return [self.weight(layer) for layer in range(1, self.num_layers + 1)]

    def encode(self, images: Tensor) -> Tensor:
        """Input first-spike times ``[N, 2, H, W]`` of grey images ``[N, H, W]`` in [0, 255]."""
        return self.encoder.spike_times(images.to(self.encoder.kernels.device))

    def _pool(self, layer: int, times: Tensor) -> Tensor:
        """First-spike max-pooling after ``layer`` (a min-pool of times)."""
        spec = self.spec(layer)
        if spec.global_pool:
            return times.amin(dim=(2, 3), keepdim=True)
        return min_pool_times(times, spec.pool_kernel, spec.pool_stride, spec.pool_padding)

    def layer_forward(self, layer: int, layer_input: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
        """First-spike times, potentials and pointwise-inhibition survivors of a layer.

        Parameters
        ----------
        layer : int
            1 .. :attr:`num_layers`.
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

        Layer 1: the input itself (with layer 1's ``input_padding``). Layer ``l > 1``: the
        spikes of layer ``l - 1`` on its own training input (no inhibition inside a layer),
        max-pooled, zero-padded by layer ``l``'s ``input_padding`` and pointwise-inhibited
        (at each position only the earliest channel, ties to the lowest channel, passes),
        as in SpykeTorch's replication. At inference (:meth:`features`) every layer sees
        the pooled spikes without inhibition.
        """
        spec = self.spec(layer)
        if layer == 1:
            return pad_times(input_times, spec.input_padding) if spec.input_padding else input_times
        return self.next_input(layer, self.layer_input(layer - 1, input_times))

    def next_input(self, layer: int, below_input: Tensor) -> Tensor:
        """Training input of ``layer`` (2 .. :attr:`num_layers`) from the training input
        ``below_input`` of ``layer - 1``: one step of :meth:`layer_input`."""
        spec = self.spec(layer)
        if layer == 1:
            raise ValueError("layer must be at least 2 (layer 1's input is the encoded image), got 1")
        below = self.spec(layer - 1)
        times, _ = first_spike_conv(  # channels-last: the kernel's layout, and quick to pool
            below_input, self.weight(layer - 1), below.threshold, below.padding,
            self.config.time_steps, self.backend, potentials=False, memory_format=torch.channels_last,
        )
        if not below.global_pool:  # pooling, padding and inhibition in one dispatched pass
            return pooled_survivors(times, below.pool_kernel, below.pool_stride, below.pool_padding,
                                    spec.input_padding, self.backend)
        pooled = pad_times(self._pool(layer - 1, times), spec.input_padding)
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
            1 .. :attr:`num_layers`.
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
        """Max over time of the last layer's pooled spikes, bool ``[N, C, H, W]``
        (``[N, 150, 9, 9]`` for 28x28 digits in the MNIST network; see
        :meth:`KheradpishehConfig.feature_shape`).

        No inhibition acts at inference, and the maximum over time of a cumulative wave is
        its last step, so only the set of neurons that fire matters: every layer is
        :func:`~stdp_plugins.backends.pooled_fires` (global pooling:
        :func:`~stdp_plugins.backends.fires_given_inputs`, then any) of the binary map
        before it, layer 1's being the inputs that fire within ``time_steps``.
        """
        check_tensor("input_times", input_times, 4, "[N, C, H, W]")
        check_spike_times("input_times", input_times)
        layer_in = F.pad(input_times < self.config.time_steps, (self.spec(1).input_padding,) * 4)
        for layer in range(1, self.num_layers + 1):
            spec = self.spec(layer)
            border = self.spec(layer + 1).input_padding if layer < self.num_layers else 0
            args = (layer_in, self.weight(layer), spec.threshold, spec.padding)
            if spec.global_pool:
                fired = fires_given_inputs(*args, backend=self.backend).flatten(2).any(dim=2)[..., None, None]
                layer_in = F.pad(fired, (border,) * 4)
            else:  # the layer's map is written pooled and padded (one dispatched pass)
                layer_in = pooled_fires(*args, spec.pool_kernel, spec.pool_stride, spec.pool_padding, border,
                                        backend=self.backend)
        return layer_in

    def forward(self, images: Tensor) -> Tensor:
        """Features (float32 0/1 ``[N, C, H, W]``, see :meth:`features`) of grey images
        ``[N, H, W]``."""
        return self.features(self.encode(images)).to(torch.float32)
