"""Configuration of the reference network: N STDP convolution layers, in code or in a file.

:class:`LayerSpec` describes one layer (maps, kernel, padding, threshold, winners, radius,
rates and the pooling after it), :class:`KheradpishehConfig` the whole network. A network
can also be written as a TOML or JSON file (:func:`load_network_config`); the presets
``"mnist"`` (the default, SpykeTorch's replication of the paper's MNIST network) and
``"caltech"`` (the paper's three-layer face/motorbike network, section 3.1) ship with the
package (:func:`preset_path`). The format is described in ``docs/networks.md``.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Dict, Mapping, Tuple, Union

from ..learning import STDPConfig
from ..learning._checks import check_float, check_int
from ..learning.timing import conv_output_size

__all__ = ["LayerSpec", "KheradpishehConfig", "PRESETS", "preset_path", "load_network_config",
           "network_config_from_dict"]

#: Names of the network files shipped with the package (``stdp_plugins/models/presets``).
PRESETS = ("mnist", "caltech")
_PRESET_DIR = Path(__file__).with_name("presets")
_INPUT_CHANNELS = 2  # on- and off-centre DoG maps of the encoder


@dataclass
class LayerSpec:
    """One STDP convolution layer of the reference network and the pooling after it.

    Attributes
    ----------
    in_channels, out_channels, kernel_size, padding : int
        Convolution geometry (stride 1).
    threshold : float
        Firing threshold of the IF neurons.
    k_winners : int
        Winners per image for learning (at most one per feature map).
    radius : int
        Lateral inhibition radius around each winner (all maps).
    lr_plus, lr_minus : float
        Initial STDP rates.
    pool_kernel, pool_stride, pool_padding : int
        First-spike max-pooling after the layer; ``pool_kernel = 0`` pools each map
        globally (to ``1 x 1``; stride and padding are then unused).
    input_padding : int
        Never-firing border added around the layer's input (after the previous pooling).
    lr_double_every : int
        a+ doubles every this many training images of the layer (0: the rates stay) ...
    lr_plus_max : float
        ... up to this value ...
    lr_minus_ratio : float
        ... with ``a- = lr_minus_ratio * a+`` once doubled.
    """

    in_channels: int
    out_channels: int
    kernel_size: int
    padding: int
    threshold: float
    k_winners: int
    radius: int
    lr_plus: float = 0.004
    lr_minus: float = 0.003
    pool_kernel: int = 2
    pool_stride: int = 2
    pool_padding: int = 1
    input_padding: int = 0
    lr_double_every: int = 0
    lr_plus_max: float = 0.15
    lr_minus_ratio: float = 0.75

    def __post_init__(self) -> None:
        for name in ("in_channels", "out_channels", "kernel_size", "k_winners", "pool_stride"):
            setattr(self, name, check_int(name, getattr(self, name), minimum=1))
        for name in ("padding", "radius", "pool_kernel", "pool_padding", "input_padding", "lr_double_every"):
            setattr(self, name, check_int(name, getattr(self, name), minimum=0))
        self.threshold = check_float("threshold", self.threshold, minimum=0.0, strict_min=True)
        for name in ("lr_plus", "lr_minus", "lr_plus_max", "lr_minus_ratio"):
            setattr(self, name, check_float(name, getattr(self, name), minimum=0.0))
        if self.pool_kernel == 0 and self.pool_padding != 0:
            raise ValueError(f"pool_padding must be 0 with global pooling (pool_kernel 0), got {self.pool_padding}")
        if self.pool_kernel and 2 * self.pool_padding > self.pool_kernel:
            raise ValueError(f"pool_padding must be at most half of pool_kernel ({self.pool_kernel}), "
                             f"got {self.pool_padding}")

    @property
    def global_pool(self) -> bool:
        """Whether the pooling after the layer takes the whole map (``pool_kernel == 0``)."""
        return self.pool_kernel == 0

    def output_size(self, height: int, width: int) -> Tuple[int, int]:
        """Spatial size ``(H, W)`` after the layer's input padding, convolution and pooling of
        an ``height x width`` input; raises ``ValueError`` when the input is too small."""
        size = []
        for extent in (height, width):
            conv = conv_output_size(extent + 2 * self.input_padding, self.kernel_size, 1, self.padding)
            if conv < 1 or (not self.global_pool and conv_output_size(conv, self.pool_kernel, self.pool_stride,
                                                                      self.pool_padding) < 1):
                raise ValueError(f"an input of {height}x{width} is too small for a {self.kernel_size}x"
                                 f"{self.kernel_size} convolution and its pooling")
            size.append(1 if self.global_pool else conv_output_size(conv, self.pool_kernel, self.pool_stride,
                                                                    self.pool_padding))
        return size[0], size[1]


def _mnist_layers() -> Tuple[LayerSpec, ...]:
    return (LayerSpec(2, 32, 5, 2, 10.0, 5, 2, lr_double_every=500),
            LayerSpec(32, 150, 2, 0, 1.0, 8, 1, input_padding=1))


@dataclass
class KheradpishehConfig:
    """Hyper-parameters of the reference network (defaults: the SpykeTorch replication of the
    paper's MNIST network, the ``"mnist"`` preset).

    Attributes
    ----------
    time_steps : int
        Time steps of the latency code.
    layers : tuple of LayerSpec
        The STDP convolutions, input first (dicts are converted).
    paper : str
        STDP preset (:meth:`STDPConfig.from_paper`) for initialisation, bounds, variant
        and convergence threshold.
    """

    time_steps: int = 15
    layers: Tuple[LayerSpec, ...] = field(default_factory=_mnist_layers)
    paper: str = "kheradpisheh2018"

    def __post_init__(self) -> None:
        self.time_steps = check_int("time_steps", self.time_steps, minimum=1)
        if self.time_steps > 254:
            raise ValueError(f"time_steps must be <= 254, got {self.time_steps}")
        if not isinstance(self.layers, (tuple, list)) or not self.layers:
            raise ValueError(f"layers must be a non-empty sequence of LayerSpec, got {self.layers!r}")
        layers = []
        for index, value in enumerate(self.layers):
            if isinstance(value, Mapping):
                value = LayerSpec(**value)
            elif not isinstance(value, LayerSpec):
                raise TypeError(f"layers[{index}] must be a LayerSpec, got {type(value).__name__}")
            expected = _INPUT_CHANNELS if index == 0 else layers[-1].out_channels
            if value.in_channels != expected:
                source = "the encoder's DoG channels" if index == 0 else f"layers[{index - 1}].out_channels"
                raise ValueError(f"layers[{index}].in_channels must equal {source} ({expected}), "
                                 f"got {value.in_channels}")
            layers.append(value)
        self.layers = tuple(layers)
        self.stdp = STDPConfig.from_paper(self.paper)

    @property
    def num_layers(self) -> int:
        """Number of STDP convolution layers."""
        return len(self.layers)

    def spec(self, layer: int) -> LayerSpec:
        """The :class:`LayerSpec` of ``layer`` (1-based)."""
        if isinstance(layer, bool) or not isinstance(layer, int) or not 1 <= layer <= self.num_layers:
            raise ValueError(f"layer must be an int in [1, {self.num_layers}], got {layer!r}")
        return self.layers[layer - 1]

    # two-layer shorthands (the MNIST network's examples and tutorials use them)
    @property
    def layer1(self) -> LayerSpec:
        """Layer 1's :class:`LayerSpec`."""
        return self.spec(1)

    @property
    def layer2(self) -> LayerSpec:
        """Layer 2's :class:`LayerSpec`."""
        return self.spec(2)

    @property
    def pool_kernel(self) -> int:
        """Layer 1's pooling window (the MNIST network pools every layer alike)."""
        return self.layers[0].pool_kernel

    @property
    def pool_stride(self) -> int:
        """Layer 1's pooling stride."""
        return self.layers[0].pool_stride

    @property
    def pool_padding(self) -> int:
        """Layer 1's pooling padding."""
        return self.layers[0].pool_padding

    @property
    def inter_padding(self) -> int:
        """Layer 2's input padding (zero padding between pooling 1 and conv2)."""
        return self.spec(2).input_padding

    def learning_rates(self, layer: int, images_seen: int) -> Tuple[float, float]:
        """``(a+, a-)`` of ``layer`` after ``images_seen`` training images of that layer.

        A layer with ``lr_double_every > 0`` doubles a+ every that many images up to
        ``lr_plus_max`` with ``a- = lr_minus_ratio * a+``; the others keep their initial rates.
        """
        spec = self.spec(layer)
        images_seen = check_int("images_seen", images_seen, minimum=0)
        doublings = images_seen // spec.lr_double_every if spec.lr_double_every else 0
        if doublings == 0:
            return spec.lr_plus, spec.lr_minus
        lr_plus = min(spec.lr_plus * 2.0 ** min(doublings, 64), spec.lr_plus_max)
        return lr_plus, spec.lr_minus_ratio * lr_plus

    def feature_shape(self, height: int, width: int) -> Tuple[int, int, int]:
        """Shape ``(C, H, W)`` of the features of ``height x width`` images; raises
        ``ValueError`` naming the first layer the images are too small for."""
        size = (check_int("height", height, minimum=1), check_int("width", width, minimum=1))
        for index, spec in enumerate(self.layers, start=1):
            try:
                size = spec.output_size(*size)
            except ValueError as exc:
                raise ValueError(f"layer {index}: {exc} (images of {height}x{width})") from None
        return (self.layers[-1].out_channels, *size)

    def to_dict(self) -> Dict[str, Any]:
        """Plain-dict form (for checkpoints and ``metrics.json``); ``KheradpishehConfig(**d)``
        rebuilds it."""
        return {"time_steps": self.time_steps, "layers": [asdict(spec) for spec in self.layers],
                "paper": self.paper}


_LAYER_KEYS = {"maps", "kernel", "padding", "input_padding", "threshold", "k", "radius", "rates", "pooling"}
_RATE_KEYS = {"plus": "lr_plus", "minus": "lr_minus", "double_every": "lr_double_every",
              "plus_max": "lr_plus_max", "minus_ratio": "lr_minus_ratio"}
_POOL_KEYS = {"kernel": "pool_kernel", "stride": "pool_stride", "padding": "pool_padding"}
_REQUIRED = ("maps", "kernel", "threshold", "k", "radius")


def _section(value: Any, keys: Mapping[str, str], where: str) -> Dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where} must be a table, got {value!r}")
    unknown = sorted(set(value) - set(keys))
    if unknown:
        raise ValueError(f"{where} has unknown keys {unknown}; allowed: {sorted(keys)}")
    return {keys[k]: v for k, v in value.items()}


