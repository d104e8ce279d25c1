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
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ._checks import (
    check_binary,
    check_enum,
    check_float,
    check_int,
    check_not_nan,
    check_same_device,
    check_shape_tuple,
    check_spike_times,
    check_tensor,
)
from ._indexing import nonzero_indices
from .threshold import AdaptiveThreshold
from .timing import get_first_spike_times

__all__ = [
    "WTAMode",
    "WTAConfig",
    "WTAInhibition",
    "select_winners",
    "select_winners_among",
    "find_wta_winner",
    "apply_lateral_inhibition",
]


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
        if not isinstance(self.pointwise_inhibition, bool):
            raise TypeError(f"pointwise_inhibition must be a bool, got {self.pointwise_inhibition!r}")


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
    if not isinstance(pointwise, bool):
        raise TypeError(f"pointwise must be a bool, got {type(pointwise).__name__}")

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


def find_wta_winner(
    output_spikes: Tensor, potentials: Optional[Tensor] = None
) -> Tuple[Optional[int], Optional[Tuple[int, int]], Optional[float]]:
    """The single earliest-spiking neuron of one sample.

    Parameters
    ----------
    output_spikes : Tensor
        Binary ``[T, C, H, W]`` spikes.
    potentials : Tensor, optional
        ``[C, H, W]`` potentials breaking ties (highest first, then lowest flat index).

    Returns
    -------
    tuple
        ``(channel, (y, x), time)``, or ``(None, None, None)`` when nothing fired.
    """
    check_tensor("output_spikes", output_spikes, 4, "[T, C, H, W]")
    times = get_first_spike_times(output_spikes).float()
    if potentials is None:
        potentials = torch.zeros_like(times)
    else:
        check_tensor("potentials", potentials, 3, "[C, H, W]")
        if potentials.shape != times.shape:
            raise ValueError(
                f"potentials must have shape {tuple(times.shape)} (the [C, H, W] of output_spikes), "
                f"got {tuple(potentials.shape)}"
            )
        check_not_nan("potentials", potentials)
    if not bool(torch.isfinite(times).any()):
        return None, None, None
    rank = _candidate_rank(times[None], potentials[None].to(times.device))[0]
    flat = int(rank.reshape(-1).argmin())
    _, height, width = times.shape
    channel, rest = divmod(flat, height * width)
    y, x = divmod(rest, width)
    return channel, (y, x), float(times[channel, y, x])


def apply_lateral_inhibition(
    potentials: Tensor, winner_map: int, winner_y: int, winner_x: int, inplace: bool = True
) -> Tensor:
    """Zero every channel's potential at the winner's position.

    Parameters
    ----------
    potentials : Tensor
        ``[C, H, W]`` potentials.
    winner_map : int
        The winning channel (validated against ``C``; the zeroing covers every channel).
    winner_y, winner_x : int
        The winner's position.
    inplace : bool
        Modify ``potentials`` (default) or a copy.
    """
    check_tensor("potentials", potentials, 3, "[C, H, W]")
    channels, height, width = potentials.shape
    winner_map = check_int("winner_map", winner_map, minimum=0)
    if winner_map >= channels:
        raise ValueError(f"winner_map must be in [0, {channels}), got {winner_map}")
    winner_y = check_int("winner_y", winner_y, minimum=0)
    winner_x = check_int("winner_x", winner_x, minimum=0)
    if winner_y >= height or winner_x >= width:
        raise ValueError(
            f"(winner_y, winner_x) must lie in the {height}x{width} map, got ({winner_y}, {winner_x})"
        )
    out = potentials if inplace else potentials.clone()
    out[:, winner_y, winner_x] = 0
    return out


