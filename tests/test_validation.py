"""Bad input fails loudly: the exception type and the argument's name in the message."""

import math

import pytest
import torch

from stdp_plugins import (
    AdaptiveThreshold,
    ConvergenceTracker,
    STDPConfig,
    STDPLearner,
    WTAConfig,
    WTAInhibition,
    apply_lateral_inhibition,
    compute_convergence_metric,
    compute_stdp_update,
    extract_receptive_field_times,
    find_wta_winner,
    get_first_spike_times,
    has_converged,
)
from stdp_plugins.learning import batch_stdp_update, select_winners

INF = math.inf
NAN = math.nan
W4 = torch.full((2, 1, 2, 2), 0.5)
PRE = torch.zeros(1, 1, 3, 3)
POST = torch.zeros(1, 2, 2, 2)
learner = STDPLearner()


def _nan(shape):
    t = torch.zeros(shape)
    t.view(-1)[0] = NAN
    return t


CASES = [
    # --- STDPConfig
    ("config lr_plus negative", lambda: STDPConfig(lr_plus=-1.0), ValueError, "lr_plus"),
    ("config lr_minus nan", lambda: STDPConfig(lr_minus=NAN), ValueError, "lr_minus"),
    ("config lr_plus string", lambda: STDPConfig(lr_plus="big"), TypeError, "lr_plus"),
    ("config bounds equal", lambda: STDPConfig(weight_min=1.0, weight_max=1.0), ValueError, "weight_min"),
    ("config bounds reversed", lambda: STDPConfig(weight_min=2.0, weight_max=1.0), ValueError, "weight_min"),
    ("config weight_max inf", lambda: STDPConfig(weight_max=INF), ValueError, "weight_max"),
    ("config variant unknown", lambda: STDPConfig(variant="hebbian"), ValueError, "variant"),
    ("config variant int", lambda: STDPConfig(variant=3), ValueError, "variant"),
    ("config threshold zero", lambda: STDPConfig(convergence_threshold=0.0), ValueError, "convergence_threshold"),
    ("config init std negative", lambda: STDPConfig(weight_init_std=-0.1), ValueError, "weight_init_std"),
    ("config init mean nan", lambda: STDPConfig(weight_init_mean=NAN), ValueError, "weight_init_mean"),
    ("preset unknown", lambda: STDPConfig.from_paper("diehl2015"), ValueError, "paper"),
    ("preset not str", lambda: STDPConfig.from_paper(2018), TypeError, "paper"),
    ("learner config type", lambda: STDPLearner({"lr_plus": 1}), TypeError, "config"),
    # --- initialize_weights
    ("init negative size", lambda: learner.initialize_weights((2, -1)), ValueError, "shape"),
    ("init float size", lambda: learner.initialize_weights((2.5,)), ValueError, "shape"),
    ("init int dtype", lambda: learner.initialize_weights((2,), dtype=torch.int64), TypeError, "dtype"),
    # --- get_first_spike_times
    ("first spikes list", lambda: get_first_spike_times([0, 1]), TypeError, "spikes"),
    ("first spikes 0-d", lambda: get_first_spike_times(torch.tensor(1.0)), ValueError, "spikes"),
    ("first spikes non-binary", lambda: get_first_spike_times(torch.tensor([0.0, 2.0])), ValueError, "spikes"),
    ("first spikes nan", lambda: get_first_spike_times(torch.tensor([NAN, 1.0])), ValueError, "spikes"),
    # --- extract_receptive_field_times
    ("rf rank", lambda: extract_receptive_field_times(torch.zeros(3, 3), 0, 0, 2), ValueError, "pre_spike_times"),
    ("rf nan", lambda: extract_receptive_field_times(_nan((1, 3, 3)), 0, 0, 2), ValueError, "pre_spike_times"),
    ("rf negative time", lambda: extract_receptive_field_times(-torch.ones(1, 3, 3), 0, 0, 2), ValueError, "pre_spike_times"),
    ("rf int times", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3, dtype=torch.long), 0, 0, 2), TypeError, "pre_spike_times"),
    ("rf kernel zero", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), 0, 0, 0), ValueError, "kernel_size"),
    ("rf stride zero", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), 0, 0, 2, stride=0), ValueError, "stride"),
    ("rf padding negative", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), 0, 0, 2, padding=-1), ValueError, "padding"),
    ("rf kernel float", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), 0, 0, 2.0), TypeError, "kernel_size"),
    ("rf post_y negative", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), -1, 0, 2), ValueError, "post_y"),
    ("rf post_x outside", lambda: extract_receptive_field_times(torch.zeros(1, 3, 3), 0, 5, 2), ValueError, "post_x"),
    # --- compute_stdp_update
    ("update shape mismatch", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(4), 1.0, 0.1, 0.1), ValueError, "pre_spike_times"),
    ("update post inf", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), INF, 0.1, 0.1), ValueError, "post_spike_time"),
    ("update post nan", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), NAN, 0.1, 0.1), ValueError, "post_spike_time"),
    ("update lr negative", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), 1.0, -0.1, 0.1), ValueError, "lr_plus"),
    ("update lr tensor shape", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), 1.0, 0.1, torch.ones(2)), ValueError, "lr_minus"),
    ("update variant", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), 1.0, 0.1, 0.1, "stdp"), ValueError, "variant"),
    ("update bounds", lambda: compute_stdp_update(torch.zeros(3), torch.zeros(3), 1.0, 0.1, 0.1, weight_min=1.0), ValueError, "weight_min"),
    ("update weights type", lambda: compute_stdp_update([0.5], torch.zeros(1), 1.0, 0.1, 0.1), TypeError, "weights"),
    # --- compute_batch_update / batch_stdp_update
    ("batch weights rank", lambda: learner.compute_batch_update(torch.zeros(2, 2, 2), PRE, POST), ValueError, "weights"),
    ("batch pre rank", lambda: learner.compute_batch_update(W4, torch.zeros(3, 3), POST), ValueError, "pre_spike_times"),
    ("batch rank mix", lambda: learner.compute_batch_update(W4, PRE[0], POST), ValueError, "post_spike_times"),
    ("batch channels", lambda: learner.compute_batch_update(W4, torch.zeros(1, 2, 3, 3), POST), ValueError, "pre_spike_times"),
    ("batch post shape", lambda: learner.compute_batch_update(W4, PRE, torch.zeros(1, 2, 3, 3)), ValueError, "post_spike_times"),
    ("batch post batch", lambda: learner.compute_batch_update(W4, PRE, torch.zeros(2, 2, 2, 2)), ValueError, "post_spike_times"),
    ("batch mask shape", lambda: learner.compute_batch_update(W4, PRE, POST, torch.ones(1, 2, 1, 1, dtype=torch.bool)), ValueError, "winner_mask"),
    ("batch mask non-binary", lambda: learner.compute_batch_update(W4, PRE, POST, torch.full((1, 2, 2, 2), 3.0)), ValueError, "winner_mask"),
    ("batch pre nan", lambda: learner.compute_batch_update(W4, _nan((1, 1, 3, 3)), POST), ValueError, "pre_spike_times"),
    ("batch post negative", lambda: learner.compute_batch_update(W4, PRE, -torch.ones(1, 2, 2, 2)), ValueError, "post_spike_times"),
    ("batch non-square kernel", lambda: learner.compute_batch_update(torch.zeros(2, 1, 2, 3), PRE, POST), ValueError, "weights"),
    ("batch int weights", lambda: learner.compute_batch_update(W4.long(), PRE, POST), TypeError, "weights"),
    ("batch stride zero", lambda: learner.compute_batch_update(W4, PRE, POST, stride=0), ValueError, "stride"),
    ("batch padding negative", lambda: learner.compute_batch_update(W4, PRE, POST, padding=-2), ValueError, "padding"),
    ("batch fn lr", lambda: batch_stdp_update(W4, PRE, POST, None, NAN, 0.1), ValueError, "lr_plus"),
    ("apply delta shape", lambda: learner.apply_update(W4.clone(), torch.zeros(2)), ValueError, "delta"),
    # --- update_weights_for_winner
    ("winner weights rank", lambda: learner.update_weights_for_winner(W4, PRE[0], 1.0, 0, 0, 2), ValueError, "weights"),
    ("winner kernel mismatch", lambda: learner.update_weights_for_winner(W4[0], PRE[0], 1.0, 0, 0, 3), ValueError, "weights"),
    ("winner post inf", lambda: learner.update_weights_for_winner(W4[0].clone(), PRE[0], INF, 0, 0, 2), ValueError, "post_spike_time"),
    ("winner y outside", lambda: learner.update_weights_for_winner(W4[0].clone(), PRE[0], 1.0, 2, 0, 2), ValueError, "winner_y"),
    # --- convergence
    ("metric not tensor", lambda: compute_convergence_metric([0.5]), TypeError, "weights"),
    ("metric nan", lambda: compute_convergence_metric(torch.tensor([NAN])), ValueError, "weights"),
    ("has_converged threshold", lambda: has_converged(torch.zeros(2), threshold=-1.0), ValueError, "threshold"),
    ("tracker channels", lambda: ConvergenceTracker(0, (2, 2)), ValueError, "n_channels"),
    ("tracker shape", lambda: ConvergenceTracker(2, (2, 0)), ValueError, "spatial_shape"),
    ("tracker min_wins", lambda: ConvergenceTracker(2, (2, 2), min_wins=-1), ValueError, "min_wins"),
    ("tracker delta", lambda: ConvergenceTracker(2, (2, 2), delta_threshold=0.0), ValueError, "delta_threshold"),
    ("tracker mask shape", lambda: ConvergenceTracker(2, (2, 2)).update(torch.ones(1, 3, 2, 2)), ValueError, "winner_mask"),
    ("tracker deltas shape", lambda: ConvergenceTracker(2, (2, 2)).update(torch.ones(1, 2, 2, 2), torch.zeros(3, 4)), ValueError, "weight_deltas"),
    ("tracker ratio threshold", lambda: ConvergenceTracker(2, (2, 2)).is_converged(1.5), ValueError, "threshold"),
    # --- adaptive threshold
    ("at channels", lambda: AdaptiveThreshold(-1, (2, 2)), ValueError, "n_channels"),
    ("at initial outside", lambda: AdaptiveThreshold(1, (2, 2), initial_threshold=500.0), ValueError, "initial_threshold"),
    ("at target", lambda: AdaptiveThreshold(1, (2, 2), target_rate=1.5), ValueError, "target_rate"),
    ("at lr", lambda: AdaptiveThreshold(1, (2, 2), learning_rate=-0.1), ValueError, "learning_rate"),
    ("at bounds", lambda: AdaptiveThreshold(1, (2, 2), threshold_min=5.0, threshold_max=2.0), ValueError, "threshold_min"),
    ("at min zero", lambda: AdaptiveThreshold(1, (2, 2), threshold_min=0.0), ValueError, "threshold_min"),
    ("at spikes shape", lambda: AdaptiveThreshold(1, (2, 2)).update(torch.zeros(1, 1, 3, 3)), ValueError, "spikes"),
    ("at spikes non-binary", lambda: AdaptiveThreshold(1, (2, 2)).update(torch.full((1, 1, 2, 2), 0.5)), ValueError, "spikes"),
    ("at expand", lambda: AdaptiveThreshold(1, (2, 2)).get_thresholds(0), ValueError, "expand_batch"),
    # --- WTA
    ("wta mode", lambda: WTAConfig(mode="nearest"), ValueError, "mode"),
    ("wta radius", lambda: WTAConfig(local_radius=-1), ValueError, "local_radius"),
    ("wta k zero", lambda: WTAConfig(k_winners=0), ValueError, "k_winners"),
    ("wta k float", lambda: WTAConfig(k_winners=2.5), TypeError, "k_winners"),
    ("wta target", lambda: WTAConfig(target_rate=-0.1), ValueError, "target_rate"),
    ("wta thresholds", lambda: WTAConfig(threshold_min=10.0, threshold_max=1.0), ValueError, "threshold_min"),
    ("wta module config", lambda: WTAInhibition(config="global"), TypeError, "config"),
    ("wta module shape", lambda: WTAInhibition(n_channels=2, spatial_shape=(2, 2, 2)), ValueError, "spatial_shape"),
    ("wta forward rank", lambda: WTAInhibition()(torch.zeros(2, 2), torch.zeros(2, 2)), ValueError, "spikes"),
    ("wta forward membrane", lambda: WTAInhibition()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 3)), ValueError, "membrane"),
    ("wta forward non-binary", lambda: WTAInhibition()(torch.full((1, 1, 2, 2), 0.3), torch.zeros(1, 1, 2, 2)), ValueError, "spikes"),
    ("wta forward nan membrane", lambda: WTAInhibition()(torch.zeros(1, 1, 2, 2), _nan((1, 1, 2, 2))), ValueError, "membrane"),
    ("wta forward pre-reset", lambda: WTAInhibition()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 1)), ValueError, "pre_reset_membrane"),
    ("wta forward threshold", lambda: WTAInhibition()(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2, 2), threshold="high"), TypeError, "threshold"),
    ("select radius", lambda: select_winners(torch.zeros(1, 1, 2, 2), radius=-1), ValueError, "radius"),
    ("select potentials", lambda: select_winners(torch.zeros(1, 1, 2, 2), torch.zeros(1, 1, 2)), ValueError, "potentials"),
    ("select mode", lambda: select_winners(torch.zeros(1, 1, 2, 2), mode="all"), ValueError, "mode"),
    ("find winner rank", lambda: find_wta_winner(torch.zeros(2, 2, 2)), ValueError, "output_spikes"),
    ("find winner potentials", lambda: find_wta_winner(torch.zeros(2, 1, 2, 2), torch.zeros(2, 2, 2)), ValueError, "potentials"),
    ("inhibition rank", lambda: apply_lateral_inhibition(torch.zeros(2, 2), 0, 0, 0), ValueError, "potentials"),
    ("inhibition map", lambda: apply_lateral_inhibition(torch.zeros(2, 2, 2), -1, 0, 0), ValueError, "winner_map"),
    ("inhibition y", lambda: apply_lateral_inhibition(torch.zeros(2, 2, 2), 0, 2, 0), ValueError, "winner_y"),
]


def test_enough_distinct_cases():
    assert len({name for name, *_ in CASES}) == len(CASES) >= 60


@pytest.mark.parametrize("name,call,error,argument", CASES, ids=[c[0] for c in CASES])
def test_bad_input_raises_and_names_argument(name, call, error, argument):
    with pytest.raises(error) as info:
        call()
    assert argument in str(info.value)
