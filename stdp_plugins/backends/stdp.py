"""Dispatched operation: a batch's STDP update, applied in place (docs/spec.md, 'STDP' and
'Sequential reduction'), with a torch, a native CPU and a CuPy implementation.

Every implementation gives the same weights: every winner of the batch contributes its
first-spike STDP update to its channel's kernel; with ``reduction="mean"`` the
contributions are averaged per channel and applied once, with ``"sequential"`` each
sample's step (averaged over that sample's winners of the channel) is applied and clamped
in turn. The per-channel convergence statistic is returned.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning._checks import check_learning_rate
from ..learning._indexing import nonzero_indices
from ..learning.convergence import channel_convergence
from ..learning.batch_stdp import _check_batch_inputs, batch_stdp_update, check_batch_shapes, sequential_stdp_update_
from ..learning.stdp import STDPConfig, STDPVariant
from ._cupy import launch_fused_update
from ._cupy_ops import launch_sequential_update
from .dispatch import resolve_backend
from ._native import native_library

__all__ = ["REDUCTIONS", "fused_winner_update"]

REDUCTIONS: Tuple[str, ...] = ("mean", "sequential")
"""Accepted values of ``reduction``."""

LearningRate = Union[float, Tensor]


def _torch(weights: Tensor, pre: Tensor, post: Tensor, mask: Optional[Tensor], config: STDPConfig,
           lr_plus: LearningRate, lr_minus: LearningRate, stride: int, padding: int, reduction: str) -> None:
    bounds = (config.variant, config.weight_min, config.weight_max)
    if reduction == "sequential":
        sequential_stdp_update_(weights, pre, post, mask, lr_plus, lr_minus, *bounds, stride, padding)
        return
    delta = batch_stdp_update(weights.detach(), pre, post, mask, lr_plus, lr_minus, *bounds, stride, padding)
    weights.add_(delta).clamp_(config.weight_min, config.weight_max)


def native_stdp_steps_(
    weights: Tensor,
    pre_spike_times: Tensor,
    winners: Tuple[Tensor, Tensor, Tensor, Tensor],
    t_post: Tensor,
    config: STDPConfig,
    lr_plus: float,
    lr_minus: float,
    stride: int,
    padding: int,
    per_sample: bool,
) -> Tensor:
    """The C library's STDP step for winners ``(sample, channel, y, x)`` with spike times
    ``t_post``, grouped as the C function ``stdp_groups`` expects: sorted by sample, then
    channel, when ``per_sample`` (the sequential reduction), by channel otherwise (mean).
    ``weights``: contiguous float32 CPU ``[C_out, C_in, k, k]``, updated in place."""
    sample, channel, y, x = (index.to(torch.int64).contiguous() for index in winners)
    t_post = t_post.to(torch.float32).contiguous()
    pre = pre_spike_times.detach().to(torch.float32).contiguous()
    _, c_in, height, width = pre.shape
    k = weights.shape[-1]
    count = torch.empty(c_in * k * k, dtype=torch.int32)
    native_library().stdp_groups(
        sample.numel(), sample.data_ptr(), channel.data_ptr(), y.data_ptr(), x.data_ptr(), t_post.data_ptr(),
        pre.data_ptr(), c_in, height, width, k, stride, padding, weights.data_ptr(),
        lr_plus + lr_minus, lr_minus, int(config.variant is STDPVariant.ADDITIVE),
        config.weight_min, config.weight_max, int(per_sample), count.data_ptr(),
    )
    return weights


def _native(weights: Tensor, pre: Tensor, post: Tensor, mask: Optional[Tensor], config: STDPConfig,
            lr_plus: LearningRate, lr_minus: LearningRate, stride: int, padding: int, reduction: str) -> None:
    post = post.detach()
    if mask is None:
        sample, channel, y, x = nonzero_indices(torch.isfinite(post))
    else:
        sample, channel, y, x = nonzero_indices(mask.detach())
        fired = torch.isfinite(post[sample, channel, y, x])
        sample, channel, y, x = sample[fired], channel[fired], y[fired], x[fired]
    if reduction == "mean":  # group by channel; nonzero order is by sample, then channel
        order = torch.argsort(channel, stable=True)
        sample, channel, y, x = sample[order], channel[order], y[order], x[order]
    target = weights.detach()
    work = target if target.is_contiguous() else target.contiguous()
    native_stdp_steps_(work, pre, (sample, channel, y, x), post[sample, channel, y, x], config,
                       float(lr_plus), float(lr_minus), stride, padding, reduction == "sequential")
    if work is not target:
        target.copy_(work)
    if reduction == "mean":  # like the torch path, the mean step clamps every channel
        target.clamp_(config.weight_min, config.weight_max)


def _unsupported(weights: Tensor, reduction: str) -> dict:
    """Why the native and CuPy implementations cannot run these inputs, per backend."""
    dtype = None if weights.dtype == torch.float32 else f"they need float32 weights, got {weights.dtype}"
    return {"native": dtype, "cupy": dtype}


def fused_winner_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    config: STDPConfig,
    lr_plus: Optional[LearningRate] = None,
    lr_minus: Optional[LearningRate] = None,
    stride: int = 1,
    padding: int = 0,
    backend: str = "auto",
    reduction: str = "mean",
) -> Tensor:
    """Apply a whole batch of winners' STDP updates to convolution weights, in place.

    For every winner (sample, channel ``c``, output position, finite ``t_post``) each synapse
    of its receptive field is potentiated (``t_pre`` finite and ``<= t_post``) or depressed
    (later, never, or padding), Kheradpisheh et al. 2018 eq. 3, and the weights are clamped
    to ``[config.weight_min, config.weight_max]``.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, C_in, k, k]`` floating weights, updated in place (``nn.Parameter`` is fine).
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` input first-spike times (``inf`` = never fired).
    post_spike_times : Tensor
        ``[N, C_out, H_out, W_out]`` output first-spike times of the convolution.
    winner_mask : Tensor or None
        Shaped like ``post_spike_times``, bool (or 0/1); ``None`` makes every finite post
        time a winner. Entries whose post time is infinite are skipped.
    config : STDPConfig
        Variant (multiplicative or additive) and weight bounds.
    lr_plus, lr_minus : float or Tensor, optional
        Learning rates (python floats or 0-dim tensors); default ``config.lr_plus`` and
        ``config.lr_minus``.
    stride, padding : int
        Geometry of the convolution that produced ``post_spike_times``.
    backend : {"auto", "torch", "native", "cupy"}
        Implementation (see :func:`~stdp_plugins.backends.resolve_backend`): native for
        float32 CPU weights, CuPy for float32 CUDA weights, torch otherwise.
    reduction : {"mean", "sequential"}
        ``"mean"``: one step per batch, each channel's winners averaged. ``"sequential"``:
        the samples' steps one after another, each averaged over that sample's winners and
        clamped before the next (:func:`~stdp_plugins.learning.sequential_stdp_update_`),
        so that batched learning follows one-image-at-a-time learning.

    Returns
    -------
    Tensor
        float32 ``[C_out]`` on the weights' device: per channel, ``mean(wn * (1 - wn))`` of
        the updated weights normalised to the bounds (Kheradpisheh eq. 4).

    Raises
    ------
    TypeError, ValueError
        For malformed inputs (the message names the argument), an unknown or unsuitable
        ``backend``.
    RuntimeError
        For a ``backend`` that is not installed.

    Notes
    -----
    The CuPy implementation runs one kernel launch on torch's current stream
    (``cuda/fused_stdp.cu`` or ``cuda/sequential_stdp.cu``) and never synchronises; it therefore does not check values (NaN or negative times, negative
    tensor learning rates), which the others reject. All three are deterministic.
    """
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    if not isinstance(config, STDPConfig):
        raise TypeError(f"config must be an STDPConfig, got {type(config).__name__}")
    _, stride, padding = check_batch_shapes(weights, pre_spike_times, post_spike_times, winner_mask, stride, padding)
    chosen = resolve_backend("stdp_update", backend, weights.device, _unsupported(weights, reduction))
    lr_plus = config.lr_plus if lr_plus is None else check_learning_rate("lr_plus", lr_plus)
    lr_minus = config.lr_minus if lr_minus is None else check_learning_rate("lr_minus", lr_minus)
    if chosen == "cupy":
        run_kernel = launch_fused_update if reduction == "mean" else launch_sequential_update
        return run_kernel(weights, pre_spike_times, post_spike_times, winner_mask, config, lr_plus, lr_minus,
                          stride, padding)
    if chosen == "native":  # the torch path checks the values itself
        _check_batch_inputs(weights, pre_spike_times, post_spike_times, winner_mask, stride, padding)
    with torch.no_grad():
        run = _native if chosen == "native" else _torch
        run(weights, pre_spike_times, post_spike_times, winner_mask, config, lr_plus, lr_minus, stride, padding,
            reduction)
    return channel_convergence(weights.detach(), config.weight_min, config.weight_max)
