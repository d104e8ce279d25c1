"""First-spike STDP learner with SpikingJelly's learner protocol."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from spikingjelly.activation_based import base, neuron
from torch import Tensor, nn

from .._adapter import FirstSpikeLearner
from ..learning import STDPConfig, WTAConfig
from .layers import AdaptiveThresholdNode, WTALayer
from .neurons import FireOnceIFNode

__all__ = ["STDPLearner", "is_neuron", "is_wta", "make_learner"]


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is a SpikingJelly spiking neuron (or an :class:`AdaptiveThresholdNode`
    or :class:`FireOnceIFNode`)."""
    return isinstance(module, (neuron.BaseNode, neuron.SimpleBaseNode, AdaptiveThresholdNode, FireOnceIFNode))


def is_wta(module: nn.Module) -> bool:
    """Whether ``module`` is this adapter's :class:`WTALayer`."""
    return isinstance(module, WTALayer)


def _is_fresh(module: nn.Module) -> bool:
    """Whether ``module`` was reset since its last forward (``functional.reset_net``)."""
    if isinstance(module, WTALayer):
        return module.winners.steps == 0
    for sub in module.modules():
        if isinstance(sub, base.MemoryModule) and "v" in sub._memories:
            return not isinstance(sub._memories["v"], Tensor)
    return False


class STDPLearner(FirstSpikeLearner):
    """Kheradpisheh-2018 first-spike STDP for a SpikingJelly synapse and neuron.

    A drop-in for ``spikingjelly.activation_based.learning.STDPLearner``: same
    constructor head ``(step_mode, synapse, sn)`` and the same ``reset()``, ``enable()``,
    ``disable()``, ``close()`` and ``step(on_grad=True, scale=1.0)``. Forward hooks record
    the synapse's input and the neuron's output. One :meth:`step` turns the window
    recorded since the last ``step``/``reset`` (single-step forwards, or multi-step
    ``[T, N, ...]`` forwards, concatenated along time) into one update: first-spike times,
    WTA winners, and the core's per-channel averaged delta. A neuron reset by
    ``functional.reset_net`` starts a new window: records not consumed by ``step`` are
    dropped at the next forward, so call ``step`` once per sample window, before or after
    ``reset_net``.

    ``step(on_grad=True)`` adds ``-scale * delta_w`` to ``synapse.weight.grad`` so that
    ``torch.optim.SGD(params, lr=1.0, momentum=0.0).step()`` applies it; then clamp with
    :meth:`clamp_weights` or once for all with :meth:`clamp_on_step`. ``apply()`` does
    compute, add and clamp in one call without an optimizer.

    Ties in first-spike time go to the larger input integrated up to that step (the
    pre-reset membrane of an IF node), then to the lower index.

    Parameters
    ----------
    step_mode : str
        ``'s'`` or ``'m'``, the step mode the model runs in.
    synapse : nn.Conv2d or nn.Linear
        Also ``layer.Conv2d`` / ``layer.Linear``, or one inside ``layer.SeqToANNContainer``.
    sn : nn.Module
        The spiking neuron after the synapse (``IFNode``, ``LIFNode``, ...,
        :class:`AdaptiveThresholdNode`), or the :class:`WTALayer` right after it; with a
        WTA layer the learner learns exactly from the winners the layer lets through
        (``wta`` is then not used).
    config : STDPConfig, optional
        Learning rates, bounds and variant (``STDPConfig()`` when ``None``).
    wta : WTAConfig, optional
        Winner selection (``WTAConfig()`` when ``None``).
    name : str
        Name used in messages.
    reduction : {"sequential", "mean"}
        How a batch's samples combine (default ``"sequential"``: each sample's step in
        turn, what the paper's accuracy needs at batch sizes above 1).
    backend : str
        Implementation of the learning operations (``"auto"``: native on the CPU, CuPy
        on CUDA where written; see :func:`stdp_plugins.backends.resolve_backend`).
    process_group : ProcessGroup, optional
        Learn data-parallel over these ranks: each update is the one-process update of
        all ranks' batches in rank order (see :class:`~stdp_plugins.FirstSpikeLearner`).

    Examples
    --------
    >>> from spikingjelly.activation_based import functional, layer, neuron
    >>> net = torch.nn.Sequential(layer.Conv2d(2, 8, 5, bias=False), neuron.IFNode(v_threshold=5.0))
    >>> functional.set_step_mode(net, "m")
    >>> learner = STDPLearner("m", net[0], net[1])
    >>> learner.initialize_weights()
    >>> _ = net(spikes)                  # spikes: [T, N, 2, H, W]
    >>> delta = learner.apply()          # or learner.step(); optimizer.step(); learner.clamp_weights()
    >>> functional.reset_net(net)
    """

    potential_is_drive = True

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
        super().__init__(step_mode, synapse, sn, config, wta, name, reduction, backend, process_group)

    def _read_post(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> Tuple[Tensor, Optional[Tensor]]:
        if not isinstance(output, Tensor):
            raise TypeError(f"{self.name}: the neuron must return a spike tensor, got {type(output).__name__}")
        drive = inputs[0] if not isinstance(module, WTALayer) else None
        return output, drive

    def _is_fresh(self) -> bool:
        return _is_fresh(self.sn)

    def _post_is_filtered(self) -> bool:
        return is_wta(self.sn)


def make_learner(
    synapse: nn.Module,
    sn: nn.Module,
    *,
    step_mode: Optional[str] = None,
    config: Optional[STDPConfig] = None,
    wta: Optional[WTAConfig] = None,
    name: str = "",
    reduction: str = "sequential",
    backend: str = "auto",
    process_group: Optional[Any] = None,
) -> STDPLearner:
    """Build an :class:`STDPLearner`; ``step_mode`` defaults to the neuron's own."""
    return STDPLearner(step_mode or getattr(sn, "step_mode", "s"), synapse, sn, config, wta, name, reduction, backend,
                       process_group)
