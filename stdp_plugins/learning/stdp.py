"""First-spike-time STDP (Kheradpisheh et al. 2018, eq. 3).

The rule only looks at the sign of ``t_post - t_pre``: a synapse whose input fired at or
before the winner's spike is potentiated by ``lr_plus * f(w)``, every other synapse
(later input, an input that never fired, padding) is depressed by ``lr_minus * f(w)``.
``f(w) = (w - w_min)(w_max - w)`` for the multiplicative rule and ``1`` for the additive one.

The batched functions are the implementation; the per-winner functions are their
special case with a single winner.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import List, Optional, Sequence, Tuple, Union

import torch
from torch import Tensor

from ._checks import (
    check_binary,
    check_enum,
    check_float,
    check_learning_rate,
    check_same_device,
    check_spike_times,
    check_tensor,
)
from ._indexing import nonzero_indices
from .convergence import channel_convergence
from .timing import _check_geometry, conv_output_size, extract_receptive_field_times, gather_receptive_field_times

__all__ = [
    "STDPVariant",
    "STDPConfig",
    "STDPLearner",
    "stdp_weight_factor",
    "potentiation_fraction",
    "batch_stdp_update",
    "sequential_stdp_update_",
    "compute_stdp_update",
]

LearningRate = Union[float, Tensor]


class STDPVariant(Enum):
    """How the STDP step scales with the current weight."""

    MULTIPLICATIVE = "multiplicative"
    """``f(w) = (w - w_min)(w_max - w)``: steps shrink near the bounds (soft bounds)."""
    ADDITIVE = "additive"
    """``f(w) = 1``: constant steps, hard bounds by clamping."""


_PRESETS = {
    "kheradpisheh2018": dict(lr_plus=0.004, lr_minus=0.003, weight_init_mean=0.8, weight_init_std=0.05),
    "igarss2023": dict(lr_plus=0.04, lr_minus=0.03, weight_init_mean=0.8, weight_init_std=0.01),
}


@dataclass
class STDPConfig:
    """Hyper-parameters of first-spike STDP.

    Attributes
    ----------
    lr_plus, lr_minus : float
        Potentiation and depression rates (``a+`` and ``a-``), both ``>= 0``.
    weight_min, weight_max : float
        Weight bounds; weights never leave ``[weight_min, weight_max]``.
    variant : STDPVariant
        ``MULTIPLICATIVE`` (default) or ``ADDITIVE``; a name string is accepted.
    convergence_threshold : float
        The learner counts as converged when its metric falls below this.
    weight_init_mean, weight_init_std : float
        Normal initialisation of :meth:`STDPLearner.initialize_weights`.
    """

    lr_plus: float = 0.004
    lr_minus: float = 0.003
    weight_min: float = 0.0
    weight_max: float = 1.0
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE
    convergence_threshold: float = 0.01
    weight_init_mean: float = 0.8
    weight_init_std: float = 0.01

    def __post_init__(self) -> None:
        self.lr_plus = check_float("lr_plus", self.lr_plus, minimum=0.0)
        self.lr_minus = check_float("lr_minus", self.lr_minus, minimum=0.0)
        self.weight_min = check_float("weight_min", self.weight_min)
        self.weight_max = check_float("weight_max", self.weight_max)
        if self.weight_min >= self.weight_max:
            raise ValueError(
                f"weight_min must be < weight_max, got weight_min={self.weight_min}, "
                f"weight_max={self.weight_max}"
            )
        self.variant = check_enum("variant", self.variant, STDPVariant)
        self.convergence_threshold = check_float(
            "convergence_threshold", self.convergence_threshold, minimum=0.0, strict_min=True
        )
        self.weight_init_mean = check_float("weight_init_mean", self.weight_init_mean)
        self.weight_init_std = check_float("weight_init_std", self.weight_init_std, minimum=0.0)

    @classmethod
    def from_paper(cls, paper: str) -> "STDPConfig":
        """Preset of a published model.

        Parameters
        ----------
        paper : str
            ``"kheradpisheh2018"`` (a+ 0.004, a- 0.003, init N(0.8, 0.05)) or
            ``"igarss2023"`` (Kirkland et al.; a+ 0.04, a- 0.03, init N(0.8, 0.01)),
            case-insensitive. Both are multiplicative with threshold 0.01.

        Raises
        ------
        ValueError
            For an unknown name; the message lists the known ones.
        """
        if not isinstance(paper, str):
            raise TypeError(f"paper must be a str, got {type(paper).__name__} {paper!r}")
        key = paper.strip().lower()
        if key not in _PRESETS:
            raise ValueError(f"paper must be one of {', '.join(sorted(_PRESETS))}, got {paper!r}")
        return cls(variant=STDPVariant.MULTIPLICATIVE, convergence_threshold=0.01, **_PRESETS[key])

    def to_dict(self) -> dict:
        """Plain-dict form (the variant as its string value), e.g. for checkpoints."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["variant"] = self.variant.value
        return out


