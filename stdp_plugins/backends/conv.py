"""Dispatched operation: first-spike convolution of a layer of fire-once non-leaky IF
neurons (docs/spec.md, 'First-spike convolution'), the reference network's layer.

Each neuron integrates ``conv(input spikes at t)`` and fires once, at the first step ``t``
with potential ``>= threshold``. With non-negative weights potentials only grow, so a
layer is fully described by first-spike times: ``[N, C, H, W]`` float tensors, ``inf`` =
never fired. Two exact implementations give the same times and potentials:

- ``"torch"``: :func:`dense_first_spike_conv`, a float64 convolution of the cumulative
  input at every time step (any device; the reference).
- ``"native"``: the event-driven C kernel (:mod:`._conv_native`), work proportional to the
  number of input spikes (CPU).
- ``"cupy"``: the CUDA kernel ``cuda/first_spike_conv.cu``, one thread per neuron reading
  its receptive field once (:mod:`._cupy_ops`).

Potentials are sums of float32 weights in float64, which are exact, so both agree bit for
bit. :func:`first_spike_conv_winners` also picks each image's learning winners,
:func:`first_spike_training_step_` runs a whole training step; :mod:`.fires` answers only
which neurons fire at all (inference).
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning import STDPConfig, WTAMode
from ..learning._checks import check_enum, check_float, check_int, check_spike_times, check_tensor
from ..learning.convergence import channel_convergence
from ..learning.timing import conv_output_size
from ._conv_native import event_training_step_, run_event_kernel, winner_mask_of
from ._cupy_ops import MAX_CONV_STEPS, launch_first_spike_conv
from .dispatch import resolve_backend
from ._native import NEVER
from .stdp import fused_winner_update
from .winners import select_winners

__all__ = [
    "dense_first_spike_conv",
    "first_spike_conv",
    "first_spike_conv_pointwise",
    "first_spike_conv_winners",
    "first_spike_training_step_",
]


def _backend(backend: str, in_times: Tensor, time_steps: int) -> str:
    """The implementation of the first-spike convolution for these inputs."""
    too_long = f"time_steps must be < {NEVER} for its uint8 spike codes, got {time_steps}"
    too_long_for_cuda = f"its kernel takes time_steps <= {MAX_CONV_STEPS}, got {time_steps}"
    return resolve_backend("first_spike_conv", backend, in_times.device,
                           {"native": too_long if time_steps >= NEVER else None,
                            "cupy": too_long_for_cuda if time_steps > MAX_CONV_STEPS else None})


def check_layer(in_times: Tensor, weight: Tensor, threshold: float, padding: int, time_steps: int,
                values: bool = True):
    """Validate a layer's inputs; returns ``(threshold, padding, time_steps, (H_out, W_out))``.
    ``values=False`` skips the checks that read tensor values (NaN or negative times,
    negative weights), which would synchronise a GPU."""
    check_tensor("in_times", in_times, 4, "[N, C_in, H, W]")
    if values:
        check_spike_times("in_times", in_times)
    check_tensor("weight", weight, 4, "[C_out, C_in, k, k]")
    if not weight.is_floating_point():
        raise TypeError(f"weight must be a floating tensor, got dtype {weight.dtype}")
    if weight.shape[1] != in_times.shape[1] or weight.shape[2] != weight.shape[3]:
        raise ValueError(
            f"weight must have shape [C_out, C_in={in_times.shape[1]}, k, k], got {tuple(weight.shape)}"
        )
    if values and bool((weight < 0).any()):
        raise ValueError("weight must be non-negative (first-spike layers need monotone potentials)")
    if weight.device != in_times.device:
        raise ValueError(f"weight on {weight.device} and in_times on {in_times.device} must share a device")
    threshold = check_float("threshold", threshold, minimum=0.0, strict_min=True)
    padding = check_int("padding", padding, minimum=0)
    time_steps = check_int("time_steps", time_steps, minimum=1)
    k = weight.shape[-1]
    out_h = conv_output_size(in_times.shape[2], k, 1, padding)
    out_w = conv_output_size(in_times.shape[3], k, 1, padding)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"in_times spatial size {tuple(in_times.shape[2:])} is too small for a {k}x{k} kernel "
            f"with padding {padding}"
        )
    return threshold, padding, time_steps, (out_h, out_w)


def _checked_layer(backend: str, in_times: Tensor, weight: Tensor, threshold: float, padding: int,
                   time_steps: int):
    """:func:`check_layer` and the implementation that runs; ``(threshold, padding,
    time_steps, out_size, chosen)``. The CuPy path is not value-checked (no host sync)."""
    threshold, padding, time_steps, out_size = check_layer(in_times, weight, threshold, padding, time_steps, False)
    chosen = _backend(backend, in_times, time_steps)
    if chosen != "cupy":
        check_layer(in_times, weight, threshold, padding, time_steps)
    return threshold, padding, time_steps, out_size, chosen


def dense_first_spike_conv(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    chunk: int = 64,
) -> Tuple[Tensor, Tensor]:
    """First-spike times by a float64 convolution of the cumulative input at every step.

    Parameters
    ----------
    in_times : Tensor
        ``[N, C_in, H, W]`` input first-spike times (``inf`` = never).
    weight : Tensor
        ``[C_out, C_in, k, k]`` non-negative weights (stride 1).
    threshold : float
        Firing threshold (``potential >= threshold`` fires).
    padding : int
        Zero padding of the convolution.
    time_steps : int
        Number of steps ``T``; inputs at ``t >= T`` never arrive.
    chunk : int
        Images per convolution call (memory bound).

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]`` first-spike steps, ``inf`` for silent neurons.
    potentials : Tensor
        Float64, the potential at the first spike (0 for silent neurons).
    """
    threshold, padding, time_steps, (out_h, out_w) = check_layer(in_times, weight, threshold, padding, time_steps)
    w64 = weight.to(torch.float64)
    steps = torch.arange(time_steps, device=in_times.device, dtype=in_times.dtype).view(-1, 1, 1, 1, 1)
    times_out, pots_out = [], []
    for part in in_times.split(max(1, chunk)):
        waves = (part[None] <= steps).to(torch.float64)  # [T, n, C, H, W]
        pot = F.conv2d(waves.flatten(0, 1), w64, padding=padding)
        pot = pot.view(time_steps, part.shape[0], weight.shape[0], out_h, out_w)
        fired = pot >= threshold
        first = fired.to(torch.uint8).argmax(dim=0, keepdim=True)
        ever = fired.any(dim=0)
        times_out.append(torch.where(ever, first[0].to(torch.float32), math.inf))
        pots_out.append(torch.where(ever, pot.gather(0, first)[0], 0.0))
    return torch.cat(times_out), torch.cat(pots_out)


def _dense_or_cupy(chosen: str, in_times: Tensor, weight: Tensor, threshold: float, padding: int,
                   time_steps: int) -> Tuple[Tensor, Tensor]:
    """Times and potentials of a layer on the torch (``chosen="torch"``) or the CuPy path."""
    layer = launch_first_spike_conv if chosen == "cupy" else dense_first_spike_conv
    return layer(in_times, weight, threshold, padding, time_steps)


def first_spike_conv(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    backend: str = "auto",
    potentials: bool = True,
    memory_format: torch.memory_format = torch.contiguous_format,
) -> Tuple[Tensor, Optional[Tensor]]:
    """First-spike times and potentials of a layer of at-most-once IF neurons.

    Parameters
    ----------
    in_times, weight, threshold, padding, time_steps
        See :func:`dense_first_spike_conv`.
    backend : {"auto", "torch", "native"}
        ``"native"``: the event-driven CPU kernel; ``"torch"``: a convolution per time
        step; ``"auto"``: native on the CPU when the library is available, else torch.
    potentials : bool
        ``False`` returns ``None`` instead of the potentials (the kernel then skips them).
    memory_format : torch.memory_format
        Layout of the results; ``torch.channels_last`` is the event-driven kernel's own.

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]``, ``inf`` = silent.
    potentials : Tensor or None
        Float64 potential at the first spike, 0 for silent neurons.
    """
    threshold, padding, time_steps, out_size, chosen = _checked_layer(backend, in_times, weight, threshold, padding,
                                                                      time_steps)
    if chosen == "native":
        times, pots, *_ = run_event_kernel(in_times, weight, threshold, padding, time_steps, out_size, potentials,
                                           False, None)
        times = times.contiguous(memory_format=memory_format)
        return times, pots.contiguous(memory_format=memory_format) if potentials else None
    times, pots = _dense_or_cupy(chosen, in_times, weight, threshold, padding, time_steps)
    times = times.contiguous(memory_format=memory_format)
    return times, pots.contiguous(memory_format=memory_format) if potentials else None


def first_spike_conv_pointwise(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int = 0,
    time_steps: int = 15,
    backend: str = "auto",
) -> Tuple[Tensor, Tensor, Tensor]:
    """:func:`first_spike_conv` plus the survivor of pointwise inhibition at each position.

    The survivor is the channel of
    ``select_winners(times, potentials, WTAMode.LOCAL, 0)`` at that position: the earliest
    spike, ties to the highest potential, then the lowest channel. The event-driven
    kernel finds it while it writes the times, so callers get the learning candidates
    without another pass over the layer.

    Returns
    -------
    times, potentials : Tensor
        As :func:`first_spike_conv`.
    survivor : Tensor
        int64 ``[N, H_out, W_out]``, the surviving channel, ``-1`` where nothing fired.
    """
    threshold, padding, time_steps, out_size, chosen = _checked_layer(backend, in_times, weight, threshold, padding,
                                                                      time_steps)
    if chosen == "native":
        times, potentials, survivor, *_ = run_event_kernel(in_times, weight, threshold, padding, time_steps,
                                                           out_size, True, True, None)
        return times.contiguous(), potentials.contiguous(), survivor.to(torch.int64)
    times, potentials = _dense_or_cupy(chosen, in_times, weight, threshold, padding, time_steps)
    survivors = select_winners(times, potentials, WTAMode.LOCAL, 0, backend=chosen)
    survivor = torch.where(survivors.any(dim=1), survivors.to(torch.uint8).argmax(dim=1), -1)
    return times, potentials, survivor


def _winner_rule(mode: WTAMode, radius: int, k_winners: int) -> Tuple[WTAMode, int, int]:
    """Validated ``(mode, radius, k_winners)`` of a learning-winner rule."""
    return (check_enum("mode", mode, WTAMode), check_int("radius", radius, minimum=0),
            check_int("k_winners", k_winners, minimum=1))


def first_spike_conv_winners(
    in_times: Tensor,
    weight: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    mode: WTAMode,
    radius: int,
    k_winners: int,
    backend: str = "auto",
) -> Tuple[Tensor, Tensor]:
    """First-spike times and the learning winners of a layer.

    The winners are :func:`~stdp_plugins.backends.select_winners` with ``pointwise=True``
    (pointwise inhibition, then ``mode``, ``radius`` and ``k_winners`` among the
    survivors). The native kernel walks the survivors of each image itself as it
    finishes it (same order and blocking rule), so no potentials leave the kernel.

    Returns
    -------
    times : Tensor
        Float32 ``[N, C_out, H_out, W_out]``, ``inf`` = silent.
    winners : Tensor
        Bool mask shaped like ``times``.

    Notes
    -----
    On the native path ``times`` is a channels-last view (the kernel's layout).
    """
    threshold, padding, time_steps, out_size, chosen = _checked_layer(backend, in_times, weight, threshold, padding,
                                                                      time_steps)
    rule = _winner_rule(mode, radius, k_winners)
    if chosen != "native":
        times, potentials = _dense_or_cupy(chosen, in_times, weight, threshold, padding, time_steps)
        return times, select_winners(times, potentials, *rule, pointwise=True, backend=chosen)
    times, _, _, flat, _ = run_event_kernel(in_times, weight, threshold, padding, time_steps, out_size, False,
                                            False, rule)
    return times, winner_mask_of(flat, times.shape)


def first_spike_training_step_(
    weight: Tensor,
    in_times: Tensor,
    threshold: float,
    padding: int,
    time_steps: int,
    mode: WTAMode,
    radius: int,
    k_winners: int,
    config: STDPConfig,
    lr_plus: float,
    lr_minus: float,
    reduction: str = "sequential",
    backend: str = "auto",
) -> Tensor:
    """One unsupervised training step of a first-spike layer, in place.

    :func:`first_spike_conv_winners` followed by
    :func:`~stdp_plugins.backends.fused_winner_update` with ``reduction``, through the
    same ``backend``. On the native path with the sequential reduction the whole step runs
    in the C library without writing the layer's times (the same weights, bit for bit).

    Returns
    -------
    Tensor
        float32 ``[C_out]`` per-channel convergence of the updated weights.
    """
    threshold, padding, time_steps, out_size, chosen = _checked_layer(backend, in_times, weight, threshold, padding,
                                                                      time_steps)
    rule = _winner_rule(mode, radius, k_winners)
    whole_step_in_c = (chosen == "native" and reduction == "sequential" and weight.dtype == torch.float32
                       and weight.is_contiguous())
    if not whole_step_in_c:
        times, winners = first_spike_conv_winners(in_times, weight, threshold, padding, time_steps, *rule, chosen)
        return fused_winner_update(weight, in_times, times, winners, config, lr_plus, lr_minus, 1, padding,
                                   backend=chosen, reduction=reduction)
    lr_plus = check_float("lr_plus", lr_plus, minimum=0.0)
    lr_minus = check_float("lr_minus", lr_minus, minimum=0.0)
    with torch.no_grad():
        event_training_step_(weight.detach(), in_times, threshold, padding, time_steps, out_size, rule, lr_plus,
                             lr_minus, config)
    return channel_convergence(weight.detach(), config.weight_min, config.weight_max)
