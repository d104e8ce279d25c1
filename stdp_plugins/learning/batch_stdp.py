"""First-spike STDP for a whole batch of winners: the mean and the sequential reduction
(the spec page's 'STDP'). The per-winner rule of :mod:`.stdp` is their one-winner case."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ._checks import (
    binary_probe,
    check_enum,
    check_learning_rate,
    check_same_device,
    check_tensor,
    check_values,
    finite_probe,
    spike_time_probe,
)
from ._indexing import nonzero_indices
from .stdp import LearningRate, STDPVariant, _check_bounds, _delta_from_fraction, _signed_rate, _weight_factor
from .timing import _check_geometry, conv_output_size, gather_receptive_field_times

__all__ = ["batch_stdp_update", "potentiation_fraction", "sequential_stdp_update_"]


def check_batch_shapes(
    weights: Tensor, pre_spike_times: Tensor, post_spike_times: Tensor, winner_mask: Optional[Tensor],
    stride: int, padding: int,
) -> Tuple[int, int, int]:
    """Structural checks of a batch update's inputs; reads no tensor values (no device sync).

    Returns
    -------
    tuple of int
        ``(kernel_size, stride, padding)``.
    """
    check_tensor("weights", weights, 4, "[C_out, C_in, k, k]")
    check_tensor("pre_spike_times", pre_spike_times, 4, "[N, C_in, H, W]")
    check_tensor("post_spike_times", post_spike_times, 4, "[N, C_out, H_out, W_out]")
    if winner_mask is not None:
        check_tensor("winner_mask", winner_mask, 4, "[N, C_out, H_out, W_out]")
    check_same_device(weights=weights, pre_spike_times=pre_spike_times,
                      post_spike_times=post_spike_times, winner_mask=winner_mask)
    for name, tensor in (("weights", weights), ("pre_spike_times", pre_spike_times),
                         ("post_spike_times", post_spike_times)):
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {tensor.dtype}")
    c_out, c_in, k_h, k_w = weights.shape
    if k_h != k_w:
        raise ValueError(f"weights must have square kernels [C_out, C_in, k, k], got shape {tuple(weights.shape)}")
    if k_h < 1:
        raise ValueError(f"weights must have kernels of size k >= 1, got shape {tuple(weights.shape)}")
    kernel_size, stride, padding = _check_geometry(k_h, stride, padding)
    n, pre_c, height, width = pre_spike_times.shape
    if pre_c != c_in:
        raise ValueError(
            f"pre_spike_times must have C_in={c_in} channels to match weights {tuple(weights.shape)}, "
            f"got shape {tuple(pre_spike_times.shape)}"
        )
    out_size = (conv_output_size(height, kernel_size, stride, padding),
                conv_output_size(width, kernel_size, stride, padding))
    if min(out_size) < 1:
        raise ValueError(
            f"pre_spike_times of spatial size {height}x{width} is smaller than a "
            f"{kernel_size}x{kernel_size} kernel with padding {padding}"
        )
    expected = (n, c_out, *out_size)
    if tuple(post_spike_times.shape) != expected:
        raise ValueError(
            f"post_spike_times must have shape {list(expected)} (N, C_out and the output map of a "
            f"{kernel_size}x{kernel_size} convolution with stride {stride}, padding {padding} over "
            f"{height}x{width}), got {tuple(post_spike_times.shape)}"
        )
    if winner_mask is not None and winner_mask.shape != post_spike_times.shape:
        raise ValueError(
            f"winner_mask must have the shape of post_spike_times {tuple(post_spike_times.shape)}, "
            f"got {tuple(winner_mask.shape)}"
        )
    return kernel_size, stride, padding


def _check_batch_inputs(
    weights: Tensor, pre_spike_times: Tensor, post_spike_times: Tensor, winner_mask: Optional[Tensor],
    stride: int, padding: int,
) -> Tuple[int, int, int]:
    """:func:`check_batch_shapes` plus the value checks (finite weights, spike times, binary
    mask), all read with one device-to-host transfer."""
    geometry = check_batch_shapes(weights, pre_spike_times, post_spike_times, winner_mask, stride, padding)
    check_values(
        finite_probe("weights", weights),
        spike_time_probe("pre_spike_times", pre_spike_times),
        spike_time_probe("post_spike_times", post_spike_times),
        [] if winner_mask is None else binary_probe("winner_mask", winner_mask),
    )
    return geometry


def _winner_potentiation(
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    kernel_size: int,
    stride: int,
    padding: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Sample, channel and the 0/1 ``[C_in, k, k]`` potentiation pattern of every winner
    (in ``nonzero`` order: by sample, then channel, then position)."""
    if winner_mask is None:
        sample, channel, y, x = nonzero_indices(torch.isfinite(post_spike_times))
    else:  # a sparse mask: find its entries first, then drop those that never fired
        sample, channel, y, x = nonzero_indices(winner_mask)
        fired = torch.isfinite(post_spike_times[sample, channel, y, x])
        sample, channel, y, x = sample[fired], channel[fired], y[fired], x[fired]
    field = gather_receptive_field_times(pre_spike_times, sample, y, x, kernel_size, stride, padding)
    t_post = post_spike_times[sample, channel, y, x]
    return sample, channel, (field <= t_post[:, None, None, None]).to(pre_spike_times.dtype)


