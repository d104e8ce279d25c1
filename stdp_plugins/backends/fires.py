"""Which neurons of a first-spike layer fire at all, for inference: the max over time of
a cumulative spike wave is its last step, so only the set of inputs that fired matters
(docs/spec.md, 'First-spike convolution')."""

from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning._checks import check_int, check_tensor
from ..learning._indexing import nonzero_indices
from ..learning.timing import conv_output_size
from ._conv_native import run_fires_kernel
from .conv import check_layer
from .dispatch import resolve_backend

__all__ = ["fires_at_all", "fires_given_inputs", "pooled_fires"]


def fires_at_all(
    in_times: Tensor, weight: Tensor, threshold: float, padding: int = 0, time_steps: int = 15, chunk: int = 256,
    backend: str = "auto",
) -> Tensor:
    """Bool ``[N, C_out, H_out, W_out]``: whether each neuron fires within ``time_steps``.

    This is the last step of the cumulative output wave (its maximum over time), which
    only depends on the set of inputs that fired, not on when (:func:`fires_given_inputs`).
    Equals the last step of :func:`dense_first_spike_conv`.
    """
    threshold, padding, time_steps, _ = check_layer(in_times, weight, threshold, padding, time_steps)
    return fires_given_inputs(in_times < time_steps, weight, threshold, padding, chunk, backend)


def fires_given_inputs(
    fired: Tensor, weight: Tensor, threshold: float, padding: int = 0, chunk: int = 256, backend: str = "auto"
) -> Tensor:
    """Bool ``[N, C_out, H_out, W_out]``: which neurons reach ``threshold`` once every input
    marked in ``fired`` (bool or 0/1 ``[N, C_in, H, W]``) has spiked.

    The decision is the one of exact float64 sums of the float32 weights. On the CPU the
    native kernel (float32 or narrower weights) computes them by gathering, for each
    output position, the active inputs of its window (work proportional to the active
    inputs; the sums stay in float32 registers, those within the rounding bound below of
    the threshold are summed again in float64, and only the answer is written). Elsewhere,
    with
    non-negative weights, a float32 convolution decides first: a float32 sum of ``m``
    non-negative terms is within ``(m - 1) u / (1 - (m - 1) u)`` of its value relative
    (``u = 2**-24``), so only neurons whose float32 potential lies that close to the
    threshold are summed again in float64 (one exact dot product each); negative
    weights use float64 throughout.
    """
    padding, negative, unsupported = _checked_fires(fired, weight, threshold, padding)
    weight = weight.detach()
    if resolve_backend("first_spike_conv", backend, fired.device, {"native": unsupported}) == "native":
        return run_fires_kernel(fired, weight, threshold, padding, _conv_size(fired, weight, padding))
    if negative:
        w64 = weight.to(torch.float64)
        return torch.cat([
            F.conv2d(part.to(torch.float64), w64, padding=padding) >= threshold
            for part in fired.split(max(1, chunk))
        ])
    return torch.cat([
        _fires_float32_checked(part, weight, threshold, padding) for part in fired.split(max(1, chunk))
    ])


def pooled_fires(
    fired: Tensor, weight: Tensor, threshold: float, padding: int, pool_kernel: int, pool_stride: int,
    pool_padding: int = 0, border: int = 0, backend: str = "auto",
) -> Tensor:
    """:func:`fires_given_inputs` max-pooled and zero-padded: the binary input of the next
    layer at inference.

    Parameters
    ----------
    fired, weight, threshold, padding
        As :func:`fires_given_inputs`.
    pool_kernel, pool_stride, pool_padding : int
        The max-pooling (padding never fires).
    border : int
        Zero padding (never fires) after the pooling.
    backend : {"auto", "torch", "native"}
        ``"native"`` (CPU, non-negative float32 weights, non-overlapping windows
        ``pool_kernel == pool_stride``): the gathering kernel of :func:`fires_given_inputs`
        writes the pooled, padded map directly, the layer's own map never stored;
        ``"torch"``: :func:`fires_given_inputs`, ``max_pool2d`` and ``pad``, the reference.

    Returns
    -------
    Tensor
        Bool ``[N, C_out, H_pool + 2 border, W_pool + 2 border]``.
    """
    padding, _, unsupported = _checked_fires(fired, weight, threshold, padding)
    pool_kernel = check_int("pool_kernel", pool_kernel, minimum=1)
    pool_stride = check_int("pool_stride", pool_stride, minimum=1)
    pool_padding = check_int("pool_padding", pool_padding, minimum=0)
    border = check_int("border", border, minimum=0)
    out_h, out_w = _conv_size(fired, weight, padding)
    pooled = (conv_output_size(out_h, pool_kernel, pool_stride, pool_padding),
              conv_output_size(out_w, pool_kernel, pool_stride, pool_padding))
    if min(pooled) < 1 or 2 * pool_padding > pool_kernel:
        raise ValueError(f"the layer's {out_h}x{out_w} map cannot be pooled by {pool_kernel}x{pool_kernel} windows "
                         f"with pool_padding {pool_padding} (at most half a window)")
    if pool_kernel != pool_stride:
        unsupported = unsupported or "overlapping pooling windows (pool_kernel != pool_stride)"
    if resolve_backend("pooled_fires", backend, fired.device, {"native": unsupported}) == "native":
        return run_fires_kernel(fired, weight.detach(), threshold, padding, (out_h, out_w),
                                (pool_kernel, pool_padding, pooled, border))
    layer = fires_given_inputs(fired, weight, threshold, padding, backend=backend).to(torch.float32)
    return F.pad(F.max_pool2d(layer, pool_kernel, pool_stride, pool_padding), (border,) * 4) > 0


