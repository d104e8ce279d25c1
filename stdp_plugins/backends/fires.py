"""Which neurons of a first-spike layer fire at all, for inference: the max over time of
a cumulative spike wave is its last step, so only the set of inputs that fired matters
(docs/spec.md, 'First-spike convolution')."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from ..learning._checks import check_int, check_tensor
from ..learning._indexing import nonzero_indices
from ..learning.timing import conv_output_size
from ._conv_native import run_fires_kernel
from .conv import check_layer
from .dispatch import resolve_backend

__all__ = ["fires_at_all", "fires_given_inputs"]


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
    check_tensor("fired", fired, 4, "[N, C_in, H, W]")
    check_tensor("weight", weight, 4, "[C_out, C_in, k, k]")
    if weight.shape[1] != fired.shape[1]:
        raise ValueError(
            f"weight must have C_in={fired.shape[1]} input channels to match fired "
            f"{tuple(fired.shape)}, got shape {tuple(weight.shape)}"
        )
    padding = check_int("padding", padding, minimum=0)
    weight = weight.detach()
    negative = bool((weight < 0).any())
    unsupported = "negative weights" if negative else ("a threshold <= 0" if threshold <= 0 else None)
    if weight.dtype not in (torch.float32, torch.float16, torch.bfloat16):  # the kernel sums float32 copies
        unsupported = unsupported or f"{weight.dtype} weights (the kernel takes float32)"
    if resolve_backend("first_spike_conv", backend, fired.device, {"native": unsupported}) == "native":
        k = weight.shape[-1]
        out_size = (conv_output_size(fired.shape[2], k, 1, padding), conv_output_size(fired.shape[3], k, 1, padding))
        return run_fires_kernel(fired, weight, threshold, padding, out_size)
    if negative:
        w64 = weight.to(torch.float64)
        return torch.cat([
            F.conv2d(part.to(torch.float64), w64, padding=padding) >= threshold
            for part in fired.split(max(1, chunk))
        ])
    return torch.cat([
        _fires_float32_checked(part, weight, threshold, padding) for part in fired.split(max(1, chunk))
    ])


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