def potentiation_fraction(
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Per channel, the share of its winners that potentiate each synapse.

    Parameters
    ----------
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` first-spike times of the input.
    post_spike_times : Tensor
        ``[N, C_out, H_out, W_out]`` first-spike times of the output.
    winner_mask : Tensor or None
        Bool ``[N, C_out, H_out, W_out]``; ``None`` makes every finite post time a winner.
        Entries with an infinite post time are skipped.
    kernel_size, stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    fraction : Tensor
        ``[C_out, C_in, k, k]``: for each synapse, the fraction of the channel's winners
        with ``t_pre`` finite and ``t_pre <= t_post`` (0 for channels without winners).
    wins : Tensor
        ``[C_out]`` long, the number of winners per channel.
    """
    _, channel, potentiates = _winner_potentiation(
        pre_spike_times, post_spike_times, winner_mask, kernel_size, stride, padding
    )
    c_out, c_in = post_spike_times.shape[1], pre_spike_times.shape[1]
    totals = torch.zeros(c_out, c_in, kernel_size, kernel_size, dtype=potentiates.dtype,
                         device=pre_spike_times.device)
    totals.index_add_(0, channel, potentiates)
    wins = torch.bincount(channel, minlength=c_out)
    return totals / wins.clamp(min=1).to(totals.dtype)[:, None, None, None], wins


def batch_stdp_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """STDP step of a whole batch of winners, averaged per output channel.

    Every winner contributes its update to its channel's kernel; per channel the
    contributions are averaged over that channel's winners, so the step size does not
    grow with the batch size. Channels without winners get zero.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, C_in, k, k]`` convolution weights (finite).
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` input first-spike times (``inf`` = never).
    post_spike_times : Tensor
        ``[N, C_out, H_out, W_out]`` output first-spike times.
    winner_mask : Tensor or None
        Bool, shaped like ``post_spike_times``; ``None`` means every finite post time wins.
    lr_plus, lr_minus : float or Tensor
        Potentiation and depression rates.
    variant : STDPVariant
        Weight dependence of the step.
    weight_min, weight_max : float
        Bounds used by the multiplicative factor.
    stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    Tensor
        The delta ``[C_out, C_in, k, k]``, neither applied nor clamped.
    """
    kernel_size, stride, padding = _check_batch_inputs(
        weights, pre_spike_times, post_spike_times, winner_mask, stride, padding
    )
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    weight_min, weight_max = _check_bounds(weight_min, weight_max)
    fraction, wins = potentiation_fraction(
        pre_spike_times.to(weights.dtype), post_spike_times.to(weights.dtype), winner_mask,
        kernel_size, stride, padding,
    )
    delta = _delta_from_fraction(weights, fraction, lr_plus, lr_minus, variant, weight_min, weight_max)
    return delta * (wins > 0).to(delta.dtype)[:, None, None, None]


def sequential_stdp_update_(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """Apply a batch's STDP steps sample after sample, in place, clamping after each.

    The result equals :func:`batch_stdp_update` of every sample alone (its winners
    averaged per channel), each added to ``weights`` and clamped before the next sample:
    the weight trajectory of one-image-at-a-time learning, given the batch's spikes. A
    channel's steps depend only on its own weights, so the loop runs over the rank of a
    sample among the samples in which that channel wins (at most the batch size), with
    every channel of a rank updated at once.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, C_in, k, k]`` convolution weights (finite), updated in place.
    pre_spike_times, post_spike_times, winner_mask, lr_plus, lr_minus, variant, weight_min, weight_max, stride, padding
        As for :func:`batch_stdp_update`.

    Returns
    -------
    Tensor
        ``weights``.
    """
    kernel_size, stride, padding = _check_batch_inputs(
        weights, pre_spike_times, post_spike_times, winner_mask, stride, padding
    )
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    weight_min, weight_max = _check_bounds(weight_min, weight_max)
    sample, channel, potentiates = _winner_potentiation(
        pre_spike_times.to(weights.dtype), post_spike_times.to(weights.dtype), winner_mask,
        kernel_size, stride, padding,
    )
    c_out = weights.shape[0]
    # one step per (sample, channel) pair: its winners' potentiation, averaged
    steps, step_of, wins = torch.unique(sample * c_out + channel, return_inverse=True, return_counts=True)
    fraction = torch.zeros(steps.numel(), *weights.shape[1:], dtype=weights.dtype, device=weights.device)
    fraction.index_add_(0, step_of, potentiates)
    fraction /= wins.to(weights.dtype)[:, None, None, None]
    step_channel = steps % c_out  # steps are sorted by sample, then channel
    # rank of each step among its channel's steps; then order the steps by rank (stable,
    # so a rank keeps the channel order) to apply each rank as one slice
    by_channel = torch.argsort(step_channel, stable=True)
    first_of_channel = torch.searchsorted(step_channel[by_channel], step_channel[by_channel])
    rank = torch.empty_like(by_channel)
    rank[by_channel] = torch.arange(by_channel.numel(), device=rank.device) - first_of_channel
    by_rank = torch.argsort(rank, stable=True)
    channel_of = step_channel[by_rank]
    signed_rate = _signed_rate(fraction[by_rank], lr_plus, lr_minus)
    ends = torch.bincount(rank).cumsum(0).tolist() if rank.numel() else []
    with torch.no_grad():
        begin = 0
        for end in ends:
            chosen = channel_of[begin:end]
            current = weights[chosen]
            factor = _weight_factor(current, variant, weight_min, weight_max)
            weights[chosen] = (current + factor * signed_rate[begin:end]).clamp_(weight_min, weight_max)
            begin = end
    return weights
