"""First-spike STDP learner with snnTorch's learner protocol."""

from __future__ import annotations

from typing import Any, Optional, Tuple

from snntorch import SpikingNeuron
from torch import Tensor, nn

from .._adapter import FirstSpikeLearner
from ..learning import STDPConfig, WTAConfig
from .layers import WTALayer, output_spikes

__all__ = ["STDPLearner", "is_neuron", "is_wta", "make_learner"]


def is_neuron(module: nn.Module) -> bool:
    """Whether ``module`` is an snnTorch spiking neuron (``snn.Leaky`` and friends)."""
    return isinstance(module, SpikingNeuron)


def is_wta(module: nn.Module) -> bool:
    """Whether ``module`` is this adapter's :class:`WTALayer`."""
    return isinstance(module, WTALayer)


class STDPLearner(FirstSpikeLearner):
    """Kheradpisheh-2018 first-spike STDP for an snnTorch synapse and neuron.

    A drop-in for ``snntorch.functional.stdp_learner.STDPLearner``: constructor head
    ``(synapse, sn)`` and the same ``reset()``, ``enable()``, ``disable()`` and
    ``step(on_grad=True, scale=1.0)``, plus ``close()``. snnTorch runs one time step per
    forward (the tutorials' ``for step in range(num_steps)`` loop); the learner records
    the synapse's input and the neuron's spikes at every step, and one :meth:`step`
    turns the window recorded since the last ``step``/``reset`` into one update:
    first-spike times, WTA winners (ties to the higher ``mem``, then the lower index) and
    the core's per-channel averaged delta. Works with ``init_hidden=False`` (``spk, mem =
    lif(cur, mem)``) and ``init_hidden=True`` (``spk = lif(cur)``), in a custom
    ``forward`` or an ``nn.Sequential``.

    ``step(on_grad=True)`` adds ``-scale * delta_w`` to ``synapse.weight.grad`` so that
    ``torch.optim.SGD(params, lr=1.0, momentum=0.0).step()`` applies it; clamp with
    :meth:`clamp_weights` or :meth:`clamp_on_step`. ``apply()`` computes, adds and clamps.

    Parameters
    ----------
    synapse : nn.Conv2d or nn.Linear
        The layer whose weights learn.
    sn : nn.Module
        The snnTorch neuron after it, or the :class:`WTALayer` right after that neuron,
        whose surviving spikes are then exactly the winners (``wta`` is not used).
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
    >>> learner = STDPLearner(net.fc1, net.lif1)
    >>> mem1 = net.lif1.reset_mem()
    >>> for step in range(num_steps):
    ...     spk1, mem1 = net.lif1(net.fc1(x[step]), mem1)
    >>> learner.apply()
    """

    def __init__(
        self,
        synapse: nn.Module,
        sn: nn.Module,
        config: Optional[STDPConfig] = None,
        wta: Optional[WTAConfig] = None,
        name: str = "",
        reduction: str = "sequential",
        backend: str = "auto",
        process_group: Optional[Any] = None,
    ) -> None:
        super().__init__("s", synapse, sn, config, wta, name, reduction, backend, process_group)

    def _read_post(self, module: nn.Module, inputs: Tuple[Any, ...], output: Any) -> Tuple[Tensor, Optional[Tensor]]:
        spikes = output_spikes(output)
        mem = output[1] if isinstance(output, tuple) and len(output) > 1 else getattr(module, "mem", None)
        if not isinstance(mem, Tensor) or mem.shape != spikes.shape:
            mem = None
        return spikes, mem

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
    """Build an :class:`STDPLearner` (snnTorch is single-step: ``step_mode`` ``None`` or ``'s'``)."""
    if step_mode not in (None, "s"):
        raise ValueError(f"step_mode must be 's' for snnTorch (one forward per time step), got {step_mode!r}")
    return STDPLearner(synapse, sn, config, wta, name, reduction, backend, process_group)
