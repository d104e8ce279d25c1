"""First-spike times and receptive-field geometry.

Spike times are float tensors counted in time steps; ``inf`` means the neuron never fired.
"""

from __future__ import annotations

import math
import numbers
from typing import Tuple

import torch
from torch import Tensor

from ._checks import check_binary, check_int, check_spike_times, check_tensor

__all__ = [
    "get_first_spike_times",
    "extract_receptive_field_times",
    "gather_receptive_field_times",
    "conv_output_size",
]


def get_first_spike_times(spikes: Tensor, no_spike_value: float = float("inf")) -> Tensor:
    """Reduce the time dimension (dim 0) to the index of each neuron's first spike.

    Parameters
    ----------
    spikes : Tensor
        Binary spikes ``[T, ...]`` (time-major, SpikingJelly's multi-step layout).
    no_spike_value : float
        Value for neurons that never fired (default ``inf``).

    Returns
    -------
    Tensor
        Float tensor ``[...]`` of first-spike steps.
    """
    return _first_spike_times("spikes", spikes, no_spike_value)


def _first_spike_times(name: str, spikes: Tensor, no_spike_value: float = float("inf")) -> Tensor:
    """:func:`get_first_spike_times` whose messages call the spikes ``name`` (the caller's
    parameter)."""
    check_tensor(name, spikes)
    if spikes.dim() == 0:
        raise ValueError(f"{name} must have a time dimension [T, ...], got a 0-D tensor")
    if isinstance(no_spike_value, bool) or not isinstance(no_spike_value, numbers.Real):
        raise TypeError(f"no_spike_value must be a real number, got {type(no_spike_value).__name__} {no_spike_value!r}")
    if math.isnan(no_spike_value):
        raise ValueError("no_spike_value must not be NaN (use inf, the default, for 'never fired'), got nan")
    check_binary(name, spikes)
    dtype = spikes.dtype if spikes.is_floating_point() else torch.float32
    fired = spikes != 0
    if spikes.shape[0] == 0:
        return torch.full(spikes.shape[1:], no_spike_value, dtype=dtype, device=spikes.device)
    first = fired.to(torch.uint8).argmax(dim=0).to(dtype)
    return torch.where(fired.any(dim=0), first, torch.full_like(first, no_spike_value))


def conv_output_size(size: int, kernel_size: int, stride: int = 1, padding: int = 0) -> int:
    """Output length of a convolution along one axis: ``(size + 2p - k) // s + 1``."""
    return (size + 2 * padding - kernel_size) // stride + 1


def _check_geometry(kernel_size: int, stride: int, padding: int) -> tuple[int, int, int]:
    return (
        check_int("kernel_size", kernel_size, minimum=1),
        check_int("stride", stride, minimum=1),
        check_int("padding", padding, minimum=0),
    )


def gather_receptive_field_times(
    pre_spike_times: Tensor,
    sample_idx: Tensor,
    y: Tensor,
    x: Tensor,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """Gather the pre-synaptic spike times seen by a list of output neurons.

    The receptive field of output ``(y, x)`` covers input rows
    ``y * stride - padding`` to ``y * stride - padding + kernel_size - 1`` (and the same
    for columns), top-left anchored like a convolution. Positions outside the input read
    as ``inf`` (no spike).

    Parameters
    ----------
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` first-spike times of the input.
    sample_idx, y, x : Tensor
        Long tensors ``[W]``: sample, output row and output column of each neuron.
    kernel_size, stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    Tensor
        ``[W, C_in, kernel_size, kernel_size]``.
    """
    n, c_in, height, width = pre_spike_times.shape
    offsets = torch.arange(kernel_size, device=pre_spike_times.device)
    rows = y[:, None] * stride - padding + offsets  # [W, k]
    cols = x[:, None] * stride - padding + offsets
    row_ok = (rows >= 0) & (rows < height)
    col_ok = (cols >= 0) & (cols < width)
    channels = torch.arange(c_in, device=pre_spike_times.device)
    field = pre_spike_times[
        sample_idx[:, None, None, None],
        channels[None, :, None, None],
        rows.clamp(0, height - 1)[:, None, :, None],
        cols.clamp(0, width - 1)[:, None, None, :],
    ]
    inside = (row_ok[:, :, None] & col_ok[:, None, :])[:, None]
    return field.masked_fill(~inside, float("inf"))


def extract_receptive_field_times(
    pre_spike_times: Tensor,
    post_y: int,
    post_x: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """Pre-synaptic spike times in the receptive field of one output neuron.

    Parameters
    ----------
    pre_spike_times : Tensor
        ``[C_in, H, W]`` first-spike times of the input (``inf`` = never fired).
    post_y, post_x : int
        Output position; must lie inside the convolution's output map.
    kernel_size, stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    Tensor
        ``[C_in, kernel_size, kernel_size]``, ``inf`` outside the input.
    """
    return _receptive_field_times(pre_spike_times, post_y, post_x, kernel_size, stride, padding)


def _receptive_field_times(
    pre_spike_times: Tensor,
    y: int,
    x: int,
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
    names: Tuple[str, str] = ("post_y", "post_x"),
) -> Tensor:
    """:func:`extract_receptive_field_times` whose messages call the output position
    ``names`` (the caller's parameters, e.g. ``("winner_y", "winner_x")``)."""
    check_tensor("pre_spike_times", pre_spike_times, 3, "[C_in, H, W]")
    kernel_size, stride, padding = _check_geometry(kernel_size, stride, padding)
    check_spike_times("pre_spike_times", pre_spike_times)
    _, height, width = pre_spike_times.shape
    out_shape = (conv_output_size(height, kernel_size, stride, padding),
                 conv_output_size(width, kernel_size, stride, padding))
    if min(out_shape) < 1:
        raise ValueError(
            f"kernel_size must fit the padded input {height + 2 * padding}x{width + 2 * padding} "
            f"(pre_spike_times {height}x{width}, padding {padding}), got {kernel_size}"
        )
    y, x = (check_int(name, value, minimum=0) for name, value in zip(names, (y, x)))
    if y >= out_shape[0] or x >= out_shape[1]:
        raise ValueError(
            f"({names[0]}, {names[1]}) must lie in the output map of shape {out_shape} (a {kernel_size}x{kernel_size} "
            f"convolution with stride {stride}, padding {padding} over {height}x{width}), got ({y}, {x})"
        )
    index = torch.tensor([y], device=pre_spike_times.device)
    zero = torch.zeros(1, dtype=torch.long, device=pre_spike_times.device)
    return gather_receptive_field_times(
        pre_spike_times[None], zero, index, torch.tensor([x], device=index.device),
        kernel_size, stride, padding,
    )[0]
