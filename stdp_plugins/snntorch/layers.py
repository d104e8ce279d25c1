"""snnTorch layers: a WTA layer and an adaptive threshold that drives ``snn.Leaky.threshold``."""

from __future__ import annotations

from typing import Any, List, Optional, Tuple, Union

import torch
from snntorch import SpikingNeuron
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from .._adapter import (
    IncrementalWinners,
    SpikeWindow,
    broadcast_thresholds,
    check_adaptive_threshold,
    keep_winners,
)
from ..learning import AdaptiveThreshold, WTAConfig

__all__ = ["WTALayer", "AdaptiveThresholdBinding"]


def output_spikes(output: Any) -> Tensor:
    """The spike tensor of an snnTorch neuron's output (``spk`` or ``(spk, ...)``)."""
    spikes = output[0] if isinstance(output, tuple) else output
    if not isinstance(spikes, Tensor):
        raise TypeError(f"expected spikes or a (spk, mem, ...) tuple, got {type(output).__name__}")
    return spikes


class WTALayer(nn.Module):
    """Winner-take-all after an snnTorch neuron, called once per time step.

    Only the winners of the greedy first-spike rule
    (:func:`~stdp_plugins.learning.select_winners`) keep their spikes; every other neuron
    is silenced for the rest of the time window, which runs from the last :meth:`reset`
    (call it where the tutorials call ``reset_mem()`` / ``utils.reset(net)``). Ties in
    spike time go to the higher membrane when ``mem`` is given, then to the lower index.

    Parameters
    ----------
    config : WTAConfig, optional
        Mode, ``local_radius`` and ``k_winners``; ``WTAConfig()`` when ``None``.
    train_only : bool
        Inhibit only in training mode; in eval mode (``not self.training``) return the
        input unchanged. E.g. the paper trains layer 2 on layer 1's pooled spikes after
        pointwise inhibition (``WTAConfig(mode=WTAMode.LOCAL, local_radius=0)``) but
        feeds them uninhibited at inference.

    Examples
    --------
    In the per-step loop::

        spk1, mem1 = self.lif1(self.conv1(x), mem1)
        spk1 = self.wta1(spk1, mem1)

    In an ``nn.Sequential`` with ``snn.Leaky(init_hidden=True)`` the layer takes ``spk``
    (or the ``(spk, mem)`` tuple of ``output=True`` and returns ``(spk, mem)``).
    """

    def __init__(self, config: Optional[WTAConfig] = None, train_only: bool = False) -> None:
        super().__init__()
        if config is None:
            config = WTAConfig()
        if not isinstance(config, WTAConfig):
            raise TypeError(f"config must be a WTAConfig, got {type(config).__name__}")
        if not isinstance(train_only, bool):
            raise TypeError(f"train_only must be a bool, got {type(train_only).__name__} {train_only!r}")
        self.config = config
        self.train_only = train_only
        self.winners = IncrementalWinners()
        self.winner_mask: Optional[Tensor] = None

    def forward(
        self, spk: Union[Tensor, Tuple[Tensor, ...]], mem: Optional[Tensor] = None
    ) -> Union[Tensor, Tuple[Tensor, ...]]:
        """Spikes ``[N, C, H, W]`` or ``[N, C]`` of one step with non-winners zeroed.

        Parameters
        ----------
        spk : Tensor or tuple
            Spikes, or a neuron's ``(spk, mem)`` output.
        mem : Tensor, optional
            Membrane potential for tie-breaks (taken from the tuple when one is passed).

        Returns
        -------
        Tensor or tuple
            The filtered spikes; ``(spikes, mem)`` when ``spk`` was a tuple. With
            ``train_only`` in eval mode, ``spk`` itself.
        """
        if self.train_only and not self.training:
            return spk
        as_tuple = isinstance(spk, tuple)
        if as_tuple:
            spk, mem = spk[0], spk[-1]
        out, self.winner_mask = keep_winners(spk, self.winners, self.config, mem)
        return (out, mem) if as_tuple else out

    def reset(self) -> None:
        """Start a new time window."""
        self.winners.reset()
        self.winner_mask = None

    def extra_repr(self) -> str:
        cfg = self.config
        return (f"mode={cfg.mode.name}, local_radius={cfg.local_radius}, k_winners={cfg.k_winners}, "
                f"train_only={self.train_only}")


class AdaptiveThresholdBinding:
    """Let an :class:`AdaptiveThreshold` drive an snnTorch neuron's ``threshold`` buffer.

    Before each forward the neuron's ``threshold`` buffer is set to the per-neuron
    thresholds ``[C, *spatial]`` (they broadcast over the batch); in training mode the
    neuron's spikes are collected, and :meth:`update_threshold` feeds the collected window
    to ``threshold.update`` (call it once per sample, e.g. next to ``reset_mem()``).
    :meth:`close` removes the hooks and restores the original buffer.

    Parameters
    ----------
    neuron : snntorch.SpikingNeuron
        E.g. ``snn.Leaky`` with a fixed (not learnable) threshold, either ``init_hidden``.
    threshold : AdaptiveThreshold
        Per-neuron thresholds; the neuron's input must end in their shape.
    """

    def __init__(self, neuron: nn.Module, threshold: AdaptiveThreshold) -> None:
        if not isinstance(neuron, SpikingNeuron):
            raise TypeError(f"neuron must be an snntorch SpikingNeuron (e.g. snn.Leaky), got {type(neuron).__name__}")
        if "threshold" not in neuron._buffers:
            raise ValueError(
                f"neuron.threshold must be a buffer (learn_threshold=False), got a {type(neuron.threshold).__name__}"
            )
        check_adaptive_threshold(threshold)
        self.neuron = neuron
        self.threshold = threshold
        self.window = SpikeWindow()
        self._original = neuron.threshold
        self._handles: List[RemovableHandle] = [
            neuron.register_forward_pre_hook(self._set_threshold),
            neuron.register_forward_hook(self._record),
        ]

    def _set_threshold(self, module: nn.Module, inputs: Tuple[Any, ...]) -> None:
        module.threshold = broadcast_thresholds(self.threshold.thresholds, inputs[0])

    def _record(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
        if module.training:
            self.window.append(output_spikes(output), multi_step=False)

    @torch.no_grad()
    def update_threshold(self) -> bool:
        """Feed the collected spikes to the thresholds; ``False`` when none were collected."""
        return self.window.flush(self.threshold)

    def close(self) -> None:
        """Remove the hooks and put the neuron's original threshold back; idempotent."""
        for handle in self._handles:
            handle.remove()
        if self._handles:
            self.neuron.threshold = self._original
        self._handles.clear()
        self.window.clear()
