"""snnTorch 1.x adapter: first-spike STDP learner, WTA layer and adaptive thresholds.

Importing this package imports snnTorch (install ``stdp-plugins[snntorch]``).
"""

from .layers import AdaptiveThresholdBinding, WTALayer
from .learner import STDPLearner, is_neuron, is_wta, make_learner

__all__ = ["STDPLearner", "WTALayer", "AdaptiveThresholdBinding", "is_neuron", "is_wta", "make_learner"]
