"""STDP rule, batch update and learner bookkeeping on hand-computed cases."""

import math

import pytest
import torch

from stdp_plugins import STDPConfig, STDPLearner, STDPVariant, compute_stdp_update
from stdp_plugins.learning import batch_stdp_update, sequential_stdp_update_

INF = math.inf


def test_multiplicative_update_hand_case():
    """w = [.5, .2, .9, .8] -> f = w(1-w) = [.25, .16, .09, .16]; t_pre = [0, 2, 3, inf],
    t_post = 2: the first two potentiate (+0.1 f), the others depress (-0.05 f)."""
    w = torch.tensor([0.5, 0.2, 0.9, 0.8])
    pre = torch.tensor([0.0, 2.0, 3.0, INF])
    delta = compute_stdp_update(w, pre, 2.0, 0.1, 0.05)
    assert torch.allclose(delta, torch.tensor([0.025, 0.016, -0.0045, -0.008]))


def test_additive_update_hand_case():
    w = torch.tensor([0.5, 0.2, 0.9, 0.8])
    pre = torch.tensor([0.0, 2.0, 3.0, INF])
    delta = compute_stdp_update(w, pre, 2.0, 0.1, 0.05, STDPVariant.ADDITIVE)
    assert torch.allclose(delta, torch.tensor([0.1, 0.1, -0.05, -0.05]))


def test_multiplicative_uses_given_bounds():
    """Bounds [-1, 1], w = 0: f = (0 + 1)(1 - 0) = 1."""
    delta = compute_stdp_update(torch.zeros(1), torch.zeros(1), 0.0, 0.1, 0.05, weight_min=-1.0, weight_max=1.0)
    assert torch.allclose(delta, torch.tensor([0.1]))


def test_update_weights_for_winner_hand_case():
    """pre [[0,1,inf],[2,5,0],[inf,1,1]], winner (0,0), k=2, t_post=1: field [[0,1],[2,5]];
    synapses 0 and 1 potentiate: 0.5 + 0.004*0.25 = 0.501; 2 and 3: 0.5 - 0.003*0.25 = 0.49925."""
    learner = STDPLearner()
    w = torch.full((1, 2, 2), 0.5)
    pre = torch.tensor([[[0.0, 1.0, INF], [2.0, 5.0, 0.0], [INF, 1.0, 1.0]]])
    out = learner.update_weights_for_winner(w, pre, 1.0, 0, 0, kernel_size=2)
    assert out is w
    assert torch.allclose(w, torch.tensor([[[0.501, 0.501], [0.49925, 0.49925]]]))
    assert learner.update_count == 1
    assert learner.convergence_history == [pytest.approx(learner.get_convergence(w))]


def test_update_weights_for_winner_padding_and_not_inplace():
    """padding 1, winner (0,0), k=2: field [[inf, inf], [inf, 0]] -> only the last synapse
    potentiates."""
    learner = STDPLearner(STDPConfig(variant=STDPVariant.ADDITIVE, lr_plus=0.1, lr_minus=0.2))
    w = torch.full((1, 2, 2), 0.5)
    pre = torch.tensor([[[0.0, 1.0], [1.0, 1.0]]])
    out = learner.update_weights_for_winner(w, pre, 0.0, 0, 0, kernel_size=2, padding=1, inplace=False)
    assert torch.equal(w, torch.full((1, 2, 2), 0.5))
    assert torch.allclose(out, torch.tensor([[[0.3, 0.3], [0.3, 0.6]]]))


def test_update_clamps_to_bounds():
    learner = STDPLearner(STDPConfig(variant="additive", lr_plus=0.5, lr_minus=0.5))
    w = torch.tensor([0.9, 0.2]).view(2, 1, 1)
    pre = torch.tensor([0.0, INF]).view(2, 1, 1)
    learner.update_weights_for_winner(w, pre, 0.0, 0, 0, kernel_size=1)
    assert w.flatten().tolist() == [1.0, 0.0]


def test_batch_update_averages_per_channel():
    """Channel 0 wins in two samples: synapse potentiated in one (t_pre 0 <= 1) and depressed
    in the other (t_pre 3 > 1): frac 1/2 -> 0.25 * (0.004/2 - 0.003/2) = 0.000125.
    Channel 1 never wins -> 0."""
    w = torch.full((2, 1, 1, 1), 0.5)
    pre = torch.tensor([0.0, 3.0]).view(2, 1, 1, 1)
    post = torch.tensor([[1.0, INF], [1.0, 2.0]]).view(2, 2, 1, 1)
    mask = torch.tensor([[True, False], [True, False]]).view(2, 2, 1, 1)
    delta = STDPLearner().compute_batch_update(w, pre, post, mask)
    assert delta[0].item() == pytest.approx(0.000125)
    assert delta[1].item() == 0.0


def test_batch_update_none_mask_means_every_finite_post_time():
    """Without a mask, channel 1 of sample 1 (t_post 2, t_pre 3) is a winner too: it
    depresses by 0.003 * 0.25."""
    w = torch.full((2, 1, 1, 1), 0.5)
    pre = torch.tensor([0.0, 3.0]).view(2, 1, 1, 1)
    post = torch.tensor([[1.0, INF], [1.0, 2.0]]).view(2, 2, 1, 1)
    delta = STDPLearner().compute_batch_update(w, pre, post)
    assert delta[1].item() == pytest.approx(-0.00075)


