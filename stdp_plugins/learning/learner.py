"""The stateful STDP learner of the API page: a configuration, bookkeeping and convergence."""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import Tensor

from ._checks import (
    check_bool,
    check_device,
    check_finite,
    check_floating_dtype,
    check_tensor,
    check_values,
    finite_probe,
)
from .batch_stdp import batch_stdp_update
from .convergence import channel_convergence
from .stdp import LearningRate, STDPConfig, compute_stdp_update
from .timing import _check_geometry, _receptive_field_times

__all__ = ["STDPLearner"]


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
        device = check_device("device", device)
        dtype = check_floating_dtype("dtype", dtype)
        if generator is not None and not isinstance(generator, torch.Generator):
            raise TypeError(f"generator must be a torch.Generator or None, got {type(generator).__name__}")
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
        to :attr:`update_count` and appends the convergence metric to the history. Both
        tensors must be finite (checked before ``weights`` is touched).
        """
        check_tensor("weights", weights)
        check_tensor("delta", delta)
        if delta.shape != weights.shape:
            raise ValueError(f"delta must have the shape of weights {tuple(weights.shape)}, got {tuple(delta.shape)}")
        check_values(finite_probe("weights", weights), finite_probe("delta", delta))
        return self._apply_checked(weights, delta)

    def _apply_checked(self, weights: Tensor, delta: Tensor) -> Tensor:
        with torch.no_grad():
            weights.add_(delta).clamp_(self.config.weight_min, self.config.weight_max)
        self.record_update(weights)
        return weights

    def record_update(self, weights: Tensor) -> None:
        """Count an update applied to ``weights`` elsewhere (e.g. by
        :func:`stdp_plugins.fused_winner_update`): add 1 to :attr:`update_count` and append
        :meth:`get_convergence` of the updated weights to :attr:`convergence_history`
        (which rejects non-finite ``weights``)."""
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
        kernel_size, stride, padding = _check_geometry(kernel_size, stride, padding)
        check_bool("inplace", inplace)
        if weights.shape[1:] != (kernel_size, kernel_size) or weights.shape[0] != pre_spike_times.shape[0]:
            raise ValueError(
                f"weights must have shape [C_in={pre_spike_times.shape[0]}, {kernel_size}, {kernel_size}] "
                f"(the channels of pre_spike_times and kernel_size), got {tuple(weights.shape)}"
            )
        field = _receptive_field_times(pre_spike_times, winner_y, winner_x, kernel_size, stride, padding,
                                       names=("winner_y", "winner_x"))
        delta = self.compute_update(weights, field.to(weights.dtype), post_spike_time)  # checks the weights
        target = weights if inplace else weights.clone()
        return self._apply_checked(target, delta)

    def get_convergence(self, weights: Tensor) -> float:
        """Convergence metric of ``weights`` normalised to the configured bounds.

        Raises ``ValueError`` for weights with NaN or inf entries (checked in the same
        device-to-host transfer that reads the metric).
        """
        check_tensor("weights", weights)
        if weights.numel() == 0:
            return 0.0
        cfg = self.config
        flat = weights.detach().reshape(1, -1)
        metric = channel_convergence(flat, cfg.weight_min, cfg.weight_max)[0]
        metric, finite = torch.stack((metric, torch.isfinite(flat).all().to(metric.dtype))).tolist()
        if not finite:
            check_finite("weights", weights)  # raises, with the package's message
        return metric

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