def stdp_weight_factor(
    weights: Tensor,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
) -> Tensor:
    """The weight dependence ``f(w)`` of the STDP step.

    Returns ``(w - weight_min) * (weight_max - w)`` for ``MULTIPLICATIVE`` and ones for
    ``ADDITIVE``, with the shape and dtype of ``weights``.
    """
    if variant is STDPVariant.ADDITIVE:
        return torch.ones_like(weights)
    return (weights - weight_min) * (weight_max - weights)


def _delta_from_fraction(
    weights: Tensor,
    fraction: Tensor,
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    variant: STDPVariant,
    weight_min: float,
    weight_max: float,
) -> Tensor:
    """``f(w) * (a+ * frac - a- * (1 - frac))``: the mean step over winners of which a share
    ``frac`` potentiates each synapse (``frac`` is 0 or 1 for a single winner)."""
    factor = stdp_weight_factor(weights, variant, weight_min, weight_max)
    return factor * _signed_rate(fraction, lr_plus, lr_minus)


def _signed_rate(fraction: Tensor, lr_plus: LearningRate, lr_minus: LearningRate) -> Tensor:
    """``a+ * frac - a- * (1 - frac)``, the step per unit of ``f(w)``."""
    return (lr_plus + lr_minus) * fraction - lr_minus


def check_batch_shapes(
    weights: Tensor, pre_spike_times: Tensor, post_spike_times: Tensor, winner_mask: Optional[Tensor],
    stride: int, padding: int,
) -> Tuple[int, int, int]:
    """Structural checks of a batch update's inputs; reads no tensor values (no device sync).

    Returns
    -------
    tuple of int
        ``(kernel_size, stride, padding)``.
    """
    check_tensor("weights", weights, 4, "[C_out, C_in, k, k]")
    check_tensor("pre_spike_times", pre_spike_times, 4, "[N, C_in, H, W]")
    check_tensor("post_spike_times", post_spike_times, 4, "[N, C_out, H_out, W_out]")
    if winner_mask is not None:
        check_tensor("winner_mask", winner_mask, 4, "[N, C_out, H_out, W_out]")
    check_same_device(weights=weights, pre_spike_times=pre_spike_times,
                      post_spike_times=post_spike_times, winner_mask=winner_mask)
    for name, tensor in (("weights", weights), ("pre_spike_times", pre_spike_times),
                         ("post_spike_times", post_spike_times)):
        if not tensor.is_floating_point():
            raise TypeError(f"{name} must be a floating tensor, got dtype {tensor.dtype}")
    c_out, c_in, k_h, k_w = weights.shape
    if k_h != k_w:
        raise ValueError(f"weights must have square kernels [C_out, C_in, k, k], got shape {tuple(weights.shape)}")
    kernel_size, stride, padding = _check_geometry(k_h, stride, padding)
    n, pre_c, height, width = pre_spike_times.shape
    if pre_c != c_in:
        raise ValueError(
            f"pre_spike_times must have C_in={c_in} channels to match weights {tuple(weights.shape)}, "
            f"got shape {tuple(pre_spike_times.shape)}"
        )
    out_size = (conv_output_size(height, kernel_size, stride, padding),
                conv_output_size(width, kernel_size, stride, padding))
    if min(out_size) < 1:
        raise ValueError(
            f"pre_spike_times of spatial size {height}x{width} is smaller than a "
            f"{kernel_size}x{kernel_size} kernel with padding {padding}"
        )
    expected = (n, c_out, *out_size)
    if tuple(post_spike_times.shape) != expected:
        raise ValueError(
            f"post_spike_times must have shape {list(expected)} (N, C_out and the output map of a "
            f"{kernel_size}x{kernel_size} convolution with stride {stride}, padding {padding} over "
            f"{height}x{width}), got {tuple(post_spike_times.shape)}"
        )
    if winner_mask is not None and winner_mask.shape != post_spike_times.shape:
        raise ValueError(
            f"winner_mask must have the shape of post_spike_times {tuple(post_spike_times.shape)}, "
            f"got {tuple(winner_mask.shape)}"
        )
    return kernel_size, stride, padding


