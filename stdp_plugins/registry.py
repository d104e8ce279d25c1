"""Named learning rules and layers, and :func:`attach` to add learning to a model.

A *rule* is a factory ``rule(synapse, sn, *, step_mode, config, wta, name, reduction,
backend, **kwargs)`` returning a learner with the SpikingJelly/snnTorch learner protocol (``step``, ``reset``,
``enable``, ``disable``, ``close``; see :class:`stdp_plugins.spikingjelly.STDPLearner`).
A *layer* is any factory of an ``nn.Module``. Third-party packages register theirs with
entry points, loaded the first time the name is asked for::

    [project.entry-points."stdp_plugins.rules"]
    my_rule = "my_package.rules:make_learner"

    [project.entry-points."stdp_plugins.layers"]
    my_layer = "my_package.layers:MyLayer"

Nothing here imports SpikingJelly or snnTorch until a model that uses them is attached.
"""

from __future__ import annotations

import importlib
import importlib.util
from importlib.metadata import entry_points
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

from torch import nn

from ._adapter import FirstSpikeLearner, LearnerGroup, synapse_geometry
from .learning import STDPConfig, WTAConfig

__all__ = [
    "FirstSpikeLearner",
    "LearnerGroup",
    "RULE_ENTRY_POINT_GROUP",
    "LAYER_ENTRY_POINT_GROUP",
    "register_rule",
    "get_rule",
    "available_rules",
    "register_layer",
    "get_layer",
    "available_layers",
    "find_pairs",
    "attach",
]

#: Entry-point group through which installed packages register learning rules.
RULE_ENTRY_POINT_GROUP = "stdp_plugins.rules"
#: Entry-point group through which installed packages register layers.
LAYER_ENTRY_POINT_GROUP = "stdp_plugins.layers"

# framework package -> adapter module (imported only when the framework is installed)
_ADAPTERS = (("spikingjelly", "stdp_plugins.spikingjelly"), ("snntorch", "stdp_plugins.snntorch"))


class _Registry:
    """Names to factories, backed by one entry-point group."""

    def __init__(self, kind: str, group: str) -> None:
        self.kind = kind
        self.group = group
        self.factories: Dict[str, Callable[..., Any]] = {}

    def register(self, name: str, factory: Callable[..., Any], overwrite: bool) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError(f"name must be a non-empty str, got {name!r}")
        if not callable(factory):
            raise TypeError(f"factory must be callable, got {type(factory).__name__}")
        if name in self.factories and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered; pass overwrite=True to replace it")
        self.factories[name] = factory

    def _entry_points(self) -> Dict[str, Any]:
        return {ep.name: ep for ep in entry_points(group=self.group)}

    def get(self, name: str) -> Callable[..., Any]:
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, got {type(name).__name__}")
        if name not in self.factories:
            found = self._entry_points().get(name)
            if found is None:
                raise ValueError(f"unknown {self.kind} {name!r}; available: {', '.join(self.available())}")
            self.register(name, found.load(), overwrite=False)
        return self.factories[name]

    def available(self) -> List[str]:
        return sorted(set(self.factories) | set(self._entry_points()))


_RULES = _Registry("rule", RULE_ENTRY_POINT_GROUP)
_LAYERS = _Registry("layer", LAYER_ENTRY_POINT_GROUP)


def register_rule(name: str, factory: Callable[..., Any], *, overwrite: bool = False) -> None:
    """Register a learning rule under ``name``.

    Parameters
    ----------
    name : str
        Rule name used by :func:`get_rule` and ``attach(model, rule=name)``.
    factory : callable
        ``factory(synapse, sn, *, step_mode, config, wta, name, reduction, backend,
        **kwargs)`` returning a learner (:func:`attach` passes every one of these).
    overwrite : bool
        Replace an existing rule of that name instead of raising ``ValueError``.
    """
    _RULES.register(name, factory, overwrite)


def get_rule(name: str) -> Callable[..., Any]:
    """The factory of rule ``name``, loading its entry point on first use.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the available rules.
    """
    return _RULES.get(name)


def available_rules() -> List[str]:
    """Names of the registered rules and of the ``stdp_plugins.rules`` entry points, sorted."""
    return _RULES.available()


def register_layer(name: str, factory: Callable[..., nn.Module], *, overwrite: bool = False) -> None:
    """Register a layer factory (a class or function returning an ``nn.Module``) under ``name``."""
    _LAYERS.register(name, factory, overwrite)


def get_layer(name: str) -> Callable[..., nn.Module]:
    """The factory of layer ``name``, loading its entry point on first use.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the available layers.
    """
    return _LAYERS.get(name)


