"""Framework-free functional core of stdp-plugins (plain PyTorch).

Nothing here imports SpikingJelly or snnTorch; the adapters build on these pieces.
"""

from .fire_once_if import fire_once, first_spike_only
from .convergence import ConvergenceTracker, channel_convergence, compute_convergence_metric, has_converged
from .batch_stdp import batch_stdp_update, potentiation_fraction, sequential_stdp_update_
from .learner import STDPLearner
from .stdp import STDPConfig, STDPVariant, compute_stdp_update, stdp_weight_factor
from .threshold import AdaptiveThreshold
from .timing import conv_output_size, extract_receptive_field_times, gather_receptive_field_times, get_first_spike_times
from .inhibition import WTAInhibition, apply_lateral_inhibition, find_wta_winner
from .wta import WTAConfig, WTAMode, select_winners, select_winners_among

__all__ = [
    "AdaptiveThreshold",
    "ConvergenceTracker",
    "STDPConfig",
    "STDPLearner",
    "STDPVariant",
    "WTAConfig",
    "WTAInhibition",
    "WTAMode",
    "apply_lateral_inhibition",
    "batch_stdp_update",
    "channel_convergence",
    "compute_convergence_metric",
    "compute_stdp_update",
    "conv_output_size",
    "extract_receptive_field_times",
    "find_wta_winner",
    "fire_once",
    "first_spike_only",
    "gather_receptive_field_times",
    "get_first_spike_times",
    "has_converged",
    "potentiation_fraction",
    "select_winners",
    "select_winners_among",
    "sequential_stdp_update_",
    "stdp_weight_factor",
]