def _check_batch_inputs(
    weights: Tensor, pre_spike_times: Tensor, post_spike_times: Tensor, winner_mask: Optional[Tensor],
    stride: int, padding: int,
) -> Tuple[int, int, int]:
    """:func:`check_batch_shapes` plus the value checks (times, mask)."""
    geometry = check_batch_shapes(weights, pre_spike_times, post_spike_times, winner_mask, stride, padding)
    check_spike_times("pre_spike_times", pre_spike_times)
    check_spike_times("post_spike_times", post_spike_times)
    if winner_mask is not None:
        check_binary("winner_mask", winner_mask)
    return geometry


def _winner_potentiation(
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    kernel_size: int,
    stride: int,
    padding: int,
) -> Tuple[Tensor, Tensor, Tensor]:
    """Sample, channel and the 0/1 ``[C_in, k, k]`` potentiation pattern of every winner
    (in ``nonzero`` order: by sample, then channel, then position)."""
    if winner_mask is None:
        sample, channel, y, x = nonzero_indices(torch.isfinite(post_spike_times))
    else:  # a sparse mask: find its entries first, then drop those that never fired
        sample, channel, y, x = nonzero_indices(winner_mask)
        fired = torch.isfinite(post_spike_times[sample, channel, y, x])
        sample, channel, y, x = sample[fired], channel[fired], y[fired], x[fired]
    field = gather_receptive_field_times(pre_spike_times, sample, y, x, kernel_size, stride, padding)
    t_post = post_spike_times[sample, channel, y, x]
    return sample, channel, (field <= t_post[:, None, None, None]).to(pre_spike_times.dtype)


def potentiation_fraction(
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    kernel_size: int,
    stride: int = 1,
    padding: int = 0,
) -> Tuple[Tensor, Tensor]:
    """Per channel, the share of its winners that potentiate each synapse.

    Parameters
    ----------
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` first-spike times of the input.
    post_spike_times : Tensor
        ``[N, C_out, H_out, W_out]`` first-spike times of the output.
    winner_mask : Tensor or None
        Bool ``[N, C_out, H_out, W_out]``; ``None`` makes every finite post time a winner.
        Entries with an infinite post time are skipped.
    kernel_size, stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    fraction : Tensor
        ``[C_out, C_in, k, k]``: for each synapse, the fraction of the channel's winners
        with ``t_pre`` finite and ``t_pre <= t_post`` (0 for channels without winners).
    wins : Tensor
        ``[C_out]`` long, the number of winners per channel.
    """
    _, channel, potentiates = _winner_potentiation(
        pre_spike_times, post_spike_times, winner_mask, kernel_size, stride, padding
    )
    c_out, c_in = post_spike_times.shape[1], pre_spike_times.shape[1]
    totals = torch.zeros(c_out, c_in, kernel_size, kernel_size, dtype=potentiates.dtype,
                         device=pre_spike_times.device)
    totals.index_add_(0, channel, potentiates)
    wins = torch.bincount(channel, minlength=c_out)
    return totals / wins.clamp(min=1).to(totals.dtype)[:, None, None, None], wins


