"""Dispatched operation: first-spike times of a recorded time window (docs/spec.md,
'First spike times'), with the value of a per-step signal at each neuron's first spike
(the membrane potential that breaks ties between simultaneous spikes)."""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from ..learning._checks import check_same_device, check_tensor
from ..learning.timing import get_first_spike_times
from .dispatch import resolve_backend
from ._cupy_ops import launch_first_spike_times
from ._native import native_library
from ._threads import parallel_ranges

__all__ = ["first_spike_times"]


def _check(spikes: Tensor, values: Optional[Tensor]) -> None:
    check_tensor("spikes", spikes)
    if spikes.dim() == 0:
        raise ValueError("spikes must have a time dimension [T, ...], got a 0-D tensor")
    if values is None:
        return
    check_tensor("values", values)
    if values.shape != spikes.shape:
        raise ValueError(f"values must have the shape of spikes {tuple(spikes.shape)}, got {tuple(values.shape)}")
    if not values.is_floating_point():
        raise TypeError(f"values must be a floating tensor, got dtype {values.dtype}")
    check_same_device(spikes=spikes, values=values)


def _torch(spikes: Tensor, values: Optional[Tensor], cumulative: bool) -> Tuple[Tensor, Optional[Tensor]]:
    times = get_first_spike_times(spikes != 0).to(torch.float32)
    if values is None:
        return times, None
    values = values.to(torch.float32)
    if cumulative:
        values = values.cumsum(0)
    fired = torch.isfinite(times)
    step = torch.where(fired, times, 0.0).to(torch.int64)
    value = values.gather(0, step[None])[0] if spikes.shape[0] else torch.zeros_like(times)
    return times, torch.where(fired, value, 0.0)


def _native(spikes: Tensor, values: Optional[Tensor], cumulative: bool) -> Tuple[Tensor, Optional[Tensor]]:
    library = native_library()
    steps, m = spikes.shape[0], spikes.shape[1:].numel()
    flat = spikes.detach().reshape(steps, m)
    flat = flat.contiguous().view(torch.uint8) if flat.dtype == torch.bool else (flat != 0).view(torch.uint8)
    if values is not None:
        values = values.detach().to(torch.float32).reshape(steps, m).contiguous()
    times = torch.empty(m, dtype=torch.float32)
    value = torch.empty(m, dtype=torch.float32) if values is not None else None

    def run(lo: int, hi: int) -> int:
        if hi > lo:
            library.first_spike(
                steps, hi - lo, m, flat.data_ptr() + lo, None if values is None else values.data_ptr() + 4 * lo,
                int(cumulative), times.data_ptr() + 4 * lo, None if value is None else value.data_ptr() + 4 * lo,
            )
        return 0

    if steps:
        parallel_ranges(m, run)
    else:
        times.fill_(float("inf"))
        if value is not None:
            value.zero_()
    shape = spikes.shape[1:]
    return times.view(shape), None if value is None else value.view(shape)


def first_spike_times(
    spikes: Tensor,
    values: Optional[Tensor] = None,
    *,
    cumulative: bool = False,
    backend: str = "auto",
) -> Tuple[Tensor, Optional[Tensor]]:
    """First-spike step of every neuron of a time-major window.

    Parameters
    ----------
    spikes : Tensor
        ``[T, ...]`` spikes of any dtype; a non-zero entry is a spike.
    values : Tensor, optional
        ``[T, ...]`` floating per-step signal read at each neuron's first spike: the
        membrane potential, or, with ``cumulative``, the neuron's input (its running sum
        is the membrane of a non-leaky neuron before its first spike).
    cumulative : bool
        Sum ``values`` up to and including the first-spike step (rounded like torch's
        ``cumsum``) instead of reading that step alone.
    backend : {"auto", "torch", "native", "cupy"}
        Implementation (see :func:`~stdp_plugins.backends.resolve_backend`).

    Returns
    -------
    times : Tensor
        float32 ``[...]``, the first step with a spike, ``inf`` where there is none.
    value : Tensor or None
        float32 ``[...]`` value at that step (0 for silent neurons), ``None`` without
        ``values``.
    """
    _check(spikes, values)
    if not isinstance(cumulative, bool):
        raise TypeError(f"cumulative must be a bool, got {type(cumulative).__name__}")
    chosen = resolve_backend("first_spike_times", backend, spikes.device)
    if chosen == "native":
        return _native(spikes, values, cumulative)
    if chosen == "cupy":
        return launch_first_spike_times(spikes, values, cumulative)
    return _torch(spikes, values, cumulative)
