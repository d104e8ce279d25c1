"""Winner-take-all inhibition (global, local, both, k winners).

One greedy rule covers every mode. Candidates are the neurons that fired, ordered by
earliest spike time, ties by highest membrane potential, then lowest flat index. Walking
that order, a candidate is accepted unless an already accepted winner blocks it:
``GLOBAL`` blocks the rest of the winner's feature map, ``LOCAL`` blocks every channel
within Chebyshev distance ``local_radius`` of the winner, ``BOTH`` blocks both. At most
``k_winners`` are accepted per sample.

:func:`select_winners` computes exactly that walk for a whole batch without a Python loop
over samples or candidates. With a small cap ``k`` it walks all samples at once in ``k``
vectorised steps over their spiking candidates. Otherwise it uses that blocking is
symmetric: the walk's result is the lexicographically first maximal independent set of the
"blocks" graph, built in rounds that accept every candidate ranked first among the live
candidates that could block it; the cap keeps the ``k`` best-ranked of those winners,
which are the first ``k`` the walk would accept. Pointwise inhibition (``LOCAL``, radius 0,
no cap) is three reductions over the channels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum
from typing import Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from ._checks import (
    check_bool,
    check_enum,
    check_float,
    check_int,
    check_not_nan,
    check_same_device,
    check_spike_times,
    check_tensor,
)
from ._indexing import nonzero_indices

__all__ = ["WTAMode", "WTAConfig", "select_winners", "select_winners_among"]


class WTAMode(Enum):
    """Which neurons an accepted winner inhibits."""

    GLOBAL = "global"
    """The rest of the winner's feature map (one winner per channel)."""
    LOCAL = "local"
    """Every channel within Chebyshev distance ``local_radius`` of the winner."""
    BOTH = "both"
    """Both of the above (Kheradpisheh 2018 / SpykeTorch's k-winners rule)."""


@dataclass
class WTAConfig:
    """Settings of :class:`WTAInhibition`.

    Attributes
    ----------
    mode : WTAMode
        ``GLOBAL``, ``LOCAL`` or ``BOTH`` (a name string is accepted).
    local_radius : int
        Inhibition radius of ``LOCAL`` / ``BOTH`` (0 = pointwise).
    enable_homeostasis : bool
        Keep adaptive per-neuron thresholds (needs ``n_channels`` and ``spatial_shape``).
    target_rate, homeostasis_lr, threshold_min, threshold_max : float
        Parameters of the :class:`AdaptiveThreshold`.
    track_statistics : bool
        Count winners and candidates for :attr:`WTAInhibition.winner_ratio`.
    k_winners : int, optional
        Cap on winners per sample (``None`` = no cap).
    pointwise_inhibition : bool
        Before the walk, keep at each position only the earliest neuron (ties to the
        highest potential, then the lowest channel) as a candidate: Kheradpisheh et al.'s
        pointwise inhibition, which SpykeTorch applies before its k-winner selection.
    """

    mode: WTAMode = WTAMode.GLOBAL
    local_radius: int = 2
    enable_homeostasis: bool = True
    target_rate: float = 0.1
    homeostasis_lr: float = 0.001
    threshold_min: float = 1.0
    threshold_max: float = 100.0
    track_statistics: bool = True
    k_winners: Optional[int] = None
    pointwise_inhibition: bool = False

    def __post_init__(self) -> None:
        self.mode = check_enum("mode", self.mode, WTAMode)
        self.local_radius = check_int("local_radius", self.local_radius, minimum=0)
        check_bool("enable_homeostasis", self.enable_homeostasis)
        check_bool("track_statistics", self.track_statistics)
        self.target_rate = check_float("target_rate", self.target_rate, minimum=0.0, maximum=1.0)
        self.homeostasis_lr = check_float("homeostasis_lr", self.homeostasis_lr, minimum=0.0)
        self.threshold_min = check_float("threshold_min", self.threshold_min, minimum=0.0, strict_min=True)
        self.threshold_max = check_float("threshold_max", self.threshold_max)
        if self.threshold_min >= self.threshold_max:
            raise ValueError(
                f"threshold_min must be < threshold_max, got {self.threshold_min} and {self.threshold_max}"
            )
        if self.k_winners is not None:
            self.k_winners = check_int("k_winners", self.k_winners, minimum=1)
        check_bool("pointwise_inhibition", self.pointwise_inhibition)