def batch_stdp_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """STDP step of a whole batch of winners, averaged per output channel.

    Every winner contributes its update to its channel's kernel; per channel the
    contributions are averaged over that channel's winners, so the step size does not
    grow with the batch size. Channels without winners get zero.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, C_in, k, k]`` convolution weights.
    pre_spike_times : Tensor
        ``[N, C_in, H, W]`` input first-spike times (``inf`` = never).
    post_spike_times : Tensor
        ``[N, C_out, H_out, W_out]`` output first-spike times.
    winner_mask : Tensor or None
        Bool, shaped like ``post_spike_times``; ``None`` means every finite post time wins.
    lr_plus, lr_minus : float or Tensor
        Potentiation and depression rates.
    variant : STDPVariant
        Weight dependence of the step.
    weight_min, weight_max : float
        Bounds used by the multiplicative factor.
    stride, padding : int
        Geometry of the convolution.

    Returns
    -------
    Tensor
        The delta ``[C_out, C_in, k, k]``, neither applied nor clamped.
    """
    kernel_size, stride, padding = _check_batch_inputs(
        weights, pre_spike_times, post_spike_times, winner_mask, stride, padding
    )
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    fraction, wins = potentiation_fraction(
        pre_spike_times.to(weights.dtype), post_spike_times.to(weights.dtype), winner_mask,
        kernel_size, stride, padding,
    )
    delta = _delta_from_fraction(weights, fraction, lr_plus, lr_minus, variant, weight_min, weight_max)
    return delta * (wins > 0).to(delta.dtype)[:, None, None, None]


def sequential_stdp_update_(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_times: Tensor,
    winner_mask: Optional[Tensor],
    lr_plus: LearningRate,
    lr_minus: LearningRate,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
    stride: int = 1,
    padding: int = 0,
) -> Tensor:
    """Apply a batch's STDP steps sample after sample, in place, clamping after each.

    The result equals :func:`batch_stdp_update` of every sample alone (its winners
    averaged per channel), each added to ``weights`` and clamped before the next sample:
    the weight trajectory of one-image-at-a-time learning, given the batch's spikes. A
    channel's steps depend only on its own weights, so the loop runs over the rank of a
    sample among the samples in which that channel wins (at most the batch size), with
    every channel of a rank updated at once.

    Parameters
    ----------
    weights : Tensor
        ``[C_out, C_in, k, k]`` convolution weights, updated in place.
    pre_spike_times, post_spike_times, winner_mask, lr_plus, lr_minus, variant, weight_min, weight_max, stride, padding
        As for :func:`batch_stdp_update`.

    Returns
    -------
    Tensor
        ``weights``.
    """
    kernel_size, stride, padding = _check_batch_inputs(
        weights, pre_spike_times, post_spike_times, winner_mask, stride, padding
    )
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    sample, channel, potentiates = _winner_potentiation(
        pre_spike_times.to(weights.dtype), post_spike_times.to(weights.dtype), winner_mask,
        kernel_size, stride, padding,
    )
    c_out = weights.shape[0]
    # one step per (sample, channel) pair: its winners' potentiation, averaged
    steps, step_of, wins = torch.unique(sample * c_out + channel, return_inverse=True, return_counts=True)
    fraction = torch.zeros(steps.numel(), *weights.shape[1:], dtype=weights.dtype, device=weights.device)
    fraction.index_add_(0, step_of, potentiates)
    fraction /= wins.to(weights.dtype)[:, None, None, None]
    step_channel = steps % c_out  # steps are sorted by sample, then channel
    # rank of each step among its channel's steps; then order the steps by rank (stable,
    # so a rank keeps the channel order) to apply each rank as one slice
    by_channel = torch.argsort(step_channel, stable=True)
    first_of_channel = torch.searchsorted(step_channel[by_channel], step_channel[by_channel])
    rank = torch.empty_like(by_channel)
    rank[by_channel] = torch.arange(by_channel.numel(), device=rank.device) - first_of_channel
    by_rank = torch.argsort(rank, stable=True)
    channel_of = step_channel[by_rank]
    signed_rate = _signed_rate(fraction[by_rank], lr_plus, lr_minus)
    ends = torch.bincount(rank).cumsum(0).tolist() if rank.numel() else []
    with torch.no_grad():
        begin = 0
        for end in ends:
            chosen = channel_of[begin:end]
            current = weights[chosen]
            factor = stdp_weight_factor(current, variant, weight_min, weight_max)
            weights[chosen] = (current + factor * signed_rate[begin:end]).clamp_(weight_min, weight_max)
            begin = end
    return weights


