"""Dispatched operation: the paper's fire-once IF neurons over a window, and each unit's
first spike (docs/spec.md, 'The paper's neuron'). The torch implementations are the core's
:func:`stdp_plugins.fire_once` and :func:`stdp_plugins.first_spike_only`; the native ones
run the same float32 steps in one pass of C over the window (bit for bit the same)."""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning import fire_once_if as core
from ..learning._checks import check_same_device
from ._native import native_library
from ._threads import parallel_ranges
from .dispatch import resolve_backend

__all__ = ["fire_once", "first_spike_only"]


def _state(value: Optional[Tensor], like: Tensor, dtype: torch.dtype) -> Tensor:
    """A fresh contiguous copy of a per-step state (zeros when ``None``), flattened."""
    if value is None:
        return torch.zeros(like.shape[1:].numel(), dtype=dtype)
    return value.detach().to(dtype).reshape(-1).clone()


def _columns(m: int, run) -> None:
    """Run ``run(lo, hi)`` on ranges of the ``m`` neurons, on the worker threads."""
    if m:
        parallel_ranges(m, lambda lo, hi: run(lo, hi) if hi > lo else 0)


@torch.no_grad()
def fire_once(
    currents: Tensor,
    threshold: Union[float, Tensor],
    v: Optional[Tensor] = None,
    fired: Optional[Tensor] = None,
    *,
    return_v_seq: bool = False,
    backend: str = "auto",
) -> Tuple[Tensor, ...]:
    """:func:`stdp_plugins.fire_once` through the dispatcher: native for float32 CPU
    currents with a float threshold, torch otherwise.

    Parameters
    ----------
    currents, threshold, v, fired, return_v_seq
        As :func:`stdp_plugins.fire_once`.
    backend : {"auto", "torch", "native"}
        Implementation (see :func:`~stdp_plugins.backends.resolve_backend`).

    Returns
    -------
    tuple of Tensor
        ``(spikes, v_last, fired_last)`` and ``v_seq`` when ``return_v_seq``.
    """
    core._check_sequence("currents", currents)
    if isinstance(threshold, Tensor) and threshold.numel() == 1 and threshold.device.type == "cpu":
        threshold = float(threshold)  # e.g. snnTorch's threshold buffer: one value for every neuron
    unsupported = None
    if currents.dtype != torch.float32:
        unsupported = f"it needs float32 currents, got {currents.dtype}"
    elif isinstance(threshold, Tensor):
        unsupported = "it takes a float threshold, not a tensor of per-neuron thresholds"
    if resolve_backend("fire_once", backend, currents.device, {"native": unsupported}) == "torch":
        return core.fire_once(currents, threshold, v, fired, return_v_seq=return_v_seq)
    threshold = core._check_threshold(threshold, currents)
    core._check_state("v", v, currents, boolean=False)
    core._check_state("fired", fired, currents, boolean=True)
    check_same_device(currents=currents, v=v, fired=fired)
    library = native_library()
    steps, shape = currents.shape[0], currents.shape[1:]
    m = shape.numel()
    flat = currents.detach().reshape(steps, m).contiguous()
    v_last, fired_last = _state(v, currents, torch.float32), _state(fired, currents, torch.bool)
    spikes = torch.empty_like(flat)
    v_seq = torch.empty_like(flat) if return_v_seq else None

    def run(lo: int, hi: int) -> int:
        library.fire_once(steps, hi - lo, m, flat.data_ptr() + 4 * lo, threshold, v_last.data_ptr() + 4 * lo,
                          fired_last.data_ptr() + lo, spikes.data_ptr() + 4 * lo,
                          None if v_seq is None else v_seq.data_ptr() + 4 * lo)
        return 0

    _columns(m, run)
    out = (spikes.view(currents.shape), v_last.view(shape), fired_last.view(shape))
    return (*out, v_seq.view(currents.shape)) if return_v_seq else out


@torch.no_grad()
def first_spike_only(spikes: Tensor, fired: Optional[Tensor] = None, *, backend: str = "auto") -> Tuple[Tensor, Tensor]:
    """:func:`stdp_plugins.first_spike_only` through the dispatcher: native for float32
    CPU spikes, torch otherwise. Returns ``(spikes, fired_last)``."""
    core._check_sequence("spikes", spikes)
    unsupported = None if spikes.dtype == torch.float32 else f"it needs float32 spikes, got {spikes.dtype}"
    if resolve_backend("first_spike_only", backend, spikes.device, {"native": unsupported}) == "torch":
        return core.first_spike_only(spikes, fired)
    core._check_state("fired", fired, spikes, boolean=True)
    check_same_device(spikes=spikes, fired=fired)
    library = native_library()
    steps, shape = spikes.shape[0], spikes.shape[1:]
    m = shape.numel()
    flat = spikes.detach().reshape(steps, m).contiguous()
    fired_last = _state(fired, spikes, torch.bool)
    out = torch.empty_like(flat)

    def run(lo: int, hi: int) -> int:
        library.first_spike_only(steps, hi - lo, m, flat.data_ptr() + 4 * lo, fired_last.data_ptr() + lo,
                                 out.data_ptr() + 4 * lo)
        return 0

    _columns(m, run)
    return out.view(spikes.shape), fired_last.view(shape)