def _candidate_rank(spike_times: Tensor, potentials: Tensor) -> Tensor:
    """Rank of every neuron of each sample in the walk order (0 = first)."""
    n = spike_times.shape[0]
    flat_t = spike_times.reshape(n, -1)
    flat_p = potentials.reshape(n, -1)
    by_potential = torch.argsort(flat_p, dim=1, descending=True, stable=True)
    by_time = torch.argsort(flat_t.gather(1, by_potential), dim=1, stable=True)
    order = by_potential.gather(1, by_time)
    rank = torch.empty_like(order)
    positions = torch.arange(order.shape[1], device=order.device).expand(n, -1)
    rank.scatter_(1, order, positions)
    return rank.view(spike_times.shape)


def _spatial_dilate_min(key: Tensor, radius: int) -> Tensor:
    """Minimum of ``key`` [N, 1, H, W] over each (2r+1)^2 window."""
    if radius == 0:
        return key
    return -F.max_pool2d(-key, 2 * radius + 1, stride=1, padding=radius)


def _neighbourhood_min(key: Tensor, mode: WTAMode, radius: int) -> Tensor:
    """For each neuron, the smallest key among the neurons that could block it."""
    parts = []
    if mode in (WTAMode.GLOBAL, WTAMode.BOTH):
        parts.append(key.amin(dim=(2, 3), keepdim=True).expand_as(key))
    if mode in (WTAMode.LOCAL, WTAMode.BOTH):
        parts.append(_spatial_dilate_min(key.amin(dim=1, keepdim=True), radius).expand_as(key))
    return parts[0] if len(parts) == 1 else torch.minimum(parts[0], parts[1])


def _blocked_by(winners: Tensor, mode: WTAMode, radius: int) -> Tensor:
    """Neurons blocked by the given winners."""
    blocked = torch.zeros_like(winners)
    if mode in (WTAMode.GLOBAL, WTAMode.BOTH):
        blocked |= winners.any(dim=3, keepdim=True).any(dim=2, keepdim=True)
    if mode in (WTAMode.LOCAL, WTAMode.BOTH):
        any_channel = winners.any(dim=1, keepdim=True)
        if radius > 0:
            any_channel = F.max_pool2d(any_channel.to(torch.float32), 2 * radius + 1, stride=1, padding=radius) > 0
        blocked |= any_channel
    return blocked


def _checked_times_and_potentials(spike_times: Tensor, potentials: Optional[Tensor]) -> Tensor:
    """Validate ``[N, C, H, W]`` spike times and matching potentials (zeros when ``None``);
    the potentials' values are left to the caller, which knows which of them it reads."""
    check_tensor("spike_times", spike_times, 4, "[N, C, H, W]")
    check_spike_times("spike_times", spike_times)
    if potentials is None:
        potentials = torch.zeros_like(spike_times)
    else:
        check_tensor("potentials", potentials, 4, "[N, C, H, W]")
        if potentials.shape != spike_times.shape:
            raise ValueError(
                f"potentials must have the shape of spike_times {tuple(spike_times.shape)}, "
                f"got {tuple(potentials.shape)}"
            )
        check_same_device(spike_times=spike_times, potentials=potentials)
    return potentials


def select_winners(
    spike_times: Tensor,
    potentials: Optional[Tensor] = None,
    mode: Union[WTAMode, str] = WTAMode.GLOBAL,
    radius: int = 0,
    k_winners: Optional[int] = None,
    *,
    pointwise: bool = False,
) -> Tensor:
    """Winner mask of the greedy WTA rule for a whole batch.

    Parameters
    ----------
    spike_times : Tensor
        ``[N, C, H, W]`` first-spike times; ``inf`` marks a neuron that did not fire.
    potentials : Tensor, optional
        ``[N, C, H, W]`` membrane potentials breaking ties in spike time (higher first).
    mode : WTAMode
        Blocking rule.
    radius : int
        Chebyshev radius of ``LOCAL`` / ``BOTH`` blocking (0 = same position only).
    k_winners : int, optional
        Cap on winners per sample.
    pointwise : bool
        Pointwise inhibition first: only the neuron :func:`select_winners` with ``LOCAL``
        mode and radius 0 picks at each position remains a candidate.

    Returns
    -------
    Tensor
        Bool ``[N, C, H, W]``.
    """
    potentials = _checked_times_and_potentials(spike_times, potentials)
    check_not_nan("potentials", potentials)
    mode = check_enum("mode", mode, WTAMode)
    radius = check_int("radius", radius, minimum=0)
    if k_winners is not None:
        k_winners = check_int("k_winners", k_winners, minimum=1)
    check_bool("pointwise", pointwise)

    if spike_times.shape[0] == 0 or spike_times[0].numel() == 0:
        return torch.zeros_like(spike_times, dtype=torch.bool)
    if pointwise:
        survivors = _pointwise_winners(spike_times, potentials)
        if k_winners is not None and k_winners <= _WALK_MAX_K:
            return _walk(spike_times, potentials, nonzero_indices(survivors), mode, radius, k_winners, True)
        spike_times = torch.where(survivors, spike_times, math.inf)
    if mode is WTAMode.LOCAL and radius == 0 and k_winners is None:
        return _pointwise_winners(spike_times, potentials)
    if k_winners is not None and k_winners <= _WALK_MAX_K:
        return _walk_winners(spike_times, potentials, mode, radius, k_winners)
    return _round_winners(spike_times, potentials, mode, radius, k_winners)


