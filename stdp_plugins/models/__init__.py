"""Reference networks built from the package's parts.

- :class:`KheradpishehNet`: the Kheradpisheh et al. (2018) network of N STDP convolution
  layers (default: the MNIST network, SpykeTorch's replication), with its configuration
  :class:`KheradpishehConfig` / :class:`LayerSpec`; its layers are the dispatched
  first-spike convolutions of :mod:`stdp_plugins.backends`.
- :mod:`.config`: the configuration, and network files (TOML or JSON) with the shipped
  presets ``"mnist"`` and ``"caltech"`` (:func:`load_network_config`).
- :mod:`.pooling`: pooling and padding of first-spike maps between the layers.
- :mod:`.recipe`: the training and read-out recipe of a SpikingJelly or snnTorch version of
  the network (the examples supply the framework parts).
"""

from .config import PRESETS, KheradpishehConfig, LayerSpec, load_network_config, preset_path
from .kheradpisheh import KheradpishehNet
from .pooling import max_pool_binary, min_pool_times, pad_times

__all__ = ["KheradpishehConfig", "KheradpishehNet", "LayerSpec", "PRESETS", "load_network_config", "preset_path",
           "max_pool_binary", "min_pool_times", "pad_times"]