def _layer(entry: Any, in_channels: int, where: str) -> LayerSpec:
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a table, got {entry!r}")
    unknown = sorted(set(entry) - _LAYER_KEYS)
    missing = [k for k in _REQUIRED if k not in entry]
    if unknown or missing:
        problems = [f"{label} keys {keys}" for label, keys in (("unknown", unknown), ("missing", missing)) if keys]
        raise ValueError(f"{where}: {', '.join(problems)}; allowed: {sorted(_LAYER_KEYS)}")
    pooling = entry.get("pooling", {})
    pool = {"pool_kernel": 0, "pool_padding": 0} if pooling == "global" else \
        _section(pooling, _POOL_KEYS, f"{where}.pooling")
    spec = dict(in_channels=in_channels, out_channels=entry["maps"], kernel_size=entry["kernel"],
                padding=entry.get("padding", 0), input_padding=entry.get("input_padding", 0),
                threshold=entry["threshold"], k_winners=entry["k"], radius=entry["radius"],
                **_section(entry.get("rates", {}), _RATE_KEYS, f"{where}.rates"), **pool)
    try:
        return LayerSpec(**spec)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{where}: {exc}") from None


def network_config_from_dict(data: Mapping[str, Any], source: str = "network config") -> KheradpishehConfig:
    """The :class:`KheradpishehConfig` of a parsed network file (see ``docs/networks.md``).

    Raises
    ------
    ValueError
        Naming ``source`` and the offending key when the description is incomplete or wrong.
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"{source}: a network file must hold a table, got {type(data).__name__}")
    unknown = sorted(set(data) - {"time_steps", "paper", "layers"})
    if unknown:
        raise ValueError(f"{source}: unknown keys {unknown}; allowed: ['layers', 'paper', 'time_steps']")
    entries = data.get("layers")
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{source}: 'layers' must be a non-empty list of layer tables ([[layers]] in TOML)")
    layers, channels = [], _INPUT_CHANNELS
    for index, entry in enumerate(entries, start=1):
        layers.append(_layer(entry, channels, f"{source}: layer {index}"))
        channels = layers[-1].out_channels
    options = {k: data[k] for k in ("time_steps", "paper") if k in data}
    try:
        return KheradpishehConfig(layers=tuple(layers), **options)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{source}: {exc}") from None


def preset_path(name: str) -> Path:
    """The file of a shipped preset (one of :data:`PRESETS`)."""
    if name not in PRESETS:
        raise ValueError(f"name must be one of {', '.join(map(repr, PRESETS))}, got {name!r}")
    return _PRESET_DIR / f"{name}.toml"


def load_network_config(path_or_preset: Union[str, Path]) -> KheradpishehConfig:
    """Read a network description: a ``.toml`` or ``.json`` file, or a preset name
    (:data:`PRESETS`, e.g. ``"caltech"``).

    Raises
    ------
    ValueError
        If the file cannot be read or parsed, or describes no valid network (the message
        names the file and the key).
    """
    path = preset_path(path_or_preset) if str(path_or_preset) in PRESETS else Path(path_or_preset)
    if path.suffix not in (".toml", ".json"):
        raise ValueError(f"path_or_preset must be a .toml or .json file or one of {list(PRESETS)}, got {str(path)!r}")
    try:
        text = path.read_text(encoding="utf-8")
        data = tomllib.loads(text) if path.suffix == ".toml" else json.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the network file ({exc})") from None
    return network_config_from_dict(data, str(path))
