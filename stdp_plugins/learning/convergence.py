"""Convergence of STDP weights (Kheradpisheh 2018, eq. 4) and per-neuron win tracking."""

from __future__ import annotations

from typing import Optional, Sequence, Union

import torch
from torch import Tensor

from ._checks import (
    binary_probe,
    check_device,
    check_finite,
    check_float,
    check_int,
    check_shape_tuple,
    check_tensor,
    check_values,
    finite_probe,
)

__all__ = [
    "compute_convergence_metric",
    "has_converged",
    "channel_convergence",
    "ConvergenceTracker",
]


def _normalised_spread(weights: Tensor, weight_min: float, weight_max: float) -> Tensor:
    w = (weights.float() - weight_min) / (weight_max - weight_min)
    return w * (1.0 - w)


def compute_convergence_metric(weights: Tensor) -> float:
    """Kheradpisheh's convergence metric ``mean(w * (1 - w))`` over all weights.

    Parameters
    ----------
    weights : Tensor
        Weights in ``[0, 1]``, any shape.

    Returns
    -------
    float
        The metric; ``0.0`` for an empty tensor. It falls towards 0 as every weight
        saturates at 0 or 1.
    """
    check_tensor("weights", weights)
    if weights.numel() == 0:
        return 0.0
    metric = _normalised_spread(weights, 0.0, 1.0).mean()
    metric, finite = torch.stack((metric, torch.isfinite(weights).all().to(metric.dtype))).tolist()
    if not finite:  # read with the metric: one device-to-host transfer
        check_finite("weights", weights)  # raises, with the package's message
    return metric


def has_converged(weights: Tensor, threshold: float = 0.01) -> bool:
    """Return ``compute_convergence_metric(weights) < threshold`` (strict)."""
    threshold = check_float("threshold", threshold, minimum=0.0)
    return compute_convergence_metric(weights) < threshold


def channel_convergence(weights: Tensor, weight_min: float = 0.0, weight_max: float = 1.0) -> Tensor:
    """Per-output-channel convergence metric, weights normalised to their bounds.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, ...]`` weights.
    weight_min, weight_max : float
        Bounds used to normalise the weights to ``[0, 1]``.

    Returns
    -------
    Tensor
        ``[C_out]`` float32, ``mean(wn * (1 - wn))`` over each channel's weights.

    Notes
    -----
    The values are not checked: this is the statistic the dispatched update
    (:func:`stdp_plugins.fused_winner_update`) returns after every step, on the weights'
    device and without a device-to-host transfer; NaN weights give NaN entries. For a
    checked float use :func:`compute_convergence_metric` or
    :meth:`STDPLearner.get_convergence`.
    """
    check_tensor("weights", weights)
    if weights.dim() == 0:
        raise ValueError("weights must have a channel dimension [C_out, ...], got a 0-D tensor")
    return _normalised_spread(weights.reshape(weights.shape[0], -1), weight_min, weight_max).mean(dim=1)


class ConvergenceTracker:
    """Count wins per neuron and decide which neurons have converged.

    A neuron counts as converged once it has won at least ``min_wins`` times and, when
    weight deltas are passed to :meth:`update`, its latest mean ``|delta w|`` is below
    ``delta_threshold``.

    Parameters
    ----------
    n_channels : int
        Number of feature maps ``C``.
    spatial_shape : tuple of int
        Spatial shape of each map, e.g. ``(H, W)``; ``()`` for a linear layer.
    min_wins : int
        Wins needed before a neuron can count as converged.
    delta_threshold : float
        Largest mean absolute weight change of a converged neuron's channel.
    device : torch.device, optional
        Device of the counters.
    """

    def __init__(
        self,
        n_channels: int,
        spatial_shape: Union[Sequence[int], int],
        min_wins: int = 10,
        delta_threshold: float = 1e-4,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        self.n_channels = check_int("n_channels", n_channels, minimum=1)
        self.spatial_shape = check_shape_tuple("spatial_shape", spatial_shape)
        self.min_wins = check_int("min_wins", min_wins, minimum=0)
        self.delta_threshold = check_float("delta_threshold", delta_threshold, minimum=0.0, strict_min=True)
        device = check_device("device", device)
        shape = (self.n_channels, *self.spatial_shape)
        self.wins = torch.zeros(shape, dtype=torch.long, device=device)
        self.last_delta = torch.full(shape, float("nan"), device=device)

    def update(self, winner_mask: Tensor, weight_deltas: Optional[Tensor] = None) -> None:
        """Record one update's winners and, optionally, the weight change it made.

        Parameters
        ----------
        winner_mask : Tensor
            Bool ``[N, C, *spatial]``; a neuron winning in several samples counts each.
        weight_deltas : Tensor, optional
            ``[C, ...]`` weight change of that update; its per-channel mean ``|delta w|``
            is recorded for the neurons that won in this update.
        """
        check_tensor("winner_mask", winner_mask, len(self.spatial_shape) + 2, "[N, C, *spatial]")
        expected = (self.n_channels, *self.spatial_shape)
        if tuple(winner_mask.shape[1:]) != expected:
            raise ValueError(
                f"winner_mask must have shape [N, {', '.join(map(str, expected))}], "
                f"got {tuple(winner_mask.shape)}"
            )
        if weight_deltas is not None:
            check_tensor("weight_deltas", weight_deltas)
            if weight_deltas.dim() == 0 or weight_deltas.shape[0] != self.n_channels:
                raise ValueError(
                    f"weight_deltas must have shape [C={self.n_channels}, ...], got {tuple(weight_deltas.shape)}"
                )
        check_values(binary_probe("winner_mask", winner_mask),
                     [] if weight_deltas is None else finite_probe("weight_deltas", weight_deltas.to(winner_mask.device)))
        mask = winner_mask.to(device=self.wins.device, dtype=torch.bool)
        self.wins += mask.sum(dim=0)
        if weight_deltas is None:
            return
        per_channel = weight_deltas.detach().reshape(self.n_channels, -1).abs().float().mean(dim=1)
        per_neuron = per_channel.to(self.last_delta.device).view(-1, *([1] * len(self.spatial_shape)))
        won = mask.any(dim=0)
        self.last_delta = torch.where(won, per_neuron.expand_as(self.last_delta), self.last_delta)

    def _converged(self) -> Tensor:
        enough_wins = self.wins >= self.min_wins
        settled = torch.isnan(self.last_delta) | (self.last_delta < self.delta_threshold)
        return enough_wins & settled

    @property
    def n_converged(self) -> int:
        """Number of converged neurons."""
        return int(self._converged().sum())

    @property
    def convergence_ratio(self) -> float:
        """``n_converged`` divided by the number of neurons ``C * prod(spatial_shape)``."""
        return self.n_converged / self.wins.numel()

    def is_converged(self, threshold: float = 0.95) -> bool:
        """Return ``convergence_ratio >= threshold``."""
        threshold = check_float("threshold", threshold, minimum=0.0, maximum=1.0)
        return self.convergence_ratio >= threshold

    def reset(self) -> None:
        """Forget every win and recorded delta."""
        self.wins.zero_()
        self.last_delta.fill_(float("nan"))