def _checked_fires(fired: Tensor, weight: Tensor, threshold: float, padding: int) -> Tuple[int, bool, Optional[str]]:
    """Validate a binary layer's inputs; ``(padding, negative weights?, why the native
    kernel cannot run them or None)``."""
    check_tensor("fired", fired, 4, "[N, C_in, H, W]")
    check_tensor("weight", weight, 4, "[C_out, C_in, k, k]")
    if weight.shape[1] != fired.shape[1]:
        raise ValueError(
            f"weight must have C_in={fired.shape[1]} input channels to match fired "
            f"{tuple(fired.shape)}, got shape {tuple(weight.shape)}"
        )
    padding = check_int("padding", padding, minimum=0)
    negative = bool((weight.detach() < 0).any())
    unsupported = "negative weights" if negative else ("a threshold <= 0" if threshold <= 0 else None)
    if weight.dtype not in (torch.float32, torch.float16, torch.bfloat16):  # the kernel sums float32 copies
        unsupported = unsupported or f"{weight.dtype} weights (the kernel takes float32)"
    return padding, negative, unsupported


def _conv_size(fired: Tensor, weight: Tensor, padding: int) -> Tuple[int, int]:
    k = weight.shape[-1]
    return conv_output_size(fired.shape[2], k, 1, padding), conv_output_size(fired.shape[3], k, 1, padding)


_UNIT_ROUNDOFF_32 = 2.0 ** -24


def _fires_float32_checked(fired: Tensor, weight: Tensor, threshold: float, padding: int) -> Tensor:
    """:func:`fires_given_inputs` of one chunk: float32 convolution, float64 where unsure.

    A float32 sum of ``m`` non-negative terms is within ``g / (1 - g)`` of its exact value
    relative, ``g = (m - 1) u``; ``m`` is the number of active inputs in the neuron's
    window (a single term is exact). Potentials farther than twice that, plus twice the
    rounding of ``threshold`` to float32, from the threshold are decided; the rest are
    summed again exactly.
    """
    x = fired.to(torch.float32)
    potential = F.conv2d(x, weight.to(torch.float32), padding=padding)
    c_in, k = weight.shape[1], weight.shape[-1]
    window = torch.ones(1, 1, k, k, dtype=torch.float32, device=x.device)
    terms = F.conv2d(x.sum(dim=1, keepdim=True), window, padding=padding)  # [N, 1, H_out, W_out]
    g = (terms - 1).clamp_(min=0) * _UNIT_ROUNDOFF_32
    threshold_rounding = abs(threshold - float(torch.tensor(threshold, dtype=torch.float32)))
    margin = 2 * g / (1 - g) * abs(threshold) * (1 + 2 * g) + 2 * threshold_rounding
    out = potential >= threshold
    unsure = nonzero_indices((potential - threshold).abs_() <= margin)
    if unsure[0].numel():
        sample, channel, y, xx = unsure
        padded = F.pad(x, (padding,) * 4)
        offsets = torch.arange(k, device=x.device)
        rows = (y[:, None] + offsets)[:, None, :, None]
        cols = (xx[:, None] + offsets)[:, None, None, :]
        inputs = torch.arange(c_in, device=x.device)[None, :, None, None]
        patches = padded[sample[:, None, None, None], inputs, rows, cols].to(torch.float64)
        exact = (patches * weight[channel].to(torch.float64)).flatten(1).sum(dim=1)
        out[sample, channel, y, xx] = exact >= threshold
    return out
