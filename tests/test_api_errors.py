"""Every public parameter of the API page refuses a bad value, naming itself.

``ROWS`` is the table: one bad value per row, ``(entry, parameter, bad value, exception)``.
A row's call is the entry's valid baseline call (``BASELINES``) with that one argument
replaced, so the row fails only because of its value; the message must name the
parameter (as a whole word) and say what was passed (``got ...``). The page
(``tests/data/api-learning.md``, parsed by ``test_api_contract``) decides which parameters
need rows: :func:`test_table_covers_every_parameter_of_the_page` fails for one without.
"""

from __future__ import annotations

import inspect
import math
import re

import pytest
import torch
from torch import nn

import stdp_plugins
from stdp_plugins import STDPConfig, WTAConfig
from test_api_contract import ENTRIES, _split_params

NAN, INF = math.nan, math.inf


def _filled(shape, value, dtype=torch.float32):
    """A tensor of ``shape`` with every entry 0.5 except the first, which is ``value``."""
    tensor = torch.full(shape, 0.5, dtype=dtype)
    tensor.view(-1)[0] = value
    return tensor


W3, W4 = torch.full((1, 2, 2), 0.5), torch.full((2, 1, 2, 2), 0.5)
PRE3, PRE4 = torch.zeros(1, 3, 3), torch.zeros(1, 1, 3, 3)
POST4 = torch.zeros(1, 2, 2, 2)
MAPS = torch.zeros(1, 2, 2, 2)  # [N, C, H, W] spikes, membranes and masks
NAN_W3, INF_W3 = _filled((1, 2, 2), NAN), _filled((1, 2, 2), -INF)
NAN_W4, INF_W4 = _filled((2, 1, 2, 2), NAN), _filled((2, 1, 2, 2), INF)

#: How an entry's owner is made when the entry is a method.
INSTANCES = {
    "STDPLearner": lambda: stdp_plugins.STDPLearner(),
    "WTAInhibition": lambda: stdp_plugins.WTAInhibition(),
    "AdaptiveThreshold": lambda: stdp_plugins.AdaptiveThreshold(2, (2, 2)),
    "ConvergenceTracker": lambda: stdp_plugins.ConvergenceTracker(2, (2, 2)),
}

#: A valid call of every entry (keyword arguments named as on the page). A dataclass's
#: fields are the parameters of the entry named after the class.
BASELINES = {
    "STDPLearner.__init__": dict(config=STDPConfig()),
    "STDPLearner.initialize_weights": dict(shape=(2, 1, 2, 2), device="cpu", dtype=torch.float32),
    "STDPLearner.compute_update": dict(weights=W3, pre_spike_times=torch.zeros(1, 2, 2), post_spike_time=1.0),
    "STDPLearner.compute_batch_update": dict(weights=W4, pre_spike_times=PRE4, post_spike_times=POST4,
                                             winner_mask=MAPS.bool()),
    "STDPLearner.update_weights_for_winner": dict(
        weights=W3, pre_spike_times=PRE3, post_spike_time=1.0, winner_y=0, winner_x=0, kernel_size=2,
        stride=1, padding=0, inplace=True,
    ),
    "STDPLearner.has_converged": dict(weights=W4),
    "STDPLearner.get_convergence": dict(weights=W4),
    "STDPLearner.apply_update": dict(weights=W4, delta=torch.zeros(2, 1, 2, 2)),
    "STDPLearner.record_update": dict(weights=W4),
    "STDPConfig": dict(),
    "STDPConfig.from_paper": dict(paper="kheradpisheh2018"),
    "WTAInhibition.__init__": dict(config=WTAConfig(), n_channels=2, spatial_shape=(2, 2), initial_threshold=10.0,
                                   device=None),
    "WTAInhibition.forward": dict(spikes=MAPS, membrane=MAPS, pre_reset_membrane=MAPS, threshold=None),
    "WTAInhibition.get_thresholds": dict(batch_size=1),
    "WTAConfig": dict(),
    "AdaptiveThreshold.__init__": dict(n_channels=2, spatial_shape=(2, 2), initial_threshold=10.0, target_rate=0.1,
                                       learning_rate=0.001, threshold_min=1.0, threshold_max=100.0, device=None),
    "AdaptiveThreshold.update": dict(spikes=MAPS),
    "AdaptiveThreshold.get_thresholds": dict(expand_batch=1),
    "AdaptiveThreshold.reset_all": dict(initial_threshold=10.0),
    "ConvergenceTracker.__init__": dict(n_channels=2, spatial_shape=(2, 2), min_wins=10, delta_threshold=1e-4,
                                        device=None),
    "ConvergenceTracker.update": dict(winner_mask=MAPS.bool(), weight_deltas=torch.zeros(2, 1, 2, 2)),
    "ConvergenceTracker.is_converged": dict(threshold=0.95),
    "compute_convergence_metric": dict(weights=W4),
    "has_converged": dict(weights=W4, threshold=0.01),
    "get_first_spike_times": dict(spikes=torch.zeros(2, 3), no_spike_value=INF),
    "extract_receptive_field_times": dict(pre_spike_times=PRE3, post_y=0, post_x=0, kernel_size=2, stride=1,
                                          padding=0),
    "compute_stdp_update": dict(weights=W3, pre_spike_times=torch.zeros(1, 2, 2), post_spike_time=1.0, lr_plus=0.1,
                                lr_minus=0.1, variant="multiplicative"),
    "find_wta_winner": dict(output_spikes=torch.zeros(2, 2, 2, 2), potentials=torch.zeros(2, 2, 2)),
    "apply_lateral_inhibition": dict(potentials=torch.zeros(2, 2, 2), winner_map=0, winner_y=0, winner_x=0,
                                     inplace=True),
    # public functions beyond the page that take weights
    "stdp_weight_factor": dict(weights=W4),
    "batch_stdp_update": dict(weights=W4, pre_spike_times=PRE4, post_spike_times=POST4, winner_mask=None,
                              lr_plus=0.1, lr_minus=0.1),
    "sequential_stdp_update_": dict(weights=W4, pre_spike_times=PRE4, post_spike_times=POST4, winner_mask=None,
                                    lr_plus=0.1, lr_minus=0.1),
}

