"""Dispatched operation: the training input of a layer from the first-spike times of the
layer below, as in SpykeTorch's replication of Kheradpisheh et al. (2018): max-pooling of
the spike waves (a min-pool of first-spike times), zero padding, then pointwise
inhibition (docs/spec.md, 'Winner-take-all': at each position only the earliest channel,
ties to the lowest channel, passes)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning import WTAMode
from ..learning import select_winners as _core_select_winners
from ..learning._checks import check_int, check_spike_times, check_tensor
from ..learning.timing import conv_output_size
from ._conv_native import run_pooled_survivors
from .dispatch import resolve_backend

__all__ = ["pooled_survivors"]


def pooled_survivors(times: Tensor, kernel_size: int, stride: int, padding: int, border: int,
                     backend: str = "auto") -> Tensor:
    """Min-pool ``times``, pad ``border`` never-firing positions and keep at each position
    only the earliest channel (ties to the lowest).

    Parameters
    ----------
    times : Tensor
        ``[N, C, H, W]`` first-spike times (``inf`` = silent), e.g. a layer's output.
    kernel_size, stride, padding : int
        The max-pooling of the spike waves (padding never fires).
    border : int
        Zero padding after the pooling.
    backend : {"auto", "torch", "native"}
        ``"native"`` (CPU, non-overlapping windows ``kernel_size == stride``): one pass of
        the C library over the channel-last times, the pooled maps never stored;
        ``"torch"``: ``max_pool2d``, ``pad`` and the core's ``select_winners(times, None,
        WTAMode.LOCAL, 0)``, the reference.

    Returns
    -------
    Tensor
        Float32 ``[N, C, H_pool + 2 border, W_pool + 2 border]``, contiguous.
    """
    check_tensor("times", times, 4, "[N, C, H, W]")
    check_spike_times("times", times)
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    border = check_int("border", border, minimum=0)
    out_h = conv_output_size(times.shape[2], kernel_size, stride, padding)
    out_w = conv_output_size(times.shape[3], kernel_size, stride, padding)
    if min(out_h, out_w) < 1 or 2 * padding > kernel_size:
        raise ValueError(f"times of spatial size {tuple(times.shape[2:])} cannot be pooled by {kernel_size}x"
                         f"{kernel_size} windows with padding {padding} (at most half a window)")
    overlapping = None if kernel_size == stride else "overlapping pooling windows (kernel_size != stride)"
    chosen = resolve_backend("pooled_survivors", backend, times.device, {"native": overlapping})
    if chosen == "native":
        return run_pooled_survivors(times.to(torch.float32), kernel_size, padding, (out_h, out_w), border)
    pooled = F.pad(-F.max_pool2d(-times.to(torch.float32), kernel_size, stride, padding), (border,) * 4,
                   value=math.inf)
    survivors = _core_select_winners(pooled, None, WTAMode.LOCAL, 0)
    return torch.where(survivors, pooled, math.inf).contiguous()
