"""Reference networks built from the package's parts.

- :class:`KheradpishehNet`: the Kheradpisheh et al. (2018) MNIST network (SpykeTorch's
  replication), with its configuration :class:`KheradpishehConfig` / :class:`LayerSpec`.
- :mod:`.spiking`: first-spike convolution layers of at-most-once IF neurons, an
  event-driven CPU kernel and the dense reference.
"""

from .kheradpisheh import KheradpishehConfig, KheradpishehNet, LayerSpec
from .spiking import (
    dense_first_spike_conv,
    event_first_spike_conv,
    fires_at_all,
    fires_given_inputs,
    first_spike_conv,
    max_pool_binary,
    min_pool_times,
    native_available,
    pad_times,
)

__all__ = [
    "KheradpishehConfig",
    "KheradpishehNet",
    "LayerSpec",
    "dense_first_spike_conv",
    "event_first_spike_conv",
    "fires_at_all",
    "fires_given_inputs",
    "first_spike_conv",
    "max_pool_binary",
    "min_pool_times",
    "native_available",
    "pad_times",
]