#: The table: (entry, parameter, bad value, exception).
ROWS = [
    # --- STDPLearner
    ("STDPLearner.__init__", "config", "paper", TypeError),
    ("STDPLearner.__init__", "config", {"lr_plus": 0.1}, TypeError),
    ("STDPLearner.initialize_weights", "shape", (2, -1), ValueError),
    ("STDPLearner.initialize_weights", "shape", (2.5,), ValueError),
    ("STDPLearner.initialize_weights", "shape", "2x2", ValueError),
    ("STDPLearner.initialize_weights", "device", 1.5, TypeError),
    ("STDPLearner.initialize_weights", "device", "gpu0", ValueError),
    ("STDPLearner.initialize_weights", "dtype", torch.int64, TypeError),
    ("STDPLearner.initialize_weights", "dtype", "float32", TypeError),
    ("STDPLearner.compute_update", "weights", [0.5], TypeError),
    ("STDPLearner.compute_update", "weights", NAN_W3, ValueError),
    ("STDPLearner.compute_update", "weights", INF_W3, ValueError),
    ("STDPLearner.compute_update", "pre_spike_times", torch.zeros(1, 3, 3), ValueError),
    ("STDPLearner.compute_update", "pre_spike_times", _filled((1, 2, 2), NAN), ValueError),
    ("STDPLearner.compute_update", "pre_spike_times", -torch.ones(1, 2, 2), ValueError),
    ("STDPLearner.compute_update", "pre_spike_times", torch.zeros(1, 2, 2, dtype=torch.long), TypeError),
    ("STDPLearner.compute_update", "post_spike_time", INF, ValueError),
    ("STDPLearner.compute_update", "post_spike_time", NAN, ValueError),
    ("STDPLearner.compute_update", "post_spike_time", -1.0, ValueError),
    ("STDPLearner.compute_update", "post_spike_time", "1.0", TypeError),
    ("STDPLearner.compute_update", "post_spike_time", torch.zeros(2), TypeError),
    ("STDPLearner.compute_batch_update", "weights", [[0.5]], TypeError),
    ("STDPLearner.compute_batch_update", "weights", torch.zeros(2, 2, 2), ValueError),
    ("STDPLearner.compute_batch_update", "weights", W4.long(), TypeError),
    ("STDPLearner.compute_batch_update", "weights", NAN_W4, ValueError),
    ("STDPLearner.compute_batch_update", "weights", INF_W4, ValueError),
    ("STDPLearner.compute_batch_update", "pre_spike_times", "spikes", TypeError),
    ("STDPLearner.compute_batch_update", "pre_spike_times", torch.zeros(3, 3), ValueError),
    ("STDPLearner.compute_batch_update", "pre_spike_times", torch.zeros(1, 2, 3, 3), ValueError),
    ("STDPLearner.compute_batch_update", "pre_spike_times", _filled((1, 1, 3, 3), NAN), ValueError),
    ("STDPLearner.compute_batch_update", "post_spike_times", None, TypeError),
    ("STDPLearner.compute_batch_update", "post_spike_times", torch.zeros(1, 2, 3, 3), ValueError),
    ("STDPLearner.compute_batch_update", "post_spike_times", -torch.ones(1, 2, 2, 2), ValueError),
    ("STDPLearner.compute_batch_update", "post_spike_times", _filled((1, 2, 2, 2), NAN), ValueError),
    ("STDPLearner.compute_batch_update", "winner_mask", "all", TypeError),
    ("STDPLearner.compute_batch_update", "winner_mask", torch.ones(1, 2, 1, 1, dtype=torch.bool), ValueError),
    ("STDPLearner.compute_batch_update", "winner_mask", torch.full((1, 2, 2, 2), 3.0), ValueError),
    ("STDPLearner.compute_batch_update", "winner_mask", _filled((1, 2, 2, 2), NAN), ValueError),
    ("STDPLearner.update_weights_for_winner", "weights", [0.5], TypeError),
    ("STDPLearner.update_weights_for_winner", "weights", W4, ValueError),
    ("STDPLearner.update_weights_for_winner", "weights", torch.full((2, 2, 2), 0.5), ValueError),
    ("STDPLearner.update_weights_for_winner", "weights", NAN_W3, ValueError),
    ("STDPLearner.update_weights_for_winner", "weights", INF_W3, ValueError),
    ("STDPLearner.update_weights_for_winner", "pre_spike_times", (0.0, 1.0), TypeError),
    ("STDPLearner.update_weights_for_winner", "pre_spike_times", PRE4, ValueError),
    ("STDPLearner.update_weights_for_winner", "pre_spike_times", _filled((1, 3, 3), NAN), ValueError),
    ("STDPLearner.update_weights_for_winner", "pre_spike_times", -torch.ones(1, 3, 3), ValueError),
    ("STDPLearner.update_weights_for_winner", "post_spike_time", INF, ValueError),
    ("STDPLearner.update_weights_for_winner", "post_spike_time", "early", TypeError),
    ("STDPLearner.update_weights_for_winner", "winner_y", -1, ValueError),
    ("STDPLearner.update_weights_for_winner", "winner_y", 2, ValueError),
    ("STDPLearner.update_weights_for_winner", "winner_y", 0.5, TypeError),
    ("STDPLearner.update_weights_for_winner", "winner_x", -1, ValueError),
    ("STDPLearner.update_weights_for_winner", "winner_x", 5, ValueError),
    ("STDPLearner.update_weights_for_winner", "winner_x", "0", TypeError),
    ("STDPLearner.update_weights_for_winner", "kernel_size", 0, ValueError),
    ("STDPLearner.update_weights_for_winner", "kernel_size", 3, ValueError),
    ("STDPLearner.update_weights_for_winner", "kernel_size", 2.0, TypeError),
    ("STDPLearner.update_weights_for_winner", "stride", 0, ValueError),
    ("STDPLearner.update_weights_for_winner", "stride", 1.5, TypeError),
    ("STDPLearner.update_weights_for_winner", "padding", -1, ValueError),
    ("STDPLearner.update_weights_for_winner", "padding", "0", TypeError),
    ("STDPLearner.update_weights_for_winner", "inplace", "yes", TypeError),
    ("STDPLearner.update_weights_for_winner", "inplace", 1, TypeError),
    ("STDPLearner.has_converged", "weights", [0.5], TypeError),
    ("STDPLearner.has_converged", "weights", NAN_W4, ValueError),
    ("STDPLearner.has_converged", "weights", INF_W4, ValueError),
    ("STDPLearner.get_convergence", "weights", 0.5, TypeError),
    ("STDPLearner.get_convergence", "weights", NAN_W4, ValueError),
    ("STDPLearner.get_convergence", "weights", INF_W4, ValueError),
    ("STDPLearner.apply_update", "weights", NAN_W4, ValueError),
    ("STDPLearner.apply_update", "delta", _filled((2, 1, 2, 2), INF), ValueError),
    ("STDPLearner.apply_update", "delta", torch.zeros(2), ValueError),
    ("STDPLearner.record_update", "weights", NAN_W4, ValueError),
    # --- STDPConfig
    ("STDPConfig", "lr_plus", -1.0, ValueError),
    ("STDPConfig", "lr_plus", NAN, ValueError),
    ("STDPConfig", "lr_plus", "big", TypeError),
    ("STDPConfig", "lr_minus", INF, ValueError),
    ("STDPConfig", "lr_minus", -0.1, ValueError),
    ("STDPConfig", "lr_minus", None, TypeError),
    ("STDPConfig", "weight_min", NAN, ValueError),
    ("STDPConfig", "weight_min", 2.0, ValueError),
    ("STDPConfig", "weight_min", "0", TypeError),
    ("STDPConfig", "weight_max", INF, ValueError),
    ("STDPConfig", "weight_max", 0.0, ValueError),
    ("STDPConfig", "weight_max", [1.0], TypeError),
    ("STDPConfig", "variant", "hebbian", ValueError),
    ("STDPConfig", "variant", 3, ValueError),
    ("STDPConfig", "convergence_threshold", 0.0, ValueError),
    ("STDPConfig", "convergence_threshold", NAN, ValueError),
    ("STDPConfig", "convergence_threshold", "low", TypeError),
    ("STDPConfig", "weight_init_mean", NAN, ValueError),
    ("STDPConfig", "weight_init_mean", INF, ValueError),
    ("STDPConfig", "weight_init_mean", "0.8", TypeError),
    ("STDPConfig", "weight_init_std", -0.1, ValueError),
    ("STDPConfig", "weight_init_std", INF, ValueError),
    ("STDPConfig", "weight_init_std", None, TypeError),
    ("STDPConfig.from_paper", "paper", "diehl2015", ValueError),
    ("STDPConfig.from_paper", "paper", 2018, TypeError),
    # --- WTAInhibition
    ("WTAInhibition.__init__", "config", "global", TypeError),
    ("WTAInhibition.__init__", "config", STDPConfig(), TypeError),
    ("WTAInhibition.__init__", "n_channels", 0, ValueError),
    ("WTAInhibition.__init__", "n_channels", 2.5, TypeError),
    ("WTAInhibition.__init__", "spatial_shape", (2, 2, 2), ValueError),
    ("WTAInhibition.__init__", "spatial_shape", (2, 0), ValueError),
    ("WTAInhibition.__init__", "spatial_shape", "2x2", TypeError),
    ("WTAInhibition.__init__", "initial_threshold", 500.0, ValueError),
    ("WTAInhibition.__init__", "initial_threshold", NAN, ValueError),
    ("WTAInhibition.__init__", "initial_threshold", "ten", TypeError),
    ("WTAInhibition.__init__", "device", 1.5, TypeError),
    ("WTAInhibition.__init__", "device", "gpu0", ValueError),
    ("WTAInhibition.forward", "spikes", [0, 1], TypeError),
    ("WTAInhibition.forward", "spikes", torch.zeros(2, 2), ValueError),
    ("WTAInhibition.forward", "spikes", torch.full((1, 2, 2, 2), 0.3), ValueError),
    ("WTAInhibition.forward", "spikes", _filled((1, 2, 2, 2), NAN), ValueError),
    ("WTAInhibition.forward", "membrane", "v", TypeError),
    ("WTAInhibition.forward", "membrane", torch.zeros(1, 2, 2, 3), ValueError),
    ("WTAInhibition.forward", "pre_reset_membrane", 0.0, TypeError),
    ("WTAInhibition.forward", "pre_reset_membrane", torch.zeros(1, 2, 2, 1), ValueError),
    ("WTAInhibition.forward", "pre_reset_membrane", _filled((1, 2, 2, 2), NAN), ValueError),
    ("WTAInhibition.forward", "threshold", "high", TypeError),
    ("WTAInhibition.forward", "threshold", NAN, ValueError),
    ("WTAInhibition.forward", "threshold", torch.ones(3), ValueError),
    ("WTAInhibition.forward", "threshold", _filled((1, 2, 2, 2), NAN), ValueError),
    ("WTAInhibition.get_thresholds", "batch_size", 0, ValueError),
    ("WTAInhibition.get_thresholds", "batch_size", 1.5, TypeError),
    # --- WTAConfig
    ("WTAConfig", "mode", "nearest", ValueError),
    ("WTAConfig", "mode", 3, ValueError),
    ("WTAConfig", "local_radius", -1, ValueError),
    ("WTAConfig", "local_radius", 1.5, TypeError),
    ("WTAConfig", "enable_homeostasis", "yes", TypeError),
    ("WTAConfig", "enable_homeostasis", 1, TypeError),
    ("WTAConfig", "target_rate", -0.1, ValueError),
    ("WTAConfig", "target_rate", 1.5, ValueError),
    ("WTAConfig", "target_rate", NAN, ValueError),
    ("WTAConfig", "homeostasis_lr", -1.0, ValueError),
    ("WTAConfig", "homeostasis_lr", INF, ValueError),
    ("WTAConfig", "threshold_min", 0.0, ValueError),
    ("WTAConfig", "threshold_min", 200.0, ValueError),
    ("WTAConfig", "threshold_min", NAN, ValueError),
    ("WTAConfig", "threshold_max", INF, ValueError),
    ("WTAConfig", "threshold_max", "100", TypeError),
    ("WTAConfig", "track_statistics", "no", TypeError),
    ("WTAConfig", "track_statistics", None, TypeError),
    # --- AdaptiveThreshold
    ("AdaptiveThreshold.__init__", "n_channels", -1, ValueError),
    ("AdaptiveThreshold.__init__", "n_channels", "2", TypeError),
    ("AdaptiveThreshold.__init__", "spatial_shape", (2, 0), ValueError),
    ("AdaptiveThreshold.__init__", "spatial_shape", "2x2", TypeError),
    ("AdaptiveThreshold.__init__", "initial_threshold", 500.0, ValueError),
    ("AdaptiveThreshold.__init__", "initial_threshold", NAN, ValueError),
    ("AdaptiveThreshold.__init__", "initial_threshold", "ten", TypeError),
    ("AdaptiveThreshold.__init__", "target_rate", 1.5, ValueError),
    ("AdaptiveThreshold.__init__", "target_rate", NAN, ValueError),
    ("AdaptiveThreshold.__init__", "learning_rate", -0.1, ValueError),
    ("AdaptiveThreshold.__init__", "learning_rate", INF, ValueError),
    ("AdaptiveThreshold.__init__", "threshold_min", 0.0, ValueError),
    ("AdaptiveThreshold.__init__", "threshold_min", NAN, ValueError),
    ("AdaptiveThreshold.__init__", "threshold_max", 0.5, ValueError),
    ("AdaptiveThreshold.__init__", "threshold_max", INF, ValueError),
    ("AdaptiveThreshold.__init__", "device", 1.5, TypeError),
    ("AdaptiveThreshold.__init__", "device", "gpu0", ValueError),
    ("AdaptiveThreshold.update", "spikes", [[0, 1]], TypeError),
    ("AdaptiveThreshold.update", "spikes", torch.zeros(1, 2, 3, 3), ValueError),
    ("AdaptiveThreshold.update", "spikes", torch.full((1, 2, 2, 2), 0.5), ValueError),
    ("AdaptiveThreshold.update", "spikes", _filled((1, 2, 2, 2), NAN), ValueError),
    ("AdaptiveThreshold.get_thresholds", "expand_batch", 0, ValueError),
    ("AdaptiveThreshold.get_thresholds", "expand_batch", 1.5, TypeError),
    ("AdaptiveThreshold.reset_all", "initial_threshold", 500.0, ValueError),
    ("AdaptiveThreshold.reset_all", "initial_threshold", NAN, ValueError),
    ("AdaptiveThreshold.reset_all", "initial_threshold", "ten", TypeError),
    # --- ConvergenceTracker
    ("ConvergenceTracker.__init__", "n_channels", 0, ValueError),
    ("ConvergenceTracker.__init__", "n_channels", 2.5, TypeError),
    ("ConvergenceTracker.__init__", "spatial_shape", (2, 0), ValueError),
    ("ConvergenceTracker.__init__", "spatial_shape", "2x2", TypeError),
    ("ConvergenceTracker.__init__", "min_wins", -1, ValueError),
    ("ConvergenceTracker.__init__", "min_wins", 1.5, TypeError),
    ("ConvergenceTracker.__init__", "delta_threshold", 0.0, ValueError),
    ("ConvergenceTracker.__init__", "delta_threshold", NAN, ValueError),
    ("ConvergenceTracker.__init__", "delta_threshold", "tiny", TypeError),
    ("ConvergenceTracker.__init__", "device", 1.5, TypeError),
    ("ConvergenceTracker.__init__", "device", "gpu0", ValueError),
    ("ConvergenceTracker.update", "winner_mask", [[True]], TypeError),
    ("ConvergenceTracker.update", "winner_mask", torch.ones(1, 3, 2, 2), ValueError),
    ("ConvergenceTracker.update", "winner_mask", torch.full((1, 2, 2, 2), 3.0), ValueError),
    ("ConvergenceTracker.update", "winner_mask", _filled((1, 2, 2, 2), NAN), ValueError),
    ("ConvergenceTracker.update", "weight_deltas", [0.0], TypeError),
    ("ConvergenceTracker.update", "weight_deltas", torch.zeros(3, 4), ValueError),
    ("ConvergenceTracker.update", "weight_deltas", _filled((2, 1, 2, 2), NAN), ValueError),
    ("ConvergenceTracker.update", "weight_deltas", _filled((2, 1, 2, 2), INF), ValueError),
    ("ConvergenceTracker.is_converged", "threshold", 1.5, ValueError),
    ("ConvergenceTracker.is_converged", "threshold", NAN, ValueError),
    ("ConvergenceTracker.is_converged", "threshold", "most", TypeError),
    # --- standalone functions
    ("compute_convergence_metric", "weights", [0.5], TypeError),
    ("compute_convergence_metric", "weights", NAN_W4, ValueError),
    ("compute_convergence_metric", "weights", INF_W4, ValueError),
    ("has_converged", "weights", (0.5,), TypeError),
    ("has_converged", "weights", NAN_W4, ValueError),
    ("has_converged", "weights", INF_W4, ValueError),
    ("has_converged", "threshold", -1.0, ValueError),
    ("has_converged", "threshold", NAN, ValueError),
    ("has_converged", "threshold", "low", TypeError),
    ("get_first_spike_times", "spikes", [0, 1], TypeError),
    ("get_first_spike_times", "spikes", torch.tensor(1.0), ValueError),
    ("get_first_spike_times", "spikes", torch.tensor([0.0, 2.0]), ValueError),
    ("get_first_spike_times", "spikes", torch.tensor([NAN, 1.0]), ValueError),
    ("get_first_spike_times", "no_spike_value", "never", TypeError),
    ("get_first_spike_times", "no_spike_value", NAN, ValueError),
    ("extract_receptive_field_times", "pre_spike_times", [[0.0]], TypeError),
    ("extract_receptive_field_times", "pre_spike_times", torch.zeros(3, 3), ValueError),
    ("extract_receptive_field_times", "pre_spike_times", _filled((1, 3, 3), NAN), ValueError),
    ("extract_receptive_field_times", "pre_spike_times", -torch.ones(1, 3, 3), ValueError),
    ("extract_receptive_field_times", "pre_spike_times", torch.zeros(1, 3, 3, dtype=torch.long), TypeError),
    ("extract_receptive_field_times", "post_y", -1, ValueError),
    ("extract_receptive_field_times", "post_y", 5, ValueError),
    ("extract_receptive_field_times", "post_y", 1.5, TypeError),
    ("extract_receptive_field_times", "post_x", -1, ValueError),
    ("extract_receptive_field_times", "post_x", 5, ValueError),
    ("extract_receptive_field_times", "post_x", "0", TypeError),
    ("extract_receptive_field_times", "kernel_size", 0, ValueError),
    ("extract_receptive_field_times", "kernel_size", 9, ValueError),
    ("extract_receptive_field_times", "kernel_size", 2.0, TypeError),
    ("extract_receptive_field_times", "stride", 0, ValueError),
    ("extract_receptive_field_times", "stride", 1.5, TypeError),
    ("extract_receptive_field_times", "padding", -1, ValueError),
    ("extract_receptive_field_times", "padding", 0.5, TypeError),
    ("compute_stdp_update", "weights", [0.5], TypeError),
    ("compute_stdp_update", "weights", NAN_W3, ValueError),
    ("compute_stdp_update", "weights", INF_W3, ValueError),
    ("compute_stdp_update", "pre_spike_times", torch.zeros(4), ValueError),
    ("compute_stdp_update", "pre_spike_times", _filled((1, 2, 2), NAN), ValueError),
    ("compute_stdp_update", "pre_spike_times", -torch.ones(1, 2, 2), ValueError),
    ("compute_stdp_update", "post_spike_time", INF, ValueError),
    ("compute_stdp_update", "post_spike_time", "1", TypeError),
    ("compute_stdp_update", "lr_plus", -0.1, ValueError),
    ("compute_stdp_update", "lr_plus", NAN, ValueError),
    ("compute_stdp_update", "lr_plus", "fast", TypeError),
    ("compute_stdp_update", "lr_minus", INF, ValueError),
    ("compute_stdp_update", "lr_minus", torch.ones(2), ValueError),
    ("compute_stdp_update", "variant", "stdp", ValueError),
    ("compute_stdp_update", "variant", 3, ValueError),
    ("find_wta_winner", "output_spikes", [0, 1], TypeError),
    ("find_wta_winner", "output_spikes", torch.zeros(2, 2, 2), ValueError),
    ("find_wta_winner", "output_spikes", torch.full((2, 2, 2, 2), 0.5), ValueError),
    ("find_wta_winner", "output_spikes", _filled((2, 2, 2, 2), NAN), ValueError),
    ("find_wta_winner", "potentials", "v", TypeError),
    ("find_wta_winner", "potentials", torch.zeros(2, 2, 3), ValueError),
    ("find_wta_winner", "potentials", _filled((2, 2, 2), NAN), ValueError),
    ("apply_lateral_inhibition", "potentials", [[0.0]], TypeError),
    ("apply_lateral_inhibition", "potentials", torch.zeros(2, 2), ValueError),
    ("apply_lateral_inhibition", "winner_map", -1, ValueError),
    ("apply_lateral_inhibition", "winner_map", 2, ValueError),
    ("apply_lateral_inhibition", "winner_map", 1.5, TypeError),
    ("apply_lateral_inhibition", "winner_y", -1, ValueError),
    ("apply_lateral_inhibition", "winner_y", 2, ValueError),
    ("apply_lateral_inhibition", "winner_y", "0", TypeError),
    ("apply_lateral_inhibition", "winner_x", -1, ValueError),
    ("apply_lateral_inhibition", "winner_x", 2, ValueError),
    ("apply_lateral_inhibition", "winner_x", 0.5, TypeError),
    ("apply_lateral_inhibition", "inplace", "no", TypeError),
    ("apply_lateral_inhibition", "inplace", 0, TypeError),
    # --- public functions beyond the page that take weights
    ("stdp_weight_factor", "weights", NAN_W4, ValueError),
    ("stdp_weight_factor", "weights", INF_W4, ValueError),
    ("batch_stdp_update", "weights", NAN_W4, ValueError),
    ("batch_stdp_update", "weights", INF_W4, ValueError),
    ("sequential_stdp_update_", "weights", NAN_W4, ValueError),
    ("sequential_stdp_update_", "weights", INF_W4, ValueError),
]


