"""SpikingJelly 2.x adapter: first-spike STDP learner, WTA layer and adaptive thresholds.

Importing this package imports SpikingJelly (install ``stdp-plugins[spikingjelly]``).
"""

from .layers import AdaptiveThresholdNode, WTALayer
from .learner import STDPLearner, is_neuron, is_wta, make_learner

__all__ = ["STDPLearner", "WTALayer", "AdaptiveThresholdNode", "is_neuron", "is_wta", "make_learner"]