def available_layers() -> List[str]:
    """Names of the registered layers and of the ``stdp_plugins.layers`` entry points, sorted."""
    return _LAYERS.available()


def _lazy(module: str, attr: str) -> Callable[..., Any]:
    """A factory that imports ``module.attr`` when first called."""

    def factory(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), attr)(*args, **kwargs)

    factory.__name__ = attr
    factory.__qualname__ = attr
    factory.__doc__ = f"Build :class:`{module}.{attr}` (imported on first use)."
    return factory


def _installed_adapters() -> List[Any]:
    return [importlib.import_module(adapter) for framework, adapter in _ADAPTERS
            if importlib.util.find_spec(framework) is not None]


def _adapter_of(module: nn.Module, adapters: List[Any]) -> Optional[Any]:
    for adapter in adapters:
        if adapter.is_neuron(module) or adapter.is_wta(module):
            return adapter
    return None


def _stdp_rule(
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
) -> Any:
    """Built-in rule ``"stdp"``: the first-spike STDP learner of ``sn``'s framework
    (``reduction``, ``backend`` and ``process_group`` as for
    :class:`stdp_plugins.spikingjelly.STDPLearner`)."""
    adapter = _adapter_of(sn, _installed_adapters())
    if adapter is None:
        raise TypeError(
            f"sn must be a SpikingJelly or snnTorch spiking neuron (or a stdp_plugins WTA layer), "
            f"got {type(sn).__name__}"
        )
    return adapter.make_learner(synapse, sn, step_mode=step_mode, config=config, wta=wta, name=name,
                                reduction=reduction, backend=backend, process_group=process_group)


register_rule("stdp", _stdp_rule)
register_layer("spikingjelly.wta", _lazy("stdp_plugins.spikingjelly", "WTALayer"))
register_layer("spikingjelly.adaptive_threshold", _lazy("stdp_plugins.spikingjelly", "AdaptiveThresholdNode"))
register_layer("spikingjelly.fire_once_if", _lazy("stdp_plugins.spikingjelly", "FireOnceIFNode"))
register_layer("spikingjelly.first_spike_max_pool", _lazy("stdp_plugins.spikingjelly", "FirstSpikeMaxPool2d"))
register_layer("snntorch.wta", _lazy("stdp_plugins.snntorch", "WTALayer"))
register_layer("snntorch.fire_once_if", _lazy("stdp_plugins.snntorch", "FireOnceIF"))
register_layer("snntorch.first_spike_max_pool", _lazy("stdp_plugins.snntorch", "FirstSpikeMaxPool2d"))

_SYNAPSES = (nn.Linear, nn.modules.conv._ConvNd)
# modules that may sit between a synapse and its neuron without changing the shape
_PASS_THROUGH = (nn.modules.batchnorm._NormBase, nn.modules.dropout._DropoutNd, nn.Identity)


