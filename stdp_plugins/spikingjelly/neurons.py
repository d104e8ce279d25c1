"""SpikingJelly layers for the paper's network: the fire-once IF node and first-spike pooling."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from spikingjelly.activation_based import base
from torch import Tensor

from ..learning._checks import check_float
from ..backends import fire_once, first_spike_only
from ..learning.fire_once_if import PoolSize, check_pool_args, live_state, max_pool_spikes

__all__ = ["FireOnceIFNode", "FirstSpikeMaxPool2d"]

States = Tuple[object, ...]


class FireOnceIFNode(base.MemoryModule):
    """Kheradpisheh-2018 neuron: non-leaky integrate-and-fire that fires at most once.

    Per step: ``v += x``, ``spike = (v >= v_threshold) & ~fired``, ``fired |= spike``;
    no leak and no reset, the membrane keeps integrating after the spike (see
    :func:`~stdp_plugins.fire_once`, run through :func:`stdp_plugins.backends.fire_once`). A window runs from the last
    ``reset()`` (``functional.reset_net``) or from a change of the input shape; a
    multi-step forward ``[T, N, ...]`` continues it and gives bit for bit what ``T``
    single-step forwards give. Not differentiable (for STDP).

    Parameters
    ----------
    v_threshold : float
        Firing threshold ``> 0``.
    step_mode : str
        ``'s'`` (``[N, ...]`` per call) or ``'m'`` (``[T, N, ...]``).
    store_v_seq : bool
        In ``'m'`` mode keep the membrane after every step in :attr:`v_seq`.

    Attributes
    ----------
    v : Tensor or float
        Membrane potential (``0.`` after a reset, a tensor once a step ran).
    fired : Tensor or bool
        Neurons that spiked in this window (``False`` after a reset).
    v_seq : Tensor or None
        ``[T, N, ...]`` membrane of the last multi-step forward when ``store_v_seq``.

    Examples
    --------
    >>> from spikingjelly.activation_based import functional, layer
    >>> net = torch.nn.Sequential(layer.Conv2d(2, 30, 5, bias=False), FireOnceIFNode(15.0),
    ...                           FirstSpikeMaxPool2d(2))
    >>> functional.set_step_mode(net, "m")
    >>> out = net(spikes)                # spikes: [T, N, 2, H, W]
    >>> functional.reset_net(net)
    """

    def __init__(self, v_threshold: float = 1.0, step_mode: str = "s", store_v_seq: bool = False) -> None:
        super().__init__()
        self.v_threshold = check_float("v_threshold", v_threshold, minimum=0.0, strict_min=True)
        self.register_memory("v", 0.0)
        self.register_memory("fired", False)
        self.step_mode = step_mode
        self.store_v_seq = bool(store_v_seq)
        self.v_seq: Optional[Tensor] = None

    def materialize_states(self, inputs: Tuple[Tensor, ...], states: States, step_mode: str) -> States:
        """Zeros of the step's shape for a fresh window (``v``, ``fired`` not yet tensors)."""
        x = inputs[0][0] if step_mode == "m" else inputs[0]
        v, fired = live_state(states[0], x.shape), live_state(states[1], x.shape)
        if v is None or fired is None:
            return torch.zeros_like(x), torch.zeros_like(x, dtype=torch.bool)
        return v, fired

    def single_step_functional_forward(self, inputs: Tuple[Tensor, ...], states: States, **kwargs: object):
        """One step ``x`` ``[N, ...]`` from states ``(v, fired)``: ``((spikes,), (v, fired))``."""
        spikes, v, fired = fire_once(inputs[0].unsqueeze(0), self.v_threshold, *states)
        return (spikes[0],), (v, fired)

    def multi_step_functional_forward(self, inputs: Tuple[Tensor, ...], states: States, **kwargs: object):
        """A window ``x_seq`` ``[T, N, ...]`` from states ``(v, fired)``: ``((spikes,), (v, fired))``."""
        spikes, v, fired = fire_once(inputs[0], self.v_threshold, *states)
        return (spikes,), (v, fired)

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """Spikes ``[T, N, ...]`` of a window; keeps :attr:`v_seq` when ``store_v_seq``."""
        if not self.store_v_seq:
            return super().multi_step_forward(x_seq)
        v, fired = self.materialize_states((x_seq,), (self.v, self.fired), "m")
        spikes, self.v, self.fired, self.v_seq = fire_once(x_seq, self.v_threshold, v, fired, return_v_seq=True)
        return spikes

    def reset(self) -> None:
        """Start a new window: ``v = 0.``, ``fired = False``, ``v_seq = None``."""
        super().reset()
        self.v_seq = None

    def extra_repr(self) -> str:
        return f"v_threshold={self.v_threshold}, step_mode={self.step_mode}, store_v_seq={self.store_v_seq}"


class FirstSpikeMaxPool2d(base.MemoryModule):
    """Max-pooling of fire-once spikes in which every pooled unit fires once, at its first input.

    Max-pooling fire-once events can emit a pooled unit at several steps; in the paper
    (cumulative spike waves) it fires once, at its earliest input. This layer pools with
    ``F.max_pool2d`` (zero padding never fires) and keeps each pooled unit's first spike
    (:func:`~stdp_plugins.first_spike_only`, through :func:`stdp_plugins.backends.first_spike_only`). The window runs from the
    last ``reset()`` (``functional.reset_net``) or a change of the input shape.

    Parameters
    ----------
    kernel_size : int or pair of int
        Pooling window.
    stride : int or pair of int, optional
        Defaults to ``kernel_size``.
    padding : int or pair of int
        Zero padding (at most half the kernel).
    step_mode : str
        ``'s'`` (``[N, C, H, W]`` per call) or ``'m'`` (``[T, N, C, H, W]``).

    Attributes
    ----------
    fired : Tensor or bool
        Pooled units that spiked in this window (``False`` after a reset).
    """

    def __init__(
        self,
        kernel_size: PoolSize,
        stride: Optional[PoolSize] = None,
        padding: PoolSize = 0,
        step_mode: str = "s",
    ) -> None:
        super().__init__()
        self.kernel_size, self.stride, self.padding = check_pool_args(kernel_size, stride, padding)
        self.register_memory("fired", False)
        self.step_mode = step_mode

    def _first_spikes(self, x_seq: Tensor, fired: object) -> Tuple[Tensor, Tensor]:
        pooled = max_pool_spikes(x_seq, self.kernel_size, self.stride, self.padding)
        return first_spike_only(pooled, live_state(fired, pooled.shape[1:]))

    def single_step_functional_forward(self, inputs: Tuple[Tensor, ...], states: States, **kwargs: object):
        """One step ``[N, C, H, W]`` from state ``(fired,)``: ``((spikes,), (fired,))``."""
        spikes, fired = self._first_spikes(inputs[0].unsqueeze(0), states[0])
        return (spikes[0],), (fired,)

    def multi_step_functional_forward(self, inputs: Tuple[Tensor, ...], states: States, **kwargs: object):
        """A window ``[T, N, C, H, W]`` from state ``(fired,)``: ``((spikes,), (fired,))``."""
        spikes, fired = self._first_spikes(inputs[0], states[0])
        return (spikes,), (fired,)

    def extra_repr(self) -> str:
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"step_mode={self.step_mode}")
