"""Framework-independent plumbing shared by the SpikingJelly and snnTorch adapters.

An adapter records what a synapse (``nn.Conv2d`` / ``nn.Linear``) receives and what the
spiking neuron after it emits, with forward hooks, and turns one recorded time window into
a first-spike STDP update through the dispatchers of :mod:`stdp_plugins.backends` (the
engine the reference network uses too): :func:`~stdp_plugins.backends.first_spike_times`
for both sides, :func:`~stdp_plugins.backends.select_winners` for the competition and
:func:`~stdp_plugins.backends.fused_winner_update` for the update, so CPU tensors get
the native library and CUDA tensors the CuPy kernels.
A ``Linear`` layer is treated as a convolution with a 1x1 kernel on a 1x1 map: weights
``[out, in] -> [out, in, 1, 1]``, spikes ``[N, in] -> [N, in, 1, 1]``.

Only torch is imported here. The framework packages subclass :class:`FirstSpikeLearner`
with the few framework-specific pieces (how to read a neuron's spikes and membrane, how to
tell that a neuron was just reset) and build their WTA layers on :func:`keep_winners` and
their adaptive thresholds on :class:`SpikeWindow`.
"""

from .group import LearnerGroup
from .learner import FirstSpikeLearner
from .synapse import SynapseGeometry, as_feature_maps, synapse_geometry
from .window import IncrementalWinners, SpikeWindow, broadcast_thresholds, check_adaptive_threshold, keep_winners

__all__ = [
    "SynapseGeometry",
    "synapse_geometry",
    "as_feature_maps",
    "IncrementalWinners",
    "keep_winners",
    "SpikeWindow",
    "check_adaptive_threshold",
    "broadcast_thresholds",
    "FirstSpikeLearner",
    "LearnerGroup",
]