def compute_stdp_update(
    weights: Tensor,
    pre_spike_times: Tensor,
    post_spike_time: Union[float, Tensor],
    lr_plus: float,
    lr_minus: float,
    variant: STDPVariant = STDPVariant.MULTIPLICATIVE,
    *,
    weight_min: float = 0.0,
    weight_max: float = 1.0,
) -> Tensor:
    """STDP delta of one winner (not clamped, not applied).

    Parameters
    ----------
    weights : Tensor
        The winner's weights, any shape.
    pre_spike_times : Tensor
        Spike times of the inputs of those weights, same shape (``inf`` = never fired).
    post_spike_time : float or Tensor
        The winner's (finite) spike time.
    lr_plus, lr_minus : float
        Potentiation and depression rates.
    variant : STDPVariant
        ``MULTIPLICATIVE`` (default) or ``ADDITIVE``.
    weight_min, weight_max : float
        Bounds of the multiplicative factor (default ``[0, 1]``).

    Returns
    -------
    Tensor
        ``+lr_plus * f(w)`` where ``t_pre <= t_post``, ``-lr_minus * f(w)`` elsewhere.
    """
    check_tensor("weights", weights)
    check_tensor("pre_spike_times", pre_spike_times)
    if pre_spike_times.shape != weights.shape:
        raise ValueError(
            f"pre_spike_times must have the shape of weights {tuple(weights.shape)}, "
            f"got {tuple(pre_spike_times.shape)}"
        )
    check_same_device(weights=weights, pre_spike_times=pre_spike_times)
    check_spike_times("pre_spike_times", pre_spike_times)
    t_post = float(post_spike_time)
    if not math.isfinite(t_post) or t_post < 0:
        raise ValueError(f"post_spike_time must be a finite time >= 0 (the winner fired), got {t_post}")
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    weight_min = check_float("weight_min", weight_min)
    weight_max = check_float("weight_max", weight_max)
    if weight_min >= weight_max:
        raise ValueError(f"weight_min must be < weight_max, got {weight_min} and {weight_max}")
    potentiates = (pre_spike_times <= t_post).to(weights.dtype)
    return _delta_from_fraction(weights, potentiates, lr_plus, lr_minus, variant, weight_min, weight_max)


