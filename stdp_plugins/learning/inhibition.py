"""Winner-take-all on single samples and as a module: :func:`find_wta_winner`,
:func:`apply_lateral_inhibition` and :class:`WTAInhibition`, built on the greedy rule of
:func:`~stdp_plugins.learning.select_winners` (the spec page's 'Winner-take-all')."""

from __future__ import annotations

from typing import Optional, Sequence, Tuple, Union

import torch
from torch import Tensor, nn

from ._checks import (
    check_binary,
    check_bool,
    check_device,
    check_float,
    check_int,
    check_not_nan,
    check_same_device,
    check_shape_tuple,
    check_tensor,
)
from .threshold import AdaptiveThreshold
from .timing import _first_spike_times, get_first_spike_times
from .wta import WTAConfig, _candidate_rank, select_winners

__all__ = ["WTAInhibition", "find_wta_winner", "apply_lateral_inhibition"]


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
    times = _first_spike_times("output_spikes", output_spikes).float()
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
    check_bool("inplace", inplace)
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
        check_float("initial_threshold", initial_threshold, minimum=0.0, strict_min=True)
        device = check_device("device", device)
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
        check_not_nan("membrane" if pre_reset_membrane is None else "pre_reset_membrane", potential)
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
            neurons = tuple(self.adaptive.thresholds.shape)
            if tuple(spikes.shape[-3:]) != neurons:
                raise ValueError(
                    f"spikes must end in the layer's neuron shape {neurons} (its adaptive thresholds), "
                    f"got shape {tuple(spikes.shape)}"
                )
            threshold = self.adaptive.thresholds
        if threshold is None:
            check_binary("spikes", spikes)
            return spikes != 0
        if isinstance(threshold, Tensor):
            try:
                fits = torch.broadcast_shapes(threshold.shape, spikes.shape) == spikes.shape
            except RuntimeError:
                fits = False
            if not fits:
                raise ValueError(
                    f"threshold must broadcast to the shape of spikes {tuple(spikes.shape)}, "
                    f"got shape {tuple(threshold.shape)}"
                )
            check_not_nan("threshold", threshold)
        else:
            threshold = check_float("threshold", threshold)
        return potential >= threshold

    def get_winner_mask(self) -> Optional[Tensor]:
        """Winner mask of the last forward, ``None`` before any."""
        return self._winner_mask

    def get_thresholds(self, batch_size: int = 1) -> Optional[Tensor]:
        """Adaptive thresholds ``[batch_size, C, H, W]``, ``None`` when homeostasis is off."""
        batch_size = check_int("batch_size", batch_size, minimum=1)
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