#: Up to this many winners per sample, :func:`select_winners` walks the candidates of the
#: whole batch in ``k`` vectorised steps; beyond it, it builds the independent set in rounds.
_WALK_MAX_K = 32


def _pointwise_winners(spike_times: Tensor, potentials: Tensor) -> Tensor:
    """``LOCAL`` mode with radius 0 and no cap: at each position the first-ranked neuron
    (earliest, then highest potential, then lowest channel) wins; three channel
    reductions instead of a sort."""
    channels = spike_times.shape[1]
    earliest = spike_times.amin(dim=1, keepdim=True)
    tied = spike_times == earliest  # inf == inf at silent positions: masked out below
    best = torch.where(tied, potentials, -math.inf).amax(dim=1, keepdim=True)
    tied &= potentials == best
    index = torch.arange(channels, dtype=torch.float32, device=spike_times.device).view(1, -1, 1, 1)
    first = torch.where(tied, index, float(channels)).amin(dim=1, keepdim=True)
    return (index == first) & torch.isfinite(earliest)


def _walk_winners(spike_times: Tensor, potentials: Tensor, mode: WTAMode, radius: int, k: int) -> Tensor:
    """The walk over every spiking neuron (``nonzero`` lists them in flat order)."""
    candidates = nonzero_indices(torch.isfinite(spike_times))
    return _walk(spike_times, potentials, candidates, mode, radius, k, in_flat_order=True)


def _walk(
    spike_times: Tensor,
    potentials: Tensor,
    candidates: Tuple[Tensor, Tensor, Tensor, Tensor],
    mode: WTAMode,
    radius: int,
    k: int,
    in_flat_order: bool,
) -> Tensor:
    """The walk itself, on the candidates only: ``k`` vectorised steps over the batch, each
    accepting every sample's first live candidate and removing what it blocks."""
    n, channels, height, width = spike_times.shape
    per_sample = channels * height * width
    sample, c, yy, xx = candidates
    mask = torch.zeros(n * per_sample, dtype=torch.bool, device=spike_times.device)
    if sample.numel() == 0:
        return mask.view(spike_times.shape)
    flat = (c * height + yy) * width + xx
    # Stable sorts by flat index, potential (descending), time and sample give the walk
    # order of every sample, samples one after the other.
    order = torch.arange(flat.numel(), device=flat.device) if in_flat_order else torch.argsort(flat, stable=True)
    order = order[torch.argsort(potentials[sample, c, yy, xx][order], descending=True, stable=True)]
    order = order[torch.argsort(spike_times[sample, c, yy, xx][order], stable=True)]
    order = order[torch.argsort(sample[order], stable=True)]
    sample, flat = sample[order], flat[order]
    counts = torch.bincount(sample, minlength=n)
    slot = torch.arange(sample.numel(), device=sample.device) - (torch.cumsum(counts, 0) - counts)[sample]
    columns = int(counts.max())
    index = torch.full((n, columns), -1, dtype=torch.long, device=sample.device)
    index[sample, slot] = flat
    remaining = index >= 0
    channel, y, x = index // (height * width), index // width % height, index % width
    rows = torch.arange(n, device=sample.device)
    for _ in range(k):
        live = remaining.any(dim=1)
        pick = remaining.to(torch.uint8).argmax(dim=1)
        mask[(rows * per_sample + index[rows, pick])[live]] = True
        blocked = torch.zeros_like(remaining)
        if mode in (WTAMode.GLOBAL, WTAMode.BOTH):
            blocked |= channel == channel[rows, pick, None]
        if mode in (WTAMode.LOCAL, WTAMode.BOTH):
            blocked |= ((y - y[rows, pick, None]).abs() <= radius) & ((x - x[rows, pick, None]).abs() <= radius)
        remaining &= ~(blocked & live[:, None])
    return mask.view(spike_times.shape)