def _copy(value):
    return value.clone() if isinstance(value, torch.Tensor) else value


def _call(entry: str, **overrides):
    """Run ``entry`` with its baseline arguments, ``overrides`` replacing some."""
    kwargs = {name: _copy(value) for name, value in {**BASELINES[entry], **overrides}.items()}
    owner, _, member = entry.rpartition(".")
    if not owner:
        target = getattr(stdp_plugins, member)
        return target(**kwargs) if not inspect.isclass(target) else target(**kwargs)
    if member == "__init__" or member == "from_paper":
        cls = getattr(stdp_plugins, owner)
        return cls(**kwargs) if member == "__init__" else cls.from_paper(**kwargs)
    return getattr(INSTANCES[owner](), member)(**kwargs)


def _page_parameters() -> set[tuple[str, str]]:
    """``(entry, parameter)`` of every parameter on the API page."""
    required = set()
    for owner, name, kind, params in ENTRIES:
        if kind == "field":
            required.add((owner, name))
        elif kind == "def":
            entry = f"{owner}.{name}" if owner else name
            required.update((entry, param) for param, _ in _split_params(params))
    return required


def _row_id(row) -> str:
    entry, param, value, _ = row
    if isinstance(value, torch.Tensor):  # dtype, shape and first entry tell the tensors apart
        first = value.view(-1)[0].item() if value.numel() else ""
        shown = f"{str(value.dtype)[6:]}{list(value.shape)}({first})"
    else:
        shown = repr(value)
    return f"{entry}:{param}={shown}"