def test_batch_update_skips_winner_without_spike():
    w = torch.full((1, 1, 1, 1), 0.5)
    mask = torch.ones(1, 1, 1, 1, dtype=torch.bool)
    delta = STDPLearner().compute_batch_update(w, torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), INF), mask)
    assert delta.item() == 0.0


def test_batch_update_single_sample_and_stride_padding():
    """3-D inputs are one sample. k=2, stride 2, padding 1 over a 3x3 input -> 2x2 output;
    winner (1, 1) sees rows 1-2, cols 1-2 = [[4, 5], [7, 8]] (times 0..8); t_post 5 ->
    potentiate 4 and 5, depress 7 and 8 (additive, a+ = a- = 1)."""
    learner = STDPLearner(STDPConfig(variant=STDPVariant.ADDITIVE, lr_plus=1.0, lr_minus=1.0))
    pre = torch.arange(9.0).view(1, 3, 3)
    post = torch.full((1, 2, 2), INF)
    post[0, 1, 1] = 5.0
    delta = learner.compute_batch_update(torch.zeros(1, 1, 2, 2), pre, post, stride=2, padding=1)
    assert delta.tolist() == [[[[1.0, 1.0], [-1.0, -1.0]]]]


def test_batch_equals_average_of_per_winner_updates():
    generator = torch.Generator().manual_seed(3)
    learner = STDPLearner(STDPConfig.from_paper("igarss2023"))
    w = learner.initialize_weights((3, 2, 3, 3), generator=generator)
    pre = torch.randint(0, 8, (4, 2, 6, 6), generator=generator).float()
    pre[pre > 5] = INF
    post = torch.randint(0, 8, (4, 3, 4, 4), generator=generator).float()
    post[post > 3] = INF
    delta = learner.compute_batch_update(w, pre, post)
    for c in range(3):
        updates = [
            learner.compute_update(w[c], pre[n, :, y:y + 3, x:x + 3], post[n, c, y, x])
            for n, y, x in torch.isfinite(post[:, c]).nonzero().tolist()
        ]
        assert torch.allclose(delta[c], torch.stack(updates).mean(0), atol=1e-7)


def test_presets():
    k = STDPConfig.from_paper("KHERADPISHEH2018")
    assert (k.lr_plus, k.lr_minus, k.weight_init_mean, k.weight_init_std, k.convergence_threshold) == (
        0.004, 0.003, 0.8, 0.05, 0.01)
    i = STDPConfig.from_paper("igarss2023")
    assert (i.lr_plus, i.lr_minus, i.weight_init_std, i.variant) == (0.04, 0.03, 0.01, STDPVariant.MULTIPLICATIVE)
    assert STDPConfig().weight_init_std == 0.01
    with pytest.raises(ValueError, match="igarss2023, kheradpisheh2018"):
        STDPConfig.from_paper("bindsnet")


def test_initialize_weights_statistics_and_clamp():
    learner = STDPLearner(STDPConfig(weight_init_mean=0.95, weight_init_std=0.2))
    w = learner.initialize_weights((64, 64), generator=torch.Generator().manual_seed(0))
    assert w.min() >= 0.0 and w.max() == 1.0
    assert w.dtype == torch.float32


def test_convergence_normalises_to_bounds_and_stats_reset():
    learner = STDPLearner(STDPConfig(weight_min=0.0, weight_max=2.0, convergence_threshold=0.2))
    w = torch.ones(10)
    assert learner.get_convergence(w) == pytest.approx(0.25)
    assert not learner.has_converged(w)
    assert learner.has_converged(torch.tensor([0.0, 2.0]))
    learner.apply_update(w, torch.full((10,), 5.0))
    assert w.max() == 2.0 and learner.update_count == 1
    learner.reset_stats()
    assert learner.update_count == 0 and learner.convergence_history == []


def test_compute_batch_update_lr_override():
    w = torch.full((1, 1, 1, 1), 0.5)
    delta = STDPLearner().compute_batch_update(w, torch.zeros(1, 1, 1), torch.zeros(1, 1, 1), lr_plus=1.0)
    assert delta.item() == pytest.approx(0.25)


def test_sequential_update_hand_case():
    """One synapse at w = 0.5 potentiated by a winner in each of two samples (a+ = 0.1):
    the mean reduction takes one step, 0.5 + 0.1 * 0.25 = 0.525; the sequential one two,
    then 0.525 + 0.1 * 0.525 * 0.475 = 0.5499375."""
    w = torch.full((1, 1, 1, 1), 0.5, dtype=torch.float64)
    pre = torch.zeros(2, 1, 1, 1, dtype=torch.float64)
    post = torch.ones(2, 1, 1, 1, dtype=torch.float64)
    mean = w + batch_stdp_update(w, pre, post, None, 0.1, 0.05)
    assert torch.allclose(mean, torch.tensor(0.525, dtype=torch.float64))
    sequential = sequential_stdp_update_(w.clone(), pre, post, None, 0.1, 0.05)
    assert torch.allclose(sequential, torch.tensor(0.5499375, dtype=torch.float64))
    # a channel winning in one sample only takes one step; others are untouched
    w2 = torch.full((2, 1, 1, 1), 0.5, dtype=torch.float64)
    post2 = torch.tensor([[1.0, INF], [INF, INF]], dtype=torch.float64).view(2, 2, 1, 1)
    out = sequential_stdp_update_(w2, pre, post2, None, 0.1, 0.05)
    assert out is w2 and out.flatten().tolist() == [0.525, 0.5]