class WTAInhibition(nn.Module):
    """Winner-take-all layer: keeps only the winners' spikes.

    Parameters
    ----------
    config : WTAConfig, optional
        Mode, radius, ``k_winners`` and homeostasis settings.
    n_channels : int, optional
        Number of channels; with ``spatial_shape`` it enables adaptive thresholds when
        ``config.enable_homeostasis`` is set.
    spatial_shape : tuple of int, optional
        ``(H, W)`` of each feature map.
    initial_threshold : float
        Starting adaptive threshold.
    device : torch.device, optional
        Device of the adaptive thresholds.

    Notes
    -----
    Firing decision: with a ``threshold`` argument, or with adaptive thresholds, a neuron
    fires where its membrane (pre-reset when given) reaches the threshold; otherwise the
    ``spikes`` argument is used as is. In training mode the adaptive thresholds are updated
    with each forward's winner mask.
    """

    def __init__(
        self,
        config: Optional[WTAConfig] = None,
        n_channels: Optional[int] = None,
        spatial_shape: Optional[Sequence[int]] = None,
        initial_threshold: float = 10.0,
        device: Optional[Union[str, torch.device]] = None,
    ) -> None:
        super().__init__()
        if config is None:
            config = WTAConfig()
        if not isinstance(config, WTAConfig):
            raise TypeError(f"config must be a WTAConfig, got {type(config).__name__}")
        self.config = config
        self.adaptive: Optional[AdaptiveThreshold] = None
        if n_channels is not None:
            check_int("n_channels", n_channels, minimum=1)
        if spatial_shape is not None:
            spatial_shape = check_shape_tuple("spatial_shape", spatial_shape)
            if len(spatial_shape) != 2:
                raise ValueError(f"spatial_shape must be (H, W), got {spatial_shape}")
        if config.enable_homeostasis and n_channels is not None and spatial_shape is not None:
            self.adaptive = AdaptiveThreshold(
                n_channels, spatial_shape, initial_threshold, config.target_rate, config.homeostasis_lr,
                config.threshold_min, config.threshold_max, device=device,
            )
        self._winner_mask: Optional[Tensor] = None
        self.register_buffer("n_winners", torch.zeros((), dtype=torch.long, device=device))
        self.register_buffer("n_candidates", torch.zeros((), dtype=torch.long, device=device))

    def forward(
        self,
        spikes: Tensor,
        membrane: Tensor,
        pre_reset_membrane: Optional[Tensor] = None,
        threshold: Optional[Union[float, Tensor]] = None,
    ) -> Tuple[Tensor, Tensor]:
        """Keep the winners' spikes.

        Parameters
        ----------
        spikes : Tensor
            ``[N, C, H, W]`` (single step) or ``[T, N, C, H, W]`` (multi-step) binary spikes.
        membrane : Tensor
            Membrane potentials, same shape.
        pre_reset_membrane : Tensor, optional
            Potentials before the spike reset, same shape; preferred for ties.
        threshold : float or Tensor, optional
            Firing threshold overriding the adaptive thresholds.

        Returns
        -------
        filtered_spikes : Tensor
            Same shape as ``spikes``, only the winners' spikes.
        winner_mask : Tensor
            Bool ``[N, C, H, W]``.
        """
        check_tensor("spikes", spikes, (4, 5), "[N, C, H, W] or [T, N, C, H, W]")
        check_tensor("membrane", membrane, (4, 5), "[N, C, H, W] or [T, N, C, H, W]")
        if membrane.shape != spikes.shape:
            raise ValueError(
                f"membrane must have the shape of spikes {tuple(spikes.shape)}, got {tuple(membrane.shape)}"
            )
        if pre_reset_membrane is not None:
            check_tensor("pre_reset_membrane", pre_reset_membrane, spikes.dim())
            if pre_reset_membrane.shape != spikes.shape:
                raise ValueError(
                    f"pre_reset_membrane must have the shape of spikes {tuple(spikes.shape)}, "
                    f"got {tuple(pre_reset_membrane.shape)}"
                )
        check_same_device(spikes=spikes, membrane=membrane, pre_reset_membrane=pre_reset_membrane)
        potential = membrane if pre_reset_membrane is None else pre_reset_membrane
        check_not_nan("membrane", potential)
        fired = self._fired(spikes, potential, threshold)
        multi_step = spikes.dim() == 5
        if multi_step:
            times = get_first_spike_times(fired)
            step = times.nan_to_num(posinf=0.0).long().clamp(max=spikes.shape[0] - 1)
            tie_potential = potential.gather(0, step[None]).squeeze(0).float()
        else:
            times = torch.where(fired, 0.0, float("inf")).float()
            tie_potential = potential.float()
        cfg = self.config
        mask = select_winners(times, tie_potential, cfg.mode, cfg.local_radius, cfg.k_winners,
                              pointwise=cfg.pointwise_inhibition)
        filtered = fired.to(spikes.dtype) * mask.to(spikes.dtype)
        if cfg.track_statistics:
            self.n_winners += mask.sum()
            self.n_candidates += torch.isfinite(times).sum()
        if self.training and self.adaptive is not None:
            self.adaptive.update(mask)
        self._winner_mask = mask
        return filtered, mask

    def _fired(self, spikes: Tensor, potential: Tensor, threshold: Optional[Union[float, Tensor]]) -> Tensor:
        if threshold is None and self.adaptive is not None:
            threshold = self.adaptive.thresholds
        if threshold is None:
            check_binary("spikes", spikes)
            return spikes != 0
        if isinstance(threshold, Tensor):
            check_not_nan("threshold", threshold)
        else:
            threshold = check_float("threshold", threshold)
        return potential >= threshold

    def get_winner_mask(self) -> Optional[Tensor]:
        """Winner mask of the last forward, ``None`` before any."""
        return self._winner_mask

    def get_thresholds(self, batch_size: int = 1) -> Optional[Tensor]:
        """Adaptive thresholds ``[batch_size, C, H, W]``, ``None`` when homeostasis is off."""
        if self.adaptive is None:
            return None
        return self.adaptive.get_thresholds(batch_size)

    def reset_statistics(self) -> None:
        """Forget the winner/candidate counts and the adaptive firing rates."""
        self.n_winners.zero_()
        self.n_candidates.zero_()
        if self.adaptive is not None:
            self.adaptive.reset_statistics()

    @property
    def winner_ratio(self) -> float:
        """Winners divided by spiking candidates since :meth:`reset_statistics` (0.0 before any)."""
        candidates = int(self.n_candidates)
        return int(self.n_winners) / candidates if candidates else 0.0

    def extra_repr(self) -> str:
        cfg = self.config
        return f"mode={cfg.mode.name}, local_radius={cfg.local_radius}, k_winners={cfg.k_winners}"
