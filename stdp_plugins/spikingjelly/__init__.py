"""SpikingJelly 2.x adapter: first-spike STDP learner, WTA layer, adaptive thresholds and the paper's neuron.

Importing this package imports SpikingJelly (install ``stdp-plugins[spikingjelly]``).
"""

from .layers import AdaptiveThresholdNode, WTALayer
from .learner import STDPLearner, is_neuron, is_wta, make_learner
from .neurons import FireOnceIFNode, FirstSpikeMaxPool2d

__all__ = [
    "STDPLearner",
    "WTALayer",
    "AdaptiveThresholdNode",
    "FireOnceIFNode",
    "FirstSpikeMaxPool2d",
    "is_neuron",
    "is_wta",
    "make_learner",
]
