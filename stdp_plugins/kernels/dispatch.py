"""One entry point for the fused batch STDP update, with a torch and a CuPy backend.

Both backends implement the same semantics (DESIGN.md, 'Semantics'): every winner of the
batch contributes its first-spike STDP update to its channel's kernel, the contributions
are averaged over that channel's winners, the result is added in place and clamped to the
configured bounds, and the per-channel convergence statistic is returned.
"""

from __future__ import annotations

from typing import Optional, Tuple, Union

import torch
from torch import Tensor

from ..learning._checks import check_learning_rate, check_tensor
from ..learning.convergence import channel_convergence
from ..learning.stdp import STDPConfig, batch_stdp_update, check_batch_shapes, sequential_stdp_update_
from .cupy_backend import cupy_available, launch_fused_update

__all__ = ["BACKENDS", "REDUCTIONS", "select_backend", "fused_winner_update"]

BACKENDS: Tuple[str, ...] = ("auto", "torch", "cupy")
"""Accepted values of ``backend``."""

REDUCTIONS: Tuple[str, ...] = ("mean", "sequential")
"""Accepted values of ``reduction``."""

LearningRate = Union[float, Tensor]


def select_backend(backend: str, weights: Tensor, reduction: str = "mean") -> str:
    """Resolve ``backend`` to the implementation that will run.

    Parameters
    ----------
    backend : str
        ``"auto"``: ``"cupy"`` for float32 CUDA weights when CuPy imports, else ``"torch"``.
        ``"torch"`` or ``"cupy"``: that backend.
    weights : Tensor
        The weights to update; their device and dtype decide ``"auto"``.
    reduction : str
        ``"sequential"`` has only the torch implementation (``"auto"`` picks it).

    Returns
    -------
    str
        ``"torch"`` or ``"cupy"``.

    Raises
    ------
    ValueError
        For an unknown ``backend``, ``"cupy"`` with weights that are not on a CUDA device or
        with ``reduction="sequential"``.
    TypeError
        For ``"cupy"`` with weights that are not float32.
    RuntimeError
        For ``"cupy"`` when CuPy is not installed.
    """
    if not isinstance(backend, str) or backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(map(repr, BACKENDS))}, got {backend!r}")
    check_tensor("weights", weights)
    if not isinstance(reduction, str) or reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
    if backend == "torch":
        return "torch"
    if reduction == "sequential":
        if backend == "cupy":
            raise ValueError("backend='cupy' implements reduction='mean' only; use backend='torch' or 'auto'")
        return "torch"
    if backend == "auto":
        use_cupy = weights.is_cuda and weights.dtype == torch.float32 and cupy_available()
        return "cupy" if use_cupy else "torch"
    if not weights.is_cuda:
        raise ValueError(
            f"backend='cupy' needs CUDA tensors, got weights on {weights.device}; "
            "use backend='torch' or 'auto' on this device"
        )
    if weights.dtype != torch.float32:
        raise TypeError(f"backend='cupy' needs float32 weights, got dtype {weights.dtype}")
    if not cupy_available():
        raise RuntimeError(
            "backend='cupy' needs CuPy, which is not installed; install the extra "
            "'stdp-plugins[cuda13]' (or [cuda12]) or use backend='torch'"
        )
    return "cupy"


def _torch_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    config: STDPConfig,
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    stride: int,
    padding: int,
    reduction: str = "mean",
) -> Tensor:
    """The reference path: the core's ``batch_stdp_update``, add, clamp, convergence (or
    ``sequential_stdp_update_``)."""
    with torch.no_grad():
        if reduction == "sequential":
            sequential_stdp_update_(
                weights, pre_spike_times, post_spike_times, winner_mask, lr_plus, lr_minus,
                config.variant, config.weight_min, config.weight_max, stride, padding,
            )
            return channel_convergence(weights.detach(), config.weight_min, config.weight_max)
        delta = batch_stdp_update(
            weights.detach(), pre_spike_times, post_spike_times, winner_mask, lr_plus, lr_minus,
            config.variant, config.weight_min, config.weight_max, stride, padding,
        )
        weights.add_(delta).clamp_(config.weight_min, config.weight_max)
    return channel_convergence(weights.detach(), config.weight_min, config.weight_max)


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
    (later, never, or padding), Kheradpisheh et al. 2018 eq. 3. Per channel the updates are
    averaged over that channel's winners (channels without winners are unchanged), added to
    ``weights`` and the weights clamped to ``[config.weight_min, config.weight_max]``.

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
    backend : str
        ``"auto"`` (CuPy for float32 CUDA weights when CuPy is installed, else torch),
        ``"torch"`` or ``"cupy"``.
    reduction : str
        ``"mean"``: one step per batch, the average described above. ``"sequential"``:
        the samples' steps one after another, each averaged over that sample's winners
        and clamped before the next (:func:`~stdp_plugins.learning.sequential_stdp_update_`),
        so that batched learning follows one-image-at-a-time learning; torch backend only
        (any device).

    Returns
    -------
    Tensor
        float32 ``[C_out]`` on the weights' device: per channel, ``mean(wn * (1 - wn))`` of
        the updated weights normalised to the bounds (Kheradpisheh eq. 4).

    Raises
    ------
    TypeError, ValueError
        For malformed inputs (the message names the argument) or an unknown ``backend``.
    RuntimeError
        For ``backend="cupy"`` without CuPy.

    Notes
    -----
    The CuPy backend runs one kernel launch on torch's current stream and never
    synchronises; it therefore does not check values (NaN or negative times, negative
    tensor learning rates), which the torch backend rejects. Its result is deterministic.
    """
    chosen = select_backend(backend, weights, reduction)
    if not isinstance(config, STDPConfig):
        raise TypeError(f"config must be an STDPConfig, got {type(config).__name__}")
    lr_plus = config.lr_plus if lr_plus is None else check_learning_rate("lr_plus", lr_plus)
    lr_minus = config.lr_minus if lr_minus is None else check_learning_rate("lr_minus", lr_minus)
    _, stride, padding = check_batch_shapes(
        weights, pre_spike_times, post_spike_times, winner_mask, stride, padding
    )
    if chosen == "cupy":
        return launch_fused_update(weights, pre_spike_times, post_spike_times, winner_mask, config,
                                   lr_plus, lr_minus, stride, padding)
    return _torch_update(weights, pre_spike_times, post_spike_times, winner_mask, config, lr_plus, lr_minus,
                         stride, padding, reduction)
