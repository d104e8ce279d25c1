"""Launchers of the CUDA kernels of the learning step, the ``cupy`` backends of the
sequential STDP update, the winner selection, the first spikes of a window and the
first-spike convolution.

Each takes torch tensors (validated by its dispatcher), allocates the outputs and the
workspace with torch on the inputs' device and runs one kernel through
:func:`._cuda_kernels.launch`: CuPy on CUDA tensors, on torch's current stream and without
synchronising (no ``.item()``, no data-dependent shapes), or the host build of the same
source on CPU tensors, which is how the tests check the kernels without a GPU. Because
nothing is read back, the CuPy backends do not check tensor values (NaN or negative times,
negative weights); the torch and native paths do.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning._checks import check_same_device, check_tensor
from ..learning.convergence import channel_convergence
from ..learning.stdp import STDPConfig, STDPVariant
from ._cuda_kernels import KERNELS, launch
from ._cupy import geometry_arguments, rate_arguments, stdp_arrays

__all__ = [
    "MAX_CONV_STEPS",
    "check_winner_inputs",
    "launch_first_spike_conv",
    "launch_first_spike_times",
    "launch_select_winners",
    "launch_sequential_update",
]

MAX_CONV_STEPS = 64
"""Most time steps of the first-spike convolution kernel (its per-neuron step buckets)."""

SEQUENTIAL_THREADS = 128
"""Block size of the sequential update: one block per output channel."""

WALK_THREADS = 256
"""Largest block size of the winner walk (a power of two; ``WALK_THREADS`` in the kernel)."""

ELEMENTWISE_THREADS = 128
"""Block size of the one-thread-per-neuron kernels."""

_MAX_BLOCKS = 65535  # grid-stride kernels need no more

LearningRate = Union[float, Tensor]


def _blocks(items: int, threads: int) -> int:
    return max(1, min(_MAX_BLOCKS, math.ceil(items / threads)))


def launch_sequential_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    config: STDPConfig,
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    stride: int,
    padding: int,
) -> Tensor:
    """The sequential STDP update (``cuda/sequential_stdp.cu``) of float32 weights, in place.

    Arguments as :func:`._cupy.launch_fused_update`. Returns the float32 ``[C_out]``
    per-channel convergence of the updated weights.
    """
    c_out, c_in, kernel_size, _ = weights.shape
    target = weights.detach()
    work = target if target.is_contiguous() else target.contiguous()
    rates = rate_arguments(lr_plus, lr_minus, weights.device)
    arrays = stdp_arrays(weights, pre_spike_times, post_spike_times, winner_mask, rates.pop("learning_rates"))
    workspace = torch.zeros(c_out * c_in * kernel_size * kernel_size, dtype=torch.int32, device=weights.device)
    geometry = geometry_arguments(tuple(weights.shape), tuple(arrays["pre_times"].shape),
                                  tuple(arrays["post_times"].shape), stride, padding)
    launch(KERNELS["sequential_stdp_update"], (c_out,), (SEQUENTIAL_THREADS,), {
        **arrays, **rates, **geometry, "weights": work, "workspace": workspace, "use_mask": winner_mask is not None,
        "weight_min": config.weight_min, "weight_max": config.weight_max,
        "multiplicative": config.variant is STDPVariant.MULTIPLICATIVE,
    })
    if work is not target:
        target.copy_(work)
    return channel_convergence(target, config.weight_min, config.weight_max)


def check_winner_inputs(spike_times: Tensor, potentials: Optional[Tensor]) -> None:
    """The structural checks of the winner selection's tensors (shapes, dtypes, devices);
    reads no values, so it never synchronises."""
    check_tensor("spike_times", spike_times, 4, "[N, C, H, W]")
    if not spike_times.is_floating_point():
        raise TypeError(f"spike_times must be a floating tensor of spike times, got dtype {spike_times.dtype}")
    if potentials is None:
        return
    check_tensor("potentials", potentials, 4, "[N, C, H, W]")
    if potentials.shape != spike_times.shape:
        raise ValueError(
            f"potentials must have the shape of spike_times {tuple(spike_times.shape)}, got {tuple(potentials.shape)}"
        )
    check_same_device(spike_times=spike_times, potentials=potentials)


def launch_select_winners(spike_times: Tensor, potentials: Optional[Tensor], mode_bits: int, radius: int,
                          k_winners: Optional[int], pointwise: bool) -> Tensor:
    """The greedy winner-take-all walk (``cuda/select_winners.cu``), one block per image.

    Parameters
    ----------
    spike_times, potentials : Tensor
        ``[N, C, H, W]`` times (cast to float32) and tie-breaking potentials (float64) or ``None``.
    mode_bits : int
        Bit 1 blocks the winner's channel, bit 2 its neighbourhood (``_native.wta_mode_bits``).
    radius, k_winners, pointwise
        As :func:`~stdp_plugins.backends.select_winners`.

    Returns
    -------
    Tensor
        Bool winner mask ``[N, C, H, W]``.
    """
    n, channels, height, width = spike_times.shape
    device = spike_times.device
    mask = torch.zeros(spike_times.shape, dtype=torch.uint8, device=device)
    if mask.numel() == 0:
        return mask.view(torch.bool)
    times = spike_times.detach().to(torch.float32).contiguous()
    pot = times if potentials is None else potentials.detach().to(torch.float64).contiguous()
    positions = height * width
    candidates = positions if pointwise else channels * positions
    threads = min(WALK_THREADS, max(32, 1 << (candidates - 1).bit_length()))
    workspace = torch.empty(n * (2 * positions + channels), dtype=torch.int32, device=device)
    launch(KERNELS["select_winners_walk"], (n,), (threads,), {
        "winner_mask": mask, "workspace": workspace, "times": times, "potentials": pot,
        "use_potentials": potentials is not None, "pointwise": pointwise, "mode": mode_bits, "radius": radius,
        "k_winners": k_winners or 0, "channels": channels, "height": height, "width": width,
    })
    return mask.view(torch.bool)


def launch_first_spike_times(spikes: Tensor, values: Optional[Tensor],
                             cumulative: bool) -> Tuple[Tensor, Optional[Tensor]]:
    """First spikes of a ``[T, ...]`` window and the value at each (``cuda/first_spike_times.cu``).

    Arguments and results as :func:`~stdp_plugins.backends.first_spike_times`.
    """
    steps, shape = spikes.shape[0], spikes.shape[1:]
    neurons = shape.numel()
    device = spikes.device
    flat = spikes.detach().reshape(steps, neurons)
    flat = flat.contiguous().view(torch.uint8) if flat.dtype == torch.bool else (flat != 0).view(torch.uint8)
    times = torch.empty(neurons, dtype=torch.float32, device=device)
    value = None if values is None else torch.empty(neurons, dtype=torch.float32, device=device)
    if neurons:
        rows = None if values is None else values.detach().to(torch.float32).reshape(steps, neurons).contiguous()
        launch(KERNELS["first_spike_times"], (_blocks(neurons, ELEMENTWISE_THREADS),), (ELEMENTWISE_THREADS,), {
            "times": times, "value": times if value is None else value, "spikes": flat,
            "values": times if rows is None else rows, "use_values": values is not None, "cumulative": cumulative,
            "steps": steps, "neurons": neurons,
        })
    return times.view(shape), None if value is None else value.view(shape)


def launch_first_spike_conv(in_times: Tensor, weight: Tensor, threshold: float, padding: int, time_steps: int,
                            potentials: bool = True) -> Tuple[Tensor, Optional[Tensor]]:
    """First-spike times (float32) and potentials (float64, ``None`` unless ``potentials``)
    of a layer of fire-once IF neurons (``cuda/first_spike_conv.cu``); arguments as
    :func:`~stdp_plugins.backends.dense_first_spike_conv` (validated by the caller,
    ``time_steps <= MAX_CONV_STEPS``)."""
    n, c_in, height, width = in_times.shape
    c_out, _, kernel_size, _ = weight.shape
    out_shape = (n, c_out, height + 2 * padding - kernel_size + 1, width + 2 * padding - kernel_size + 1)
    times = torch.empty(out_shape, dtype=torch.float32, device=in_times.device)
    pots = torch.empty(out_shape, dtype=torch.float64, device=in_times.device) if potentials else None
    if times.numel():
        launch(KERNELS["first_spike_conv"], (_blocks(times.numel(), ELEMENTWISE_THREADS),), (ELEMENTWISE_THREADS,), {
            "times_out": times, "potentials_out": times if pots is None else pots,
            "in_times": in_times.detach().to(torch.float32).contiguous(),
            "weight": weight.detach().to(torch.float64).contiguous(), "threshold": threshold,
            "use_potentials": potentials, "batch": n, "in_channels": c_in, "height": height, "width": width,
            "out_channels": c_out, "kernel_size": kernel_size, "padding": padding, "steps": time_steps,
        })
    return times, pots