def find_pairs(model: nn.Module) -> List[Tuple[str, nn.Module, str, nn.Module]]:
    """Pair every ``Conv2d``/``Linear`` of ``model`` with the spiking neuron that follows it.

    Modules are walked in registration order (``model.named_modules()``), which is the
    order of the forward pass in an ``nn.Sequential`` and in the usual custom
    ``nn.Module``. A synapse pairs with the next SpikingJelly or snnTorch neuron when only
    shape-preserving modules (normalisation, dropout, identity) sit between them; when
    one of this package's WTA layers comes right after the neuron, the WTA layer is the
    post-synaptic module (the learner then learns from exactly the winners it lets through).
    Synapses without a neuron (e.g. a read-out layer) are left alone.

    Parameters
    ----------
    model : nn.Module
        A SpikingJelly or snnTorch model.

    Returns
    -------
    list of (synapse_name, synapse, post_name, post_module)

    Raises
    ------
    NotImplementedError
        When a synapse paired with a neuron is not supported (``Conv1d``, grouped or
        dilated ``Conv2d``, ...); the message names the layer.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    adapters = _installed_adapters()
    pairs: List[Tuple[str, nn.Module, str, nn.Module]] = []
    pending: Optional[Tuple[str, nn.Module]] = None
    after_neuron = False
    inside: Optional[str] = None
    for name, module in model.named_modules():
        if inside is not None and name.startswith(inside):
            continue
        adapter = _adapter_of(module, adapters)
        if adapter is not None:
            inside = name + "."
            if adapter.is_wta(module) and after_neuron:
                pairs[-1] = (*pairs[-1][:2], name, module)
            elif adapter.is_neuron(module) and pending is not None:
                synapse_geometry(pending[1], pending[0])
                pairs.append((*pending, name, module))
                after_neuron = True
                pending = None
                continue
            after_neuron = False
            continue
        if isinstance(module, _SYNAPSES):
            pending = (name, module)
        elif not list(module.children()) and not isinstance(module, _PASS_THROUGH):
            pending = None
        if not list(module.children()):
            after_neuron = False
    return pairs


PerLayer = Union[Any, Mapping[str, Any]]


def _for_layer(value: PerLayer, name: str, names: List[str], argument: str) -> Any:
    """``value[name]`` when ``value`` is a mapping by synapse name (``None`` if absent), else ``value``."""
    if not isinstance(value, Mapping):
        return value
    unknown = sorted(set(value) - set(names))
    if unknown:
        raise ValueError(f"{argument} names no paired synapse: {unknown}; the model's synapses are {names}")
    return value.get(name)


def attach(
    model: nn.Module,
    rule: str = "stdp",
    config: Optional[PerLayer] = None,
    wta: Optional[PerLayer] = None,
    *,
    step_mode: Optional[str] = None,
    initialize_weights: bool = False,
    reduction: str = "sequential",
    backend: str = "auto",
    process_group: Optional[Any] = None,
    **kwargs: Any,
) -> LearnerGroup:
    """Give every synapse/neuron pair of ``model`` a learner, by composition.

    The model is not modified: learners only add forward hooks, and
    :meth:`LearnerGroup.close` removes them all.

    Parameters
    ----------
    model : nn.Module
        A SpikingJelly or snnTorch model (``nn.Sequential`` or a custom module).
    rule : str
        Name of a registered rule (:func:`available_rules`); ``"stdp"`` is built in.
    config : STDPConfig or mapping, optional
        Configuration of every learner (``STDPConfig()`` when ``None``), or a mapping from
        synapse name (as :meth:`LearnerGroup.names` lists them) to the configuration of
        that layer (absent names get ``STDPConfig()``).
    wta : WTAConfig or mapping, optional
        Winner selection of every learner, or a mapping by synapse name like ``config``;
        when a layer gets none, a pair whose neuron is followed by a WTA layer uses that
        layer's config, the others ``WTAConfig()``.
    step_mode : str, optional
        SpikingJelly step mode; defaults to each neuron's ``step_mode``.
    initialize_weights : bool
        Redraw every paired synapse's weights from ``config`` (needed when they are not
        already within the weight bounds, e.g. PyTorch's default initialisation).
    reduction : {"sequential", "mean"}
        How a batch's samples combine in every learner (default ``"sequential"``: each
        sample's step in turn, what the paper's accuracy needs at batch sizes above 1).
    backend : str
        Implementation of the learning operations (``"auto"``: native on the CPU, CuPy on
        CUDA where written; see :func:`stdp_plugins.backends.resolve_backend`).
    process_group : ProcessGroup, optional
        Learn data-parallel over these ranks (a ``torch.distributed`` group, every rank
        running its shard of each batch through the same model): every learner's update
        is then exactly the one-process update of all ranks' shards in rank order, the
        same on every rank. Passed to the rule factory only when given.
    **kwargs
        Passed on to the rule factory.

    Returns
    -------
    LearnerGroup
        The learners by synapse name, with ``step``, ``apply``, ``reset``,
        ``convergence`` and ``close``.

    Raises
    ------
    ValueError
        When the model has no synapse followed by a spiking neuron, or a mapping names a
        synapse that is not paired.
    NotImplementedError
        For an unsupported synapse paired with a neuron (names the layer).
    """
    factory = get_rule(rule)
    pairs = find_pairs(model)
    if not pairs:
        raise ValueError(
            f"model has no nn.Conv2d/nn.Linear followed by a SpikingJelly or snnTorch neuron: {type(model).__name__}"
        )
    names = [pair[0] for pair in pairs]
    group = LearnerGroup({})
    try:
        for synapse_name, synapse, _, post in pairs:
            layer_wta = _for_layer(wta, synapse_name, names, "wta")
            if layer_wta is None:
                layer_wta = getattr(post, "config", None)
            group.learners[synapse_name] = factory(
                synapse, post, step_mode=step_mode, config=_for_layer(config, synapse_name, names, "config"),
                wta=layer_wta if isinstance(layer_wta, WTAConfig) else None, name=synapse_name,
                reduction=reduction, backend=backend,
                **({"process_group": process_group} if process_group is not None else {}), **kwargs,
            )
    except Exception:
        group.close()  # leave the model as it was
        raise
    if initialize_weights:
        group.initialize_weights()
    return group
