"""The shared first-spike STDP learner of the SpikingJelly and snnTorch adapters."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from dataclasses import replace
from typing import Any, List, Optional, Tuple

import torch
from torch import Tensor, nn
from torch.utils.hooks import RemovableHandle

from ..backends import REDUCTIONS, first_spike_times, select_winners
from ..distributed import distributed_winner_update
from ..learning import STDPConfig, STDPLearner, WTAConfig
from ..learning._checks import check_float
from .synapse import as_feature_maps, synapse_geometry

__all__ = ["FirstSpikeLearner", "STEP_MODES"]

STEP_MODES = ("s", "m")


def _concat(records: List[Tensor]) -> Tensor:
    """Records joined along time (a single record is used as it is, without a copy)."""
    return records[0] if len(records) == 1 else torch.cat(records)


class FirstSpikeLearner(ABC):
    """First-spike STDP for one synapse and the neuron after it (the shared adapter).

    Hooks record the synapse's input and the neuron's output. One call of :meth:`step`
    turns the recorded window (every forward since the last :meth:`step` or
    :meth:`reset`, concatenated along time) into Kheradpisheh's update:

    1. first-spike times of the input and of the neuron output;
    2. winners of the greedy WTA rule (``wta``), ties broken by the membrane potential at
       each neuron's first-spike step where the framework exposes it;
    3. the core's per-channel averaged delta
       (:meth:`stdp_plugins.learning.STDPLearner.compute_batch_update`).

    Subclasses supply :meth:`_read_post` and may override :meth:`_is_fresh` and
    :meth:`_post_is_filtered`.

    Parameters
    ----------
    step_mode : str
        ``"s"``: each forward is one time step ``[N, ...]``; ``"m"``: each forward is a
        time-major sequence ``[T, N, ...]``.
    synapse : nn.Module
        ``nn.Conv2d`` or ``nn.Linear`` whose ``weight`` learns (the bias never does).
    sn : nn.Module
        Module whose output holds the post-synaptic spikes: a spiking neuron, or a WTA
        layer right after it, whose surviving spikes are then exactly the winners (``wta``
        is not used).
    config : STDPConfig, optional
        Learning rates, bounds and variant; ``STDPConfig()`` when ``None``.
    wta : WTAConfig, optional
        Competition between the neurons; ``WTAConfig()`` (``GLOBAL``: at most one winner
        per feature map and sample) when ``None``. For a linear layer every neuron is its
        own map, so use ``LOCAL`` (radius 0 = one winner per sample) or ``k_winners``.
    name : str
        Name used in messages and by :class:`LearnerGroup`.
    reduction : {"sequential", "mean"}
        How the samples of a batch combine (:func:`~stdp_plugins.fused_winner_update`):
        ``"sequential"`` (default) applies each sample's step in turn, as
        one-image-at-a-time learning does, which the paper's accuracy needs at batch
        sizes above 1; ``"mean"`` applies one step averaged over the batch.
    backend : str
        Implementation of the dispatched operations (``"auto"``: native on the CPU, CuPy
        on CUDA where written, torch otherwise; see
        :func:`~stdp_plugins.backends.resolve_backend`).
    process_group : ProcessGroup, optional
        Data-parallel learning (:mod:`stdp_plugins.distributed`): each rank runs its shard
        of the batch, and every update is exactly the one-process update of the batch made
        of all ranks' shards in rank order, applied identically on every rank (the weights
        must start equal, and every rank calls :meth:`step` / :meth:`apply` with a recorded
        window, possibly of an empty shard). ``None``: this process's batch alone.
    """

    potential_is_drive = False
    """Whether :meth:`_read_post` reports the neuron's input, whose running sum over the
    window stands in for the membrane (exact for a non-leaky IF neuron before its first
    spike)."""

    def __init__(
        self,
        step_mode: str,
        synapse: nn.Module,
        sn: nn.Module,
        config: Optional[STDPConfig] = None,
        wta: Optional[WTAConfig] = None,
        name: str = "",
        reduction: str = "sequential",
        backend: str = "auto",
        process_group: Optional[Any] = None,
    ) -> None:
        if step_mode not in STEP_MODES:
            raise ValueError(f"step_mode must be 's' or 'm', got {step_mode!r}")
        if not isinstance(sn, nn.Module):
            raise TypeError(f"sn must be an nn.Module (the spiking neuron), got {type(sn).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        self.geometry = synapse_geometry(synapse, name)
        if wta is None:
            wta = WTAConfig()
        if not isinstance(wta, WTAConfig):
            raise TypeError(f"wta must be a WTAConfig or None, got {type(wta).__name__}")
        if not isinstance(reduction, str) or reduction not in REDUCTIONS:
            raise ValueError(f"reduction must be one of {', '.join(map(repr, REDUCTIONS))}, got {reduction!r}")
        self.core = STDPLearner(config)
        self.reduction = reduction
        self.backend = backend
        self.process_group = process_group
        self.wta = wta
        self.step_mode = step_mode
        self.synapse = synapse
        self.sn = sn
        self.name = name or type(synapse).__name__
        self.winner_mask: Optional[Tensor] = None
        self._pre: List[Tensor] = []
        self._post: List[Tensor] = []
        self._potential: List[Tensor] = []
        self._enabled = True
        self._closed = False
        self._handles: List[RemovableHandle] = [
            synapse.register_forward_hook(self._on_synapse),
            sn.register_forward_hook(self._on_neuron),
        ]
        self._weights_checked = False

    @property
    def config(self) -> STDPConfig:
        """The learner's :class:`~stdp_plugins.learning.STDPConfig`."""
        return self.core.config

    def set_learning_rates(self, lr_plus: float, lr_minus: float) -> None:
        """Change ``a+`` and ``a-`` for the following updates (e.g. a schedule that doubles
        them); the other settings stay. Raises ``ValueError`` for a negative rate."""
        self.core.config = replace(self.core.config, lr_plus=lr_plus, lr_minus=lr_minus)

    # --- framework hooks -------------------------------------------------------------
    @abstractmethod
    def _read_post(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> Tuple[Tensor, Optional[Tensor]]:
        """``(spikes, potential)`` of one neuron forward; ``potential`` may be ``None``."""

    def _is_fresh(self) -> bool:
        """Whether the neuron was reset since its last forward (a new window starts)."""
        return False

    def _post_is_filtered(self) -> bool:
        """Whether ``sn`` is a WTA layer, whose output spikes are exactly its winners."""
        return False

    def _on_synapse(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
        if not self._enabled:
            return
        if self._is_fresh():
            self.reset()
        self._pre.append(inputs[0].detach() != 0)

    def _on_neuron(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> None:
        if not self._enabled:
            return
        spikes, potential = self._read_post(module, inputs, output)
        self._post.append(spikes.detach() != 0)
        if potential is not None:
            self._potential.append(potential.detach().float())

    # --- the protocol ------------------------------------------------------------------
    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(f"{self.name}: the learner is closed; create a new one to keep learning")

    def enable(self) -> None:
        """Record again after :meth:`disable` (records are kept)."""
        self._check_open()
        self._enabled = True

    def disable(self) -> None:
        """Stop recording; what was recorded stays until :meth:`step` or :meth:`reset`."""
        self._enabled = False

    def reset(self) -> None:
        """Forget the recorded window (weights, gradients and statistics are untouched)."""
        self._pre.clear()
        self._post.clear()
        self._potential.clear()

    def close(self) -> None:
        """Remove every hook this learner added and forget its records; idempotent.

        The model is left exactly as it was before the learner was created.
        """
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self.reset()
        self._enabled = False
        self._closed = True

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def _time_major(self, record: Tensor, post: Tensor) -> Tensor:
        if self.step_mode == "s":
            return record[None]
        if record.dim() == post.dim() - 1 and record.shape[0] == post.shape[0] * post.shape[1]:
            # nn.Conv2d / nn.Linear inside SeqToANNContainer sees [T * N, ...]
            return record.view(post.shape[0], post.shape[1], *record.shape[1:])
        return record

    def _window(self) -> Optional[Tuple[Tensor, Tensor, Optional[Tensor]]]:
        if len(self._pre) != len(self._post):
            raise RuntimeError(
                f"{self.name}: recorded {len(self._pre)} synapse inputs but {len(self._post)} neuron outputs; "
                "the synapse and the neuron must run the same number of times between step() calls"
            )
        if not self._post:
            return None
        post = _concat([self._time_major(p, p) for p in self._post])
        pre = _concat([self._time_major(x, p) for x, p in zip(self._pre, self._post)])
        potential = None
        if len(self._potential) == len(self._post):
            potential = _concat([self._time_major(v, p) for v, p in zip(self._potential, self._post)])
        self.reset()
        return (
            as_feature_maps(pre, "recorded synapse input", time_major=True),
            as_feature_maps(post, "recorded neuron output", time_major=True),
            None if potential is None else as_feature_maps(potential, "recorded membrane", time_major=True),
        )

    def _check_weights_once(self) -> None:
        """Refuse a synapse whose weight holds NaN or inf and warn about weights outside the
        bounds, once per learner, at its first update (both read in one transfer).

        This is where weights enter from the user's model: afterwards only the learner's
        updates (which keep them finite and within the bounds) or the user change them, so
        the check is not repeated per step. Not at construction: the weights are often
        drawn after it (``initialize_weights``, ``attach(..., initialize_weights=True)``).
        """
        if self._weights_checked:
            return
        weight = self.synapse.weight.detach()
        outside = (weight < self.config.weight_min) | (weight > self.config.weight_max)
        finite, inside = torch.stack((torch.isfinite(weight).all(), ~outside.any())).tolist()
        if not finite:
            raise ValueError(
                f"{self.name}: synapse.weight must be finite, got a tensor with NaN or inf entries; "
                "call initialize_weights() or attach(..., initialize_weights=True) before learning"
            )
        self._weights_checked = True
        if not inside:
            warnings.warn(
                f"{self.name}: weights lie outside [{self.config.weight_min}, {self.config.weight_max}] "
                "(the multiplicative rule cannot move a weight off a bound); call initialize_weights() "
                "or attach(..., initialize_weights=True) before learning",
                stacklevel=4,
            )

    def _winners(self, post: Tensor, potential: Optional[Tensor]) -> Tuple[Tensor, Tensor]:
        """First-spike times of the recorded output and the window's winner mask."""
        if self._post_is_filtered():
            post_times, _ = first_spike_times(post, backend=self.backend)
            return post_times, torch.isfinite(post_times)
        post_times, tie = first_spike_times(post, potential, cumulative=self.potential_is_drive, backend=self.backend)
        wta = self.wta
        mask = select_winners(post_times, tie, wta.mode, wta.local_radius, wta.k_winners,
                              pointwise=wta.pointwise_inhibition, backend=self.backend)
        return post_times, mask

    def _update_(self, weights: Tensor, scale: float) -> bool:
        """Apply the recorded window's STDP update to ``weights`` (the synapse's weight or a
        copy, ``[C_out, C_in, k, k]``) in place; ``False`` when nothing was recorded."""
        if self._post:
            self._check_weights_once()
        window = self._window()
        if window is None:
            return False
        pre, post, potential = window
        post_times, self.winner_mask = self._winners(post, potential)
        pre_times, _ = first_spike_times(pre, backend=self.backend)
        cfg = self.config
        try:
            distributed_winner_update(
                weights, pre_times, post_times, self.winner_mask, cfg, cfg.lr_plus * scale, cfg.lr_minus * scale,
                self.geometry.stride, self.geometry.padding, backend=self.backend, reduction=self.reduction,
                group=self.process_group,
            )
        except ValueError as error:
            raise ValueError(f"{self.name}: the recorded window cannot update synapse.weight: {error}") from error
        return True

    def _checked_scale(self, scale: float) -> float:
        self._check_open()
        return check_float("scale", scale, minimum=0.0)

    @torch.no_grad()
    def step(self, on_grad: bool = True, scale: float = 1.0) -> Optional[Tensor]:
        """Turn the recorded window into a weight update and forget the records.

        The update is :func:`~stdp_plugins.fused_winner_update` of the window's first
        spikes and winners with the learner's ``reduction``, computed on a copy of the
        weights; its delta is the change it makes (weights stay within the bounds).

        Parameters
        ----------
        on_grad : bool
            ``True`` (default): add ``-delta_w`` to ``synapse.weight.grad`` (created when
            ``None``) and return ``None``, so that
            ``torch.optim.SGD(params, lr=1.0, momentum=0.0).step()`` applies the update;
            clamp afterwards with :meth:`clamp_weights` or :meth:`clamp_on_step`.
            ``False``: return ``delta_w`` without touching weights or gradients.
        scale : float
            Multiplier (``>= 0``) of both learning rates for this update.

        Returns
        -------
        Tensor or None
            The delta (shape of ``synapse.weight``) when ``on_grad`` is ``False`` and
            something was recorded, else ``None``.
        """
        scale = self._checked_scale(scale)
        if not isinstance(on_grad, bool):
            raise TypeError(f"on_grad must be a bool, got {type(on_grad).__name__}")
        weight = self.synapse.weight.detach()
        updated = self.geometry.conv_weight(weight).clone()
        if not self._update_(updated, scale):
            return None
        delta = updated.view_as(weight) - weight
        if not on_grad:
            return delta
        grad = self.synapse.weight.grad
        self.synapse.weight.grad = -delta if grad is None else grad - delta
        return None

    @torch.no_grad()
    def apply(self, scale: float = 1.0) -> Optional[Tensor]:
        """Apply the recorded window's update to the weights in place (they stay within the
        bounds) and record the convergence metric; the records are forgotten.

        The update runs on the weights themselves, so they are exactly what
        :func:`~stdp_plugins.fused_winner_update` makes of them. A learner class that
        overrides :meth:`step` (a custom rule that changes the delta) gets the delta of
        its ``step(on_grad=False, scale)`` added and clamped instead.

        Parameters
        ----------
        scale : float
            Multiplier (``>= 0``) of both learning rates for this update.

        Returns
        -------
        Tensor or None
            The change of the weights, ``None`` when nothing was recorded.
        """
        scale = self._checked_scale(scale)
        weight = self.synapse.weight.detach()
        if type(self).step is not FirstSpikeLearner.step:
            delta = self.step(on_grad=False, scale=scale)
            if delta is None:
                return None
            weight.add_(delta).clamp_(self.config.weight_min, self.config.weight_max)
            self.core.record_update(weight)
            return delta
        before = weight.clone()
        if not self._update_(self.geometry.conv_weight(weight), scale):
            return None
        self.core.record_update(weight)
        return weight - before

    @torch.no_grad()
    def clamp_weights(self) -> None:
        """Clamp ``synapse.weight`` to ``[config.weight_min, config.weight_max]`` in place."""
        self.synapse.weight.clamp_(self.config.weight_min, self.config.weight_max)

    def clamp_on_step(self, optimizer: torch.optim.Optimizer) -> RemovableHandle:
        """Clamp the weights after every ``optimizer.step()`` (removed by :meth:`close`).

        Parameters
        ----------
        optimizer : torch.optim.Optimizer
            The optimizer that applies the gradients written by :meth:`step`.

        Returns
        -------
        RemovableHandle
            Handle of the optimizer post-hook.
        """
        self._check_open()
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        handle = optimizer.register_step_post_hook(lambda *_: self.clamp_weights())
        self._handles.append(handle)
        return handle

    @torch.no_grad()
    def initialize_weights(self, generator: Optional[torch.Generator] = None) -> None:
        """Redraw ``synapse.weight`` from the configured ``N(mean, std)``, clamped to the bounds."""
        weight = self.synapse.weight
        weight.copy_(self.core.initialize_weights(weight.shape, weight.device, weight.dtype, generator))

    def convergence(self) -> float:
        """Kheradpisheh's metric ``mean(w (1 - w))`` of the weights normalised to the bounds."""
        return self.core.get_convergence(self.synapse.weight)

    def has_converged(self) -> bool:
        """Whether :meth:`convergence` is below ``config.convergence_threshold``."""
        return self.core.has_converged(self.synapse.weight)

    @property
    def update_count(self) -> int:
        """Updates applied by :meth:`apply`."""
        return self.core.update_count

    @property
    def convergence_history(self) -> List[float]:
        """Convergence metric after each :meth:`apply`."""
        return self.core.convergence_history

    def __repr__(self) -> str:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}(name={self.name!r}, step_mode={self.step_mode!r}, "
            f"synapse={type(self.synapse).__name__}, sn={type(self.sn).__name__}, closed={self._closed})"
        )
