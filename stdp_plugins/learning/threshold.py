"""Homeostasis: per-neuron adaptive firing thresholds."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from ._checks import check_binary, check_device, check_float, check_int, check_shape_tuple, check_tensor

__all__ = ["AdaptiveThreshold"]


class AdaptiveThreshold(nn.Module):
    """Per-neuron thresholds that drift towards a target firing rate.

    After each :meth:`update` every threshold moves by
    ``theta += learning_rate * (rate - target_rate) * theta`` and is clamped to
    ``[threshold_min, threshold_max]``, where ``rate`` is that update's firing rate of
    the neuron (the mean over every leading dimension: time and batch).

    Parameters
    ----------
    n_channels : int
        Number of feature maps ``C``.
    spatial_shape : tuple of int
        Spatial shape, e.g. ``(H, W)``; ``()`` for a linear layer.
    initial_threshold : float
        Starting threshold of every neuron.
    target_rate : float
        Desired firing rate in ``[0, 1]``.
    learning_rate : float
        Adaptation speed (``>= 0``).
    threshold_min, threshold_max : float
        Bounds of the thresholds (``0 < min < max``).
    device : torch.device, optional
        Device of the buffers.
    """

    def __init__(
        self,
        n_channels: int,
        spatial_shape: Union[Sequence[int], int],
        initial_threshold: float = 10.0,
        target_rate: float = 0.1,
        learning_rate: float = 0.001,
        threshold_min: float = 1.0,
        threshold_max: float = 100.0,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        super().__init__()
        self.n_channels = check_int("n_channels", n_channels, minimum=1)
        self.spatial_shape = check_shape_tuple("spatial_shape", spatial_shape)
        self.target_rate = check_float("target_rate", target_rate, minimum=0.0, maximum=1.0)
        self.learning_rate = check_float("learning_rate", learning_rate, minimum=0.0)
        self.threshold_min = check_float("threshold_min", threshold_min, minimum=0.0, strict_min=True)
        self.threshold_max = check_float("threshold_max", threshold_max)
        if self.threshold_min >= self.threshold_max:
            raise ValueError(
                f"threshold_min must be < threshold_max, got {self.threshold_min} and {self.threshold_max}"
            )
        device = check_device("device", device)
        shape = (self.n_channels, *self.spatial_shape)
        self.register_buffer("thresholds", torch.empty(shape, device=device))
        self.register_buffer("rate_sum", torch.zeros(shape, device=device))
        self.register_buffer("n_updates", torch.zeros((), dtype=torch.long, device=device))
        self.reset_all(initial_threshold)

    def _check_initial(self, initial_threshold: float) -> float:
        return check_float("initial_threshold", initial_threshold, minimum=self.threshold_min,
                           maximum=self.threshold_max)

    def update(self, spikes: Tensor) -> None:
        """Adapt the thresholds to one batch of spikes.

        Parameters
        ----------
        spikes : Tensor
            Binary ``[N, C, *spatial]`` or ``[T, N, C, *spatial]``.
        """
        rank = len(self.spatial_shape) + 1
        check_tensor("spikes", spikes, (rank + 1, rank + 2),
                     "[N, C, *spatial] or [T, N, C, *spatial]")
        if tuple(spikes.shape[-rank:]) != tuple(self.thresholds.shape):
            raise ValueError(
                f"spikes must end in the neuron shape {tuple(self.thresholds.shape)}, got {tuple(spikes.shape)}"
            )
        check_binary("spikes", spikes)
        rate = spikes.detach().reshape(-1, *self.thresholds.shape).float().mean(dim=0).to(self.thresholds.device)
        with torch.no_grad():
            self.thresholds.add_(self.learning_rate * (rate - self.target_rate) * self.thresholds)
            self.thresholds.clamp_(self.threshold_min, self.threshold_max)
            self.rate_sum.add_(rate)
            self.n_updates.add_(1)

    def forward(self, spikes: Tensor) -> Tensor:
        """Adapt to ``spikes`` (as :meth:`update`) and return the new thresholds."""
        self.update(spikes)
        return self.thresholds

    def get_thresholds(self, expand_batch: int = 1) -> Tensor:
        """Thresholds expanded to ``[expand_batch, C, *spatial]`` (a view, no copy)."""
        expand_batch = check_int("expand_batch", expand_batch, minimum=1)
        return self.thresholds.unsqueeze(0).expand(expand_batch, *self.thresholds.shape)

    def reset_statistics(self) -> None:
        """Forget the recorded firing rates (the thresholds stay)."""
        self.rate_sum.zero_()
        self.n_updates.zero_()

    def reset_all(self, initial_threshold: float = 10.0) -> None:
        """Set every threshold to ``initial_threshold`` and forget the firing rates."""
        initial_threshold = self._check_initial(initial_threshold)
        with torch.no_grad():
            self.thresholds.fill_(initial_threshold)
        self.reset_statistics()

    @property
    def firing_rates(self) -> Tensor:
        """Mean of the per-update firing rates since :meth:`reset_statistics` (zeros before any)."""
        return self.rate_sum / self.n_updates.clamp(min=1)

    @property
    def mean_threshold(self) -> float:
        """Mean threshold over all neurons."""
        return float(self.thresholds.mean())

    def extra_repr(self) -> str:
        return (f"n_channels={self.n_channels}, spatial_shape={self.spatial_shape}, "
                f"target_rate={self.target_rate}, learning_rate={self.learning_rate}")
