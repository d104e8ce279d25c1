"""What a WTA layer or an adaptive threshold keeps of a time window."""

from __future__ import annotations

import math
from typing import List, Optional, Tuple

import torch
from torch import Tensor

from ..backends import first_spike_times, select_winners
from ..learning import AdaptiveThreshold, WTAConfig
from .synapse import as_feature_maps

__all__ = ["IncrementalWinners", "SpikeWindow", "broadcast_thresholds", "check_adaptive_threshold", "keep_winners"]


class IncrementalWinners:
    """Greedy winner-take-all over a time window that arrives in chunks.

    The greedy rule walks candidates in first-spike order, so neurons that fire for the
    first time in a later chunk cannot change any decision about earlier ones: running
    :func:`~stdp_plugins.learning.select_winners` on the first-spike times seen so far
    keeps every earlier winner and decides the newcomers. A single-step layer feeds one
    step per call, a multi-step layer or a learner a whole ``[T, ...]`` sequence. A winner
    keeps all its later spikes; every other neuron loses all of them.

    Attributes
    ----------
    first_times : Tensor or None
        ``[N, C, H, W]`` first-spike steps of the window so far (``inf`` = silent).
    tie_potential : Tensor or None
        ``[N, C, H, W]`` membrane at each neuron's first-spike step (ties: higher first).
    steps : int
        Time steps seen since :meth:`reset`.
    backend : str
        Implementation of the dispatched operations (:data:`stdp_plugins.backends.BACKENDS`).
    """

    def __init__(self, backend: str = "auto") -> None:
        self.backend = backend
        self.first_times: Optional[Tensor] = None
        self.tie_potential: Optional[Tensor] = None
        self.steps = 0
        self._mask: Optional[Tensor] = None

    def reset(self) -> None:
        """Start a new time window."""
        self.first_times = None
        self.tie_potential = None
        self.steps = 0
        self._mask = None

    def __call__(self, spikes: Tensor, potentials: Optional[Tensor], wta: WTAConfig) -> Tensor:
        """Add a chunk of the window and return the winner mask so far.

        Parameters
        ----------
        spikes : Tensor
            ``[T, N, C, H, W]`` spikes of the next ``T`` steps (any non-zero value fires).
        potentials : Tensor, optional
            ``[T, N, C, H, W]`` membrane potentials of those steps.
        wta : WTAConfig
            Mode, radius and ``k_winners`` of the greedy rule.

        Returns
        -------
        Tensor
            Bool ``[N, C, H, W]`` winners of the whole window so far.
        """
        times, tie = first_spike_times(spikes, potentials, backend=self.backend)
        if self.first_times is None or self.first_times.shape != times.shape:
            self.reset()
            self.first_times = torch.full_like(times, math.inf)
            self.tie_potential = torch.zeros_like(times)
        new = torch.isfinite(times) & torch.isinf(self.first_times)
        self.steps += spikes.shape[0]
        if self._mask is not None and not bool(new.any()):
            return self._mask  # no newcomer: every decision stands
        self.first_times = torch.where(new, times + (self.steps - spikes.shape[0]), self.first_times)
        if tie is not None:
            self.tie_potential = torch.where(new, tie, self.tie_potential)
        self._mask = select_winners(self.first_times, self.tie_potential, wta.mode, wta.local_radius, wta.k_winners,
                                    pointwise=wta.pointwise_inhibition, backend=self.backend)
        return self._mask


def keep_winners(
    spikes: Tensor,
    winners: IncrementalWinners,
    wta: WTAConfig,
    potentials: Optional[Tensor] = None,
    multi_step: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Feed one forward's spikes to ``winners`` and keep only the winners' spikes.

    Parameters
    ----------
    spikes : Tensor
        ``[N, C]`` / ``[N, C, H, W]``, or with a leading time dimension when ``multi_step``.
    winners : IncrementalWinners
        State of the current time window.
    wta : WTAConfig
        The competition.
    potentials : Tensor, optional
        Membrane potentials shaped like ``spikes`` (tie-breaks).
    multi_step : bool
        Whether ``spikes`` is time-major.

    Returns
    -------
    filtered : Tensor
        ``spikes`` with every non-winner zeroed (same shape and dtype).
    winner_mask : Tensor
        Bool ``[N, C, H, W]`` (``[N, C, 1, 1]`` for a linear layer).
    """
    seq = spikes if multi_step else spikes[None]
    maps = as_feature_maps(seq, "spikes", time_major=True)
    if potentials is not None:
        if potentials.shape != spikes.shape:
            raise ValueError(
                f"potentials must have the shape of spikes {tuple(spikes.shape)}, got {tuple(potentials.shape)}"
            )
        potentials = as_feature_maps(potentials if multi_step else potentials[None], "potentials", True)
    mask = winners(maps, potentials, wta)
    return spikes * mask.view(seq.shape[1:]).to(spikes.dtype), mask


class SpikeWindow:
    """Spikes of a neuron layer collected over a time window, for homeostasis.

    Each :meth:`append` stores one forward's spikes as bool ``[T, N, ...]``; :meth:`flush`
    feeds the whole window to an :class:`~stdp_plugins.learning.AdaptiveThreshold` and
    forgets it.
    """

    def __init__(self) -> None:
        self._records: List[Tensor] = []

    def append(self, spikes: Tensor, multi_step: bool) -> None:
        """Store ``spikes`` (``[T, N, ...]`` when ``multi_step``, else ``[N, ...]``)."""
        record = spikes.detach() != 0
        self._records.append(record if multi_step else record[None])

    def clear(self) -> None:
        """Forget the window."""
        self._records.clear()

    def flush(self, threshold: AdaptiveThreshold) -> bool:
        """Update ``threshold`` with the window's spikes and clear it; ``False`` if empty."""
        if not self._records:
            return False
        spikes = torch.cat(self._records)
        self._records.clear()
        threshold.update(spikes)
        return True


def check_adaptive_threshold(threshold: AdaptiveThreshold, name: str = "threshold") -> None:
    """Raise ``TypeError`` unless ``threshold`` is an :class:`AdaptiveThreshold`."""
    if not isinstance(threshold, AdaptiveThreshold):
        raise TypeError(f"{name} must be a stdp_plugins AdaptiveThreshold, got {type(threshold).__name__}")


def broadcast_thresholds(thresholds: Tensor, like: Tensor) -> Tensor:
    """Thresholds ``[C, *spatial]`` checked against the trailing dims of ``like``."""
    rank = thresholds.dim()
    if tuple(like.shape[-rank:]) != tuple(thresholds.shape) or like.dim() < rank + 1:
        raise ValueError(
            f"the neuron input must end in the threshold shape {tuple(thresholds.shape)} "
            f"([N, C, *spatial] or [T, N, C, *spatial]), got {tuple(like.shape)}"
        )
    return thresholds.to(device=like.device, dtype=like.dtype)
