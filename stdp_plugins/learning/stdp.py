"""First-spike-time STDP (Kheradpisheh et al. 2018, eq. 3): the configuration and the rule.

The rule only looks at the sign of ``t_post - t_pre``: a synapse whose input fired at or
before the winner's spike is potentiated by ``lr_plus * f(w)``, every other synapse
(later input, an input that never fired, padding) is depressed by ``lr_minus * f(w)``.
``f(w) = (w - w_min)(w_max - w)`` for the multiplicative rule and ``1`` for the additive one.
Batches of winners are in :mod:`.batch_stdp`, the stateful learner in :mod:`.learner`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from enum import Enum
from typing import Union

import torch
from torch import Tensor

from ._checks import (
    check_enum,
    check_float,
    check_learning_rate,
    check_same_device,
    check_spike_time,
    check_tensor,
    check_values,
    finite_probe,
    spike_time_probe,
)

__all__ = ["STDPVariant", "STDPConfig", "stdp_weight_factor", "compute_stdp_update"]

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

    Raises
    ------
    TypeError, ValueError
        For a non-tensor or non-finite ``weights``, an unknown ``variant`` or bounds that
        are not finite with ``weight_min < weight_max``.
    """
    check_tensor("weights", weights)
    check_values(finite_probe("weights", weights))
    variant = check_enum("variant", variant, STDPVariant)
    weight_min, weight_max = _check_bounds(weight_min, weight_max)
    return _weight_factor(weights, variant, weight_min, weight_max)


def _check_bounds(weight_min: object, weight_max: object) -> tuple[float, float]:
    weight_min = check_float("weight_min", weight_min)
    weight_max = check_float("weight_max", weight_max)
    if weight_min >= weight_max:
        raise ValueError(f"weight_min must be < weight_max, got {weight_min} and {weight_max}")
    return weight_min, weight_max


def _weight_factor(weights: Tensor, variant: STDPVariant, weight_min: float, weight_max: float) -> Tensor:
    """:func:`stdp_weight_factor` without checks (for validated inputs)."""
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
    factor = _weight_factor(weights, variant, weight_min, weight_max)
    return factor * _signed_rate(fraction, lr_plus, lr_minus)


def _signed_rate(fraction: Tensor, lr_plus: LearningRate, lr_minus: LearningRate) -> Tensor:
    """``a+ * frac - a- * (1 - frac)``, the step per unit of ``f(w)``."""
    return (lr_plus + lr_minus) * fraction - lr_minus


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
    t_post = check_spike_time("post_spike_time", post_spike_time)
    lr_plus = check_learning_rate("lr_plus", lr_plus)
    lr_minus = check_learning_rate("lr_minus", lr_minus)
    variant = check_enum("variant", variant, STDPVariant)
    weight_min, weight_max = _check_bounds(weight_min, weight_max)
    check_values(finite_probe("weights", weights), spike_time_probe("pre_spike_times", pre_spike_times))
    potentiates = (pre_spike_times <= t_post).to(weights.dtype)
    return _delta_from_fraction(weights, potentiates, lr_plus, lr_minus, variant, weight_min, weight_max)