class STDPLearner:
    """First-spike STDP with a configuration, bookkeeping and convergence tests.

    Parameters
    ----------
    config : STDPConfig, optional
        Hyper-parameters; defaults to ``STDPConfig()``.

    Examples
    --------
    >>> learner = STDPLearner(STDPConfig.from_paper("kheradpisheh2018"))
    >>> w = learner.initialize_weights((32, 2, 5, 5))
    """

    def __init__(self, config: Optional[STDPConfig] = None) -> None:
        if config is None:
            config = STDPConfig()
        if not isinstance(config, STDPConfig):
            raise TypeError(f"config must be an STDPConfig, got {type(config).__name__}")
        self.config = config
        self._update_count = 0
        self._history: List[float] = []

    def initialize_weights(
        self,
        shape: Sequence[int],
        device: Optional[Union[str, torch.device]] = None,
        dtype: torch.dtype = torch.float32,
        generator: Optional[torch.Generator] = None,
    ) -> Tensor:
        """Draw weights from ``N(weight_init_mean, weight_init_std)`` clamped to the bounds.

        Parameters
        ----------
        shape : sequence of int
            Weight shape, e.g. ``(C_out, C_in, k, k)``.
        device, dtype
            Placement of the weights.
        generator : torch.Generator, optional
            Random generator, for reproducible initialisation.
        """
        if isinstance(shape, int):
            shape = (shape,)
        if not isinstance(shape, (tuple, list, torch.Size)) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise ValueError(f"shape must be a sequence of non-negative ints, got {shape!r}")
        if not dtype.is_floating_point:
            raise TypeError(f"dtype must be a floating dtype, got {dtype}")
        cfg = self.config
        weights = torch.empty(tuple(shape), device=device, dtype=dtype)
        weights.normal_(cfg.weight_init_mean, cfg.weight_init_std, generator=generator)
        return weights.clamp_(cfg.weight_min, cfg.weight_max)

    def compute_update(self, weights: Tensor, pre_spike_times: Tensor, post_spike_time: Union[float, Tensor]) -> Tensor:
        """:func:`compute_stdp_update` with this learner's configuration."""
        cfg = self.config
        return compute_stdp_update(
            weights, pre_spike_times, post_spike_time, cfg.lr_plus, cfg.lr_minus, cfg.variant,
            weight_min=cfg.weight_min, weight_max=cfg.weight_max,
        )

    def compute_batch_update(
        self,
        weights: Tensor,
        pre_spike_times: Tensor,
        post_spike_times: Tensor,
        winner_mask: Optional[Tensor] = None,
        *,
        stride: int = 1,
        padding: int = 0,
        lr_plus: Optional[LearningRate] = None,
        lr_minus: Optional[LearningRate] = None,
    ) -> Tensor:
        """Per-channel averaged delta of a batch of winners (see :func:`batch_stdp_update`).

        Parameters
        ----------
        weights : Tensor
            ``[C_out, C_in, k, k]``.
        pre_spike_times : Tensor
            ``[N, C_in, H, W]`` or one sample ``[C_in, H, W]``.
        post_spike_times : Tensor
            ``[N, C_out, H_out, W_out]`` or ``[C_out, H_out, W_out]``.
        winner_mask : Tensor, optional
            Shaped like ``post_spike_times``; ``None`` means every finite post time wins.
        stride, padding : int
            Geometry of the convolution.
        lr_plus, lr_minus : float or Tensor, optional
            Override the configured rates (e.g. for a learning-rate schedule).

        Returns
        -------
        Tensor
            ``[C_out, C_in, k, k]``, not applied; ``update_count`` is not touched.
        """
        check_tensor("pre_spike_times", pre_spike_times, (3, 4), "[N, C_in, H, W] or [C_in, H, W]")
        check_tensor("post_spike_times", post_spike_times, (3, 4), "[N, C_out, H_out, W_out] or [C_out, H_out, W_out]")
        if pre_spike_times.dim() != post_spike_times.dim():
            raise ValueError(
                "pre_spike_times and post_spike_times must both be batched (4-D) or both single (3-D), "
                f"got shapes {tuple(pre_spike_times.shape)} and {tuple(post_spike_times.shape)}"
            )
        if pre_spike_times.dim() == 3:
            pre_spike_times = pre_spike_times[None]
            post_spike_times = post_spike_times[None]
            if winner_mask is not None:
                check_tensor("winner_mask", winner_mask, 3, "[C_out, H_out, W_out]")
                winner_mask = winner_mask[None]
        cfg = self.config
        return batch_stdp_update(
            weights, pre_spike_times, post_spike_times, winner_mask,
            cfg.lr_plus if lr_plus is None else lr_plus,
            cfg.lr_minus if lr_minus is None else lr_minus,
            cfg.variant, cfg.weight_min, cfg.weight_max, stride, padding,
        )

    def apply_update(self, weights: Tensor, delta: Tensor) -> Tensor:
        """Add ``delta`` to ``weights`` in place, clamp to the bounds and record the update.

        This is how a batch update from :meth:`compute_batch_update` is applied; it adds 1
        to :attr:`update_count` and appends the convergence metric to the history.
        """
        check_tensor("weights", weights)
        check_tensor("delta", delta)
        if delta.shape != weights.shape:
            raise ValueError(f"delta must have the shape of weights {tuple(weights.shape)}, got {tuple(delta.shape)}")
        with torch.no_grad():
            weights.add_(delta).clamp_(self.config.weight_min, self.config.weight_max)
        self.record_update(weights)
        return weights

    def record_update(self, weights: Tensor) -> None:
        """Count an update applied to ``weights`` elsewhere (e.g. by
        :func:`stdp_plugins.fused_winner_update`): add 1 to :attr:`update_count` and append
        :meth:`get_convergence` of the updated weights to :attr:`convergence_history`."""
        self._update_count += 1
        self._history.append(self.get_convergence(weights))

    def update_weights_for_winner(
        self,
        weights: Tensor,
        pre_spike_times: Tensor,
        post_spike_time: Union[float, Tensor],
        winner_y: int,
        winner_x: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        inplace: bool = True,
    ) -> Tensor:
        """Apply one winner's STDP step to its channel's kernel.

        Parameters
        ----------
        weights : Tensor
            ``[C_in, k, k]`` kernel of the winning feature map.
        pre_spike_times : Tensor
            ``[C_in, H, W]`` first-spike times of the input.
        post_spike_time : float or Tensor
            The winner's spike time (finite).
        winner_y, winner_x : int
            The winner's output position.
        kernel_size, stride, padding : int
            Geometry of the convolution.
        inplace : bool
            Update ``weights`` in place (default) or return a new tensor.

        Returns
        -------
        Tensor
            The updated weights, clamped to the bounds.
        """
        check_tensor("weights", weights, 3, "[C_in, k, k]")
        check_tensor("pre_spike_times", pre_spike_times, 3, "[C_in, H, W]")
        if weights.shape[1:] != (kernel_size, kernel_size) or weights.shape[0] != pre_spike_times.shape[0]:
            raise ValueError(
                f"weights must have shape [C_in={pre_spike_times.shape[0]}, {kernel_size}, {kernel_size}], "
                f"got {tuple(weights.shape)}"
            )
        field = extract_receptive_field_times(pre_spike_times, winner_y, winner_x, kernel_size, stride, padding)
        delta = self.compute_update(weights, field.to(weights.dtype), post_spike_time)
        target = weights if inplace else weights.clone()
        return self.apply_update(target, delta)

    def get_convergence(self, weights: Tensor) -> float:
        """Convergence metric of ``weights`` normalised to the configured bounds."""
        check_tensor("weights", weights)
        if weights.numel() == 0:
            return 0.0
        cfg = self.config
        flat = weights.detach().reshape(1, -1)
        return float(channel_convergence(flat, cfg.weight_min, cfg.weight_max)[0])

    def has_converged(self, weights: Tensor) -> bool:
        """``get_convergence(weights) < config.convergence_threshold``."""
        return self.get_convergence(weights) < self.config.convergence_threshold

    def reset_stats(self) -> None:
        """Clear :attr:`update_count` and :attr:`convergence_history`."""
        self._update_count = 0
        self._history = []

    @property
    def update_count(self) -> int:
        """Number of applied updates since the last :meth:`reset_stats`."""
        return self._update_count

    @property
    def convergence_history(self) -> List[float]:
        """Convergence metric after each applied update (a copy)."""
        return list(self._history)
