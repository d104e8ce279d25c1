"""Adaptive thresholds and convergence tracking on hand-computed cases."""

import pytest
import torch

from stdp_plugins import AdaptiveThreshold, ConvergenceTracker, compute_convergence_metric, has_converged
from stdp_plugins.learning import channel_convergence


def test_adaptive_threshold_update_rule():
    """Rates [1, 0.5] vs target 0.5, lr 0.1, theta 10: [10 + 0.1*0.5*10, 10] = [10.5, 10]."""
    at = AdaptiveThreshold(1, (1, 2), initial_threshold=10.0, target_rate=0.5, learning_rate=0.1)
    spikes = torch.tensor([[[[1.0, 1.0]]], [[[1.0, 0.0]]]])  # [N=2, C=1, 1, 2]
    at.update(spikes)
    assert at.thresholds.flatten().tolist() == pytest.approx([10.5, 10.0])
    assert at.firing_rates.flatten().tolist() == [1.0, 0.5]
    at.update(torch.zeros(3, 2, 1, 1, 2))  # multi-step: rate 0 -> theta *= 1 - 0.05
    assert at.thresholds.flatten().tolist() == pytest.approx([9.975, 9.5])
    assert at.firing_rates.flatten().tolist() == [0.5, 0.25]  # unweighted mean of updates
    assert at.mean_threshold == pytest.approx((9.975 + 9.5) / 2)
    assert at.get_thresholds(4).shape == (4, 1, 1, 2)


def test_adaptive_threshold_clamps_and_resets():
    at = AdaptiveThreshold(2, (2, 2), initial_threshold=2.0, target_rate=0.0, learning_rate=10.0,
                           threshold_min=1.0, threshold_max=5.0)
    at.update(torch.ones(1, 2, 2, 2))
    assert at.thresholds.max() == 5.0
    at.reset_statistics()
    assert at.firing_rates.sum() == 0 and at.thresholds.max() == 5.0
    at.reset_all(3.0)
    assert torch.equal(at.thresholds, torch.full((2, 2, 2), 3.0))
    assert at.firing_rates.sum() == 0


def test_convergence_metric_values():
    assert compute_convergence_metric(torch.tensor([0.5, 0.0, 1.0, 0.5])) == pytest.approx(0.125)
    assert compute_convergence_metric(torch.empty(0)) == 0.0
    assert has_converged(torch.tensor([0.0, 1.0]))
    assert not has_converged(torch.tensor([0.5]), threshold=0.25)  # strict: 0.25 < 0.25 is False
    assert channel_convergence(torch.tensor([[0.5, 0.5], [0.0, 1.0]])).tolist() == [0.25, 0.0]
    assert channel_convergence(torch.tensor([[1.0]]), 0.0, 2.0).tolist() == [0.25]


def test_tracker_counts_wins_and_delta_test():
    tracker = ConvergenceTracker(2, (1, 2), min_wins=2, delta_threshold=0.01)
    mask = torch.tensor([[[[True, False]], [[False, False]]], [[[True, False]], [[False, True]]]])
    tracker.update(mask)
    assert tracker.wins.flatten().tolist() == [2, 0, 0, 1]
    assert tracker.n_converged == 1 and tracker.convergence_ratio == 0.25
    tracker.update(mask, weight_deltas=torch.tensor([[0.5, -0.5], [0.001, 0.0]]))
    # channel 0 moved 0.5 on average -> its winner (0,0,0) is not settled; channel 1 moved 0.0005
    assert tracker.n_converged == 1  # (1, 0, 1): 2 wins, delta 0.0005 < 0.01
    assert not tracker.is_converged(0.5) and tracker.is_converged(0.25)
    tracker.reset()
    assert tracker.n_converged == 0 and tracker.wins.sum() == 0
