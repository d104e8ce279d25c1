"""Pooling and padding of first-spike maps, the glue between the reference network's layers.

Max-pooling of cumulative spike waves is a min-pool of first-spike times; a padded border
never fires.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning._checks import check_int, check_tensor
from ..learning.timing import conv_output_size

__all__ = ["min_pool_times", "max_pool_binary", "pad_times"]


def min_pool_times(times: Tensor, kernel_size: int, stride: int, padding: int = 0) -> Tensor:
    """Max-pooling of cumulative spike waves expressed on first-spike times (a min-pool).

    Padding counts as "never fired". Equals ``-F.max_pool2d(-times, kernel_size, stride,
    padding)``; non-overlapping windows (``kernel_size == stride``) are reduced with
    strided minima instead (no negated copies, the memory format kept).
    """
    check_tensor("times", times, 4, "[N, C, H, W]")
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    if kernel_size != stride:
        return -F.max_pool2d(-times, kernel_size, stride, padding)
    return _reduce_windows("times", times, kernel_size, padding, math.inf, torch.minimum)


def max_pool_binary(fired: Tensor, kernel_size: int, stride: int, padding: int = 0) -> Tensor:
    """Max-pooling of a binary spike map (bool or 0/1 ``[N, C, H, W]``) as a bool map.

    Equals ``F.max_pool2d(fired.float(), kernel_size, stride, padding) > 0`` (padding never
    fires). Non-overlapping windows (``kernel_size == stride``) are reduced with a reshape
    on bytes instead of a float pooling.
    """
    check_tensor("fired", fired, 4, "[N, C, H, W]")
    kernel_size = check_int("kernel_size", kernel_size, minimum=1)
    stride = check_int("stride", stride, minimum=1)
    padding = check_int("padding", padding, minimum=0)
    if kernel_size != stride:
        return F.max_pool2d(fired.to(torch.float32), kernel_size, stride, padding) > 0
    return _reduce_windows("fired", fired.to(torch.uint8), kernel_size, padding, 0, torch.bitwise_or).bool()


def _reduce_windows(name: str, x: Tensor, kernel_size: int, padding: int, fill: float,
                    combine: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """Pooling with non-overlapping ``kernel_size`` windows (stride ``kernel_size``) that
    start at ``-padding``: ``combine`` of the strided slices, the border ``fill``."""
    height, width = x.shape[2:]
    out_h = conv_output_size(height, kernel_size, kernel_size, padding)
    out_w = conv_output_size(width, kernel_size, kernel_size, padding)
    if min(out_h, out_w) < 1:
        raise ValueError(
            f"{name} of spatial size {height}x{width} is smaller than a {kernel_size}x{kernel_size} "
            f"pooling window with padding {padding}"
        )
    # windows start at -padding; pad (or crop) the far side to exactly out * kernel_size
    framed = F.pad(x, (padding, out_w * kernel_size - width - padding,
                       padding, out_h * kernel_size - height - padding), value=fill)
    rows = framed[:, :, 0::kernel_size]
    for offset in range(1, kernel_size):
        rows = combine(rows, framed[:, :, offset::kernel_size])
    pooled = rows[..., 0::kernel_size]
    for offset in range(1, kernel_size):
        pooled = combine(pooled, rows[..., offset::kernel_size])
    return pooled


def pad_times(times: Tensor, padding: int) -> Tensor:
    """Zero-pad spike waves spatially: the border never fires (``inf`` times)."""
    check_tensor("times", times, 4, "[N, C, H, W]")
    padding = check_int("padding", padding, minimum=0)
    return F.pad(times, (padding,) * 4, value=math.inf)