def test_table_size():
    entries = {row[0] for row in ROWS}
    parameters = {(row[0], row[1]) for row in ROWS}
    assert len(set(map(_row_id, ROWS))) == len(ROWS), "duplicate rows"
    # 266 rows over 32 entries and 98 parameters: the page's 27 entries with parameters and
    # their 92 parameters, plus 5 public weight-taking entries beyond the page (6 parameters)
    assert (len(ROWS), len(entries), len(parameters)) == (266, 32, 98)


def test_table_covers_every_parameter_of_the_page():
    required = _page_parameters()
    covered = {(row[0], row[1]) for row in ROWS}
    assert len(required) >= 90
    assert required - covered == set()


def test_parameterless_members_of_the_page_run():
    """The page's methods without parameters and its properties, on a fresh instance."""
    walked = 0
    for owner, name, kind, params in ENTRIES:
        if owner is None or owner not in INSTANCES:
            continue
        if kind == "property" or (kind == "def" and not _split_params(params) and name != "__init__"):
            member = getattr(INSTANCES[owner](), name)
            if kind == "def":
                member()
            walked += 1
    assert walked == 12


def test_table_rows_name_real_parameters():
    for entry, param, _, _ in ROWS:
        owner, _, member = entry.rpartition(".")
        target = getattr(stdp_plugins, owner or member)
        if owner:
            target = getattr(target, member)
        assert param in inspect.signature(target).parameters, (entry, param)


