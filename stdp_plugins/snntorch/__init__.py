"""snnTorch 1.x adapter: first-spike STDP learner, WTA layer, adaptive thresholds and the paper's neuron.

Importing this package imports snnTorch (install ``stdp-plugins[snntorch]``).
"""

from .layers import AdaptiveThresholdBinding, WTALayer
from .learner import STDPLearner, is_neuron, is_wta, make_learner
from .neurons import FireOnceIF, FirstSpikeMaxPool2d

__all__ = [
    "STDPLearner",
    "WTALayer",
    "AdaptiveThresholdBinding",
    "FireOnceIF",
    "FirstSpikeMaxPool2d",
    "is_neuron",
    "is_wta",
    "make_learner",
]