def select_winners_among(
    spike_times: Tensor,
    potentials: Optional[Tensor],
    candidates: Tuple[Tensor, Tensor, Tensor, Tensor],
    mode: Union[WTAMode, str],
    radius: int,
    k_winners: int,
) -> Tensor:
    """:func:`select_winners` restricted to a sparse list of candidates.

    Equal to ``select_winners(where(mask, spike_times, inf), potentials, mode, radius,
    k_winners)`` where ``mask`` marks the candidates, without touching the other neurons:
    the cost grows with the number of candidates, not with the size of the layer. Used
    after pointwise inhibition, which leaves at most one candidate per position.

    Parameters
    ----------
    spike_times, potentials : Tensor
        ``[N, C, H, W]`` first-spike times and tie-breaking potentials (``None``: no ties
        by potential).
    candidates : tuple of Tensor
        ``(sample, channel, y, x)``: 1-D int64 index tensors of equal length, in any order,
        without repeats (as ``mask.nonzero(as_tuple=True)`` returns them). Candidates that
        never fired are ignored.
    mode : WTAMode
        Blocking rule.
    radius : int
        Chebyshev radius of ``LOCAL`` / ``BOTH`` blocking.
    k_winners : int
        Cap on winners per sample.

    Returns
    -------
    Tensor
        Bool winner mask ``[N, C, H, W]``.
    """
    potentials = _checked_times_and_potentials(spike_times, potentials)
    mode = check_enum("mode", mode, WTAMode)
    radius = check_int("radius", radius, minimum=0)
    k_winners = check_int("k_winners", k_winners, minimum=1)
    if not isinstance(candidates, (tuple, list)) or len(candidates) != 4:
        raise TypeError(f"candidates must be a tuple (sample, channel, y, x) of index tensors, got {candidates!r}")
    length = candidates[0].shape if isinstance(candidates[0], Tensor) else None
    for name, index, size in zip(("sample", "channel", "y", "x"), candidates, spike_times.shape):
        if not isinstance(index, Tensor) or index.dtype != torch.int64 or index.dim() != 1 or index.shape != length:
            raise TypeError(f"candidates[{name}] must be a 1-D int64 tensor like the others, got {index!r:.80}")
        if index.numel() and (int(index.min()) < 0 or int(index.max()) >= size):
            raise ValueError(f"candidates[{name}] must lie in [0, {size}), got values outside")
    sample, c, yy, xx = candidates
    fired = torch.isfinite(spike_times[sample, c, yy, xx])
    live = (sample[fired], c[fired], yy[fired], xx[fired])
    check_not_nan("potentials", potentials[live])  # only the candidates' potentials are read
    return _walk(spike_times, potentials, live, mode, radius, k_winners, in_flat_order=False)


def _round_winners(
    spike_times: Tensor, potentials: Tensor, mode: WTAMode, radius: int, k_winners: Optional[int]
) -> Tensor:
    """The walk's result built in rounds (see the module docstring), any ``k``."""
    n = spike_times.shape[0]
    per_sample = spike_times[0].numel()
    remaining = torch.isfinite(spike_times)
    accepted = torch.zeros_like(remaining)
    # Ranks are exact in float32 up to 2**24 neurons per sample, float64 beyond.
    key_dtype = torch.float32 if per_sample < 2**24 else torch.float64
    rank = _candidate_rank(spike_times, potentials).to(key_dtype)
    sentinel = torch.tensor(float(per_sample), dtype=key_dtype, device=rank.device)
    capped = k_winners is not None and k_winners < per_sample
    while bool(remaining.any()):
        key = torch.where(remaining, rank, sentinel)
        new = remaining & (key == _neighbourhood_min(key, mode, radius))
        accepted |= new
        remaining &= ~(new | _blocked_by(new, mode, radius))
        if capped:
            # A live candidate ranked after the k-th winner so far can never make the cut.
            kth = torch.where(accepted, rank, sentinel).view(n, -1).kthvalue(k_winners, dim=1).values
            remaining &= rank < kth.view(n, 1, 1, 1)
    if capped:
        kth = torch.where(accepted, rank, sentinel).view(n, -1).kthvalue(k_winners, dim=1).values
        accepted &= rank <= kth.view(n, 1, 1, 1)
    return accepted