@pytest.mark.parametrize("entry", sorted(BASELINES))
def test_baseline_call_is_valid(entry):
    _call(entry)


@pytest.mark.parametrize("entry,parameter,value,error", ROWS, ids=[_row_id(r) for r in ROWS])
def test_bad_value_raises_and_names_the_parameter(entry, parameter, value, error):
    with pytest.raises(error) as info:
        _call(entry, **{parameter: value})
    message = str(info.value)
    assert re.search(rf"\b{re.escape(parameter)}\b", message), message
    assert "got" in message, message


# --- weights entering from a user's SpikingJelly / snnTorch model ----------------------


def _spikingjelly_learner():
    from spikingjelly.activation_based import layer, neuron

    from stdp_plugins.spikingjelly import STDPLearner

    net = nn.Sequential(layer.Conv2d(1, 2, 2, bias=False, step_mode="m"), neuron.IFNode(v_threshold=0.5, step_mode="m"))
    return net, STDPLearner("m", net[0], net[1], wta=WTAConfig(k_winners=1))


def _snntorch_learner():
    import snntorch

    from stdp_plugins.snntorch import STDPLearner

    net = nn.Sequential(nn.Conv2d(1, 2, 2, bias=False), snntorch.Leaky(beta=1.0, threshold=0.5, init_hidden=True))
    return net, STDPLearner(net[0], net[1], wta=WTAConfig(k_winners=1))


@pytest.mark.parametrize("make", [_spikingjelly_learner, _snntorch_learner], ids=["spikingjelly", "snntorch"])
@pytest.mark.parametrize("bad", [NAN, INF])
def test_adapter_refuses_non_finite_synapse_weight_and_keeps_the_window(make, bad):
    net, learner = make()
    with torch.no_grad():
        net[0].weight.fill_(0.5)
        net[0].weight.view(-1)[0] = bad
    spikes = torch.ones(3, 1, 1, 3, 3)
    with torch.no_grad():
        if learner.step_mode == "m":
            net(spikes)
        else:
            for frame in spikes:
                net(frame)
    with pytest.raises(ValueError, match=r"synapse\.weight must be finite, got"):
        learner.apply()
    learner.initialize_weights(torch.Generator().manual_seed(0))
    delta = learner.apply()  # the recorded window was kept: the refused update runs now
    assert delta is not None and torch.isfinite(net[0].weight).all()
    assert learner.update_count == 1
