"""Reference networks built from the package's parts.

- :class:`KheradpishehNet`: the Kheradpisheh et al. (2018) MNIST network (SpykeTorch's
  replication), with its configuration :class:`KheradpishehConfig` / :class:`LayerSpec`;
  its layers are the dispatched first-spike convolutions of :mod:`stdp_plugins.backends`.
- :mod:`.pooling`: pooling and padding of first-spike maps between the layers.
- :mod:`.recipe`: the training and read-out recipe of a SpikingJelly or snnTorch version of
  the network (the examples supply the framework parts).
"""

from .kheradpisheh import KheradpishehConfig, KheradpishehNet, LayerSpec
from .pooling import max_pool_binary, min_pool_times, pad_times

__all__ = ["KheradpishehConfig", "KheradpishehNet", "LayerSpec", "max_pool_binary", "min_pool_times", "pad_times"]
