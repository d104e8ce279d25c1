"""SpikingJelly layers: a step-mode aware WTA layer and a per-neuron adaptive threshold."""

from __future__ import annotations

from typing import Optional

import torch
from spikingjelly.activation_based import base, neuron
from torch import Tensor

from .._adapter import (
    IncrementalWinners,
    SpikeWindow,
    broadcast_thresholds,
    check_adaptive_threshold,
    keep_winners,
)
from ..learning import AdaptiveThreshold, WTAConfig

__all__ = ["WTALayer", "AdaptiveThresholdNode"]


class WTALayer(base.MemoryModule):
    """Winner-take-all after a spiking neuron, e.g. in an ``nn.Sequential``.

    Only the winners of the greedy first-spike rule
    (:func:`~stdp_plugins.learning.select_winners`) keep their spikes; every other neuron
    is silenced for the rest of the time window. In single-step mode (``'s'``) the window
    is every step since the last ``reset()`` (``functional.reset_net`` calls it); in
    multi-step mode (``'m'``) each ``[T, N, ...]`` forward continues the window. Ties in
    spike time go to the lowest flat index (the layer sees spikes only).

    Parameters
    ----------
    config : WTAConfig, optional
        Mode, ``local_radius`` and ``k_winners``; ``WTAConfig()`` when ``None``.
        Homeostasis settings are not used here (see :class:`AdaptiveThresholdNode`).
    step_mode : str
        ``'s'`` (``[N, C, H, W]`` or ``[N, C]`` per call) or ``'m'`` (``[T, N, ...]``).
    train_only : bool
        Inhibit only in training mode; in eval mode (``not self.training``) pass the
        spikes through unchanged. E.g. the paper trains layer 2 on layer 1's pooled
        spikes after pointwise inhibition (``WTAConfig(mode=WTAMode.LOCAL,
        local_radius=0)``) but feeds them uninhibited at inference.

    Examples
    --------
    >>> from spikingjelly.activation_based import layer, neuron
    >>> from stdp_plugins.learning import WTAConfig, WTAMode
    >>> net = torch.nn.Sequential(
    ...     layer.Conv2d(1, 8, 5), neuron.IFNode(v_threshold=10.0),
    ...     WTALayer(WTAConfig(mode=WTAMode.BOTH, local_radius=2, k_winners=5)))
    """

    def __init__(self, config: Optional[WTAConfig] = None, step_mode: str = "s", train_only: bool = False) -> None:
        super().__init__()
        if config is None:
            config = WTAConfig()
        if not isinstance(config, WTAConfig):
            raise TypeError(f"config must be a WTAConfig, got {type(config).__name__}")
        if not isinstance(train_only, bool):
            raise TypeError(f"train_only must be a bool, got {type(train_only).__name__} {train_only!r}")
        self.config = config
        self.step_mode = step_mode
        self.train_only = train_only
        self.winners = IncrementalWinners()
        self.winner_mask: Optional[Tensor] = None

    def single_step_forward(self, x: Tensor) -> Tensor:
        """Spikes ``[N, ...]`` of one step, non-winners zeroed (unchanged with ``train_only`` in eval mode)."""
        if self.train_only and not self.training:
            return x
        out, self.winner_mask = keep_winners(x, self.winners, self.config)
        return out

    def multi_step_forward(self, x_seq: Tensor) -> Tensor:
        """Spikes ``[T, N, ...]``, non-winners zeroed (unchanged with ``train_only`` in eval mode)."""
        if self.train_only and not self.training:
            return x_seq
        out, self.winner_mask = keep_winners(x_seq, self.winners, self.config, multi_step=True)
        return out

    def reset(self) -> None:
        """Start a new time window."""
        super().reset()
        self.winners.reset()
        self.winner_mask = None

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"mode={cfg.mode.name}, local_radius={cfg.local_radius}, k_winners={cfg.k_winners}, "
                f"step_mode={self.step_mode}, train_only={self.train_only}")


_LINEAR_NODES = (neuron.IFNode, neuron.LIFNode, neuron.ParametricLIFNode)


class AdaptiveThresholdNode(base.MemoryModule):
    """A SpikingJelly IF/LIF node with per-neuron thresholds from :class:`AdaptiveThreshold`.

    SpikingJelly's ``BaseNode`` (and its CUDA/Triton kernels) take one float
    ``v_threshold``. IF and LIF dynamics are linear in the membrane and the input when
    the node resets to 0 (``v_reset=0.0``) or by subtraction (``v_reset=None``), so a node
    with threshold ``v_th`` driven by ``x * v_th / theta`` fires exactly when the same
    node with threshold ``theta`` would fire on ``x``. This wrapper does that scaling, so
    it keeps the node's backend and both step modes.

    In training mode the output spikes are collected; every ``reset()`` (also through
    ``functional.reset_net``) feeds the finished window to ``threshold.update`` (when
    ``update_on_reset``) before resetting the node, so thresholds never change inside a
    window.

    Parameters
    ----------
    node : IFNode, LIFNode or ParametricLIFNode
        The wrapped node (any ``v_threshold``; ``v_reset`` 0.0 or ``None``).
    threshold : AdaptiveThreshold
        Per-neuron thresholds ``[C, *spatial]``; the node's input must end in that shape.
    update_on_reset : bool
        Update the thresholds on ``reset()``; otherwise call :meth:`update_threshold`.

    Attributes
    ----------
    v : Tensor or float
        The membrane in the units of ``threshold`` (the node's own ``v`` is scaled by
        ``v_th / theta``).
    """

    def __init__(self, node: neuron.BaseNode, threshold: AdaptiveThreshold, update_on_reset: bool = True) -> None:
        super().__init__()
        if not isinstance(node, _LINEAR_NODES):
            names = ", ".join(cls.__name__ for cls in _LINEAR_NODES)
            raise TypeError(f"node must be one of {names} (linear dynamics), got {type(node).__name__}")
        if node.v_reset not in (None, 0.0):
            raise ValueError(f"node.v_reset must be 0.0 or None (soft reset), got {node.v_reset}")
        check_adaptive_threshold(threshold)
        self.node = node
        self.threshold = threshold
        self.update_on_reset = bool(update_on_reset)
        self.window = SpikeWindow()

    @property
    def step_mode(self) -> str:
        """The wrapped node's step mode."""
        return self.node.step_mode

    @step_mode.setter
    def step_mode(self, value: str) -> None:
        self.node.step_mode = value

    def forward(self, x: Tensor) -> Tensor:
        """Spikes of the node with per-neuron thresholds (input ``[N, C, ...]`` or ``[T, N, C, ...]``)."""
        theta = broadcast_thresholds(self.threshold.thresholds, x)
        spikes = self.node(x * (self.node.v_threshold / theta))
        if self.training:
            self.window.append(spikes, multi_step=self.node.step_mode == "m")
        return spikes

    @property
    def v(self):
        """Membrane potential in threshold units (a float before the first step)."""
        v = self.node.v
        if not isinstance(v, Tensor):
            return v
        return v * (broadcast_thresholds(self.threshold.thresholds, v) / self.node.v_threshold)

    @torch.no_grad()
    def update_threshold(self) -> bool:
        """Feed the collected spikes to the thresholds; ``False`` when none were collected."""
        return self.window.flush(self.threshold)

    def reset(self) -> None:
        """End the window: update the thresholds (when ``update_on_reset``), reset the node."""
        super().reset()
        if self.update_on_reset:
            self.update_threshold()
        else:
            self.window.clear()
        self.node.reset()

    def extra_repr(self) -> str:
        return f"update_on_reset={self.update_on_reset}"
