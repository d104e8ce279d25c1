"""Winner-take-all: hand cases and the batched rule against the sequential walk."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stdp_plugins import (
    WTAConfig,
    WTAInhibition,
    WTAMode,
    apply_lateral_inhibition,
    find_wta_winner,
)
from stdp_plugins.learning import select_winners, select_winners_among
from stdp_plugins.learning.wta import _pointwise_winners, _round_winners, _walk_winners
from wta_reference import sequential_winners

INF = math.inf


def test_global_one_winner_per_map_earliest_first():
    """Map 0: spikes at t=1 (0,0) and t=0 (1,1) -> (1,1). Map 1: t=2 at (0,1) -> itself."""
    times = torch.full((1, 2, 2, 2), INF)
    times[0, 0, 0, 0] = 1.0
    times[0, 0, 1, 1] = 0.0
    times[0, 1, 0, 1] = 2.0
    mask = select_winners(times, mode=WTAMode.GLOBAL)
    assert mask.nonzero().tolist() == [[0, 0, 1, 1], [0, 1, 0, 1]]


def test_ties_broken_by_potential_then_index():
    times = torch.zeros(1, 3, 1, 1)
    potentials = torch.tensor([1.0, 5.0, 5.0]).view(1, 3, 1, 1)
    mask = select_winners(times, potentials, WTAMode.LOCAL, 0)
    assert mask.flatten().tolist() == [False, True, False]


def test_local_radius_blocks_all_channels_nearby():
    """Winner (c0, 0, 0) at t=0 blocks (c1, 1, 1) with radius 1 but not (c1, 0, 2)."""
    times = torch.full((1, 2, 3, 3), INF)
    times[0, 0, 0, 0] = 0.0
    times[0, 1, 1, 1] = 1.0
    times[0, 1, 0, 2] = 2.0
    mask = select_winners(times, mode=WTAMode.LOCAL, radius=1)
    assert mask.nonzero().tolist() == [[0, 0, 0, 0], [0, 1, 0, 2]]
    both = select_winners(times, mode=WTAMode.BOTH, radius=1)
    assert both.nonzero().tolist() == [[0, 0, 0, 0], [0, 1, 0, 2]]


def test_chain_needs_several_rounds():
    """Times 0,1,2,3 along a row, radius 1: 0 wins, blocks 1, so 2 wins, blocks 3."""
    times = torch.tensor([0.0, 1.0, 2.0, 3.0]).view(1, 1, 1, 4)
    mask = select_winners(times, mode=WTAMode.LOCAL, radius=1)
    assert mask.flatten().tolist() == [True, False, True, False]


def test_k_winners_caps_per_sample():
    times = torch.arange(6.0).view(1, 6, 1, 1).repeat(2, 1, 1, 1)
    mask = select_winners(times, mode=WTAMode.GLOBAL, k_winners=2)
    assert mask.sum(dim=(1, 2, 3)).tolist() == [2, 2]
    assert mask[0].flatten().tolist() == [True, True, False, False, False, False]


def test_no_spikes_no_winners():
    assert not select_winners(torch.full((2, 3, 4, 4), INF)).any()


modes = st.sampled_from([WTAMode.GLOBAL, WTAMode.LOCAL, WTAMode.BOTH])


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    mode=modes,
    radius=st.integers(0, 2),
    k=st.one_of(st.none(), st.integers(1, 6)),
)
def test_batched_rule_equals_sequential_walk(seed, shape, mode, radius, k):
    generator = torch.Generator().manual_seed(seed)
    times = torch.randint(0, 4, shape, generator=generator).float()
    times[torch.rand(shape, generator=generator) < 0.4] = INF
    potentials = torch.randint(0, 3, shape, generator=generator).float()
    mask = select_winners(times, potentials, mode, radius, k)
    assert torch.equal(mask, sequential_winners(times, potentials, mode, radius, k))
    # invariants: winners fired, k respected, no winner blocks another
    assert torch.isfinite(times[mask]).all()
    if k is not None:
        assert mask.sum(dim=(1, 2, 3)).max() <= k
    for s, c, y, x in mask.nonzero().tolist():
        for s2, c2, y2, x2 in mask.nonzero().tolist():
            if s2 != s or (c2, y2, x2) == (c, y, x):
                continue
            if mode in (WTAMode.GLOBAL, WTAMode.BOTH):
                assert c2 != c
            if mode in (WTAMode.LOCAL, WTAMode.BOTH):
                assert max(abs(y2 - y), abs(x2 - x)) > radius


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    mode=modes,
    radius=st.integers(0, 2),
    k=st.integers(1, 6),
)
def test_every_strategy_equals_sequential_walk(seed, shape, mode, radius, k):
    """select_winners picks a strategy by mode and k; each one alone equals the walk, with
    many ties in time and potential."""
    generator = torch.Generator().manual_seed(seed)
    times = torch.randint(0, 3, shape, generator=generator).float()
    times[torch.rand(shape, generator=generator) < 0.3] = INF
    potentials = torch.randint(0, 3, shape, generator=generator).double()
    expected = sequential_winners(times, potentials, mode, radius, k)
    assert torch.equal(_walk_winners(times, potentials, mode, radius, k), expected)
    assert torch.equal(_round_winners(times, potentials, mode, radius, k), expected)
    pointwise = sequential_winners(times, potentials, WTAMode.LOCAL, 0, None)
    assert torch.equal(_pointwise_winners(times, potentials), pointwise)
    assert torch.equal(_round_winners(times, potentials, WTAMode.LOCAL, 0, None), pointwise)


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.tuples(st.integers(1, 3), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
    mode=modes,
    radius=st.integers(0, 2),
    k=st.integers(1, 6),
)
def test_winners_among_candidates_equal_walk_on_masked_times(seed, shape, mode, radius, k):
    """Candidates in shuffled order, some silent: same winners as the walk on the times
    with every non-candidate silenced."""
    generator = torch.Generator().manual_seed(seed)
    times = torch.randint(0, 3, shape, generator=generator).float()
    times[torch.rand(shape, generator=generator) < 0.3] = INF
    potentials = torch.randint(0, 3, shape, generator=generator).double()
    chosen = torch.rand(shape, generator=generator) < 0.5
    candidates = chosen.nonzero(as_tuple=True)
    shuffle = torch.randperm(candidates[0].numel(), generator=generator)
    candidates = tuple(index[shuffle] for index in candidates)
    expected = sequential_winners(torch.where(chosen, times, INF), potentials, mode, radius, k)
    assert torch.equal(select_winners_among(times, potentials, candidates, mode, radius, k), expected)


@pytest.mark.parametrize(
    "candidates, match",
    [
        ((torch.zeros(2, dtype=torch.long),) * 3, "candidates"),
        ((torch.zeros(2, dtype=torch.long),) * 3 + (torch.zeros(3, dtype=torch.long),), "candidates\\[x\\]"),
        ((torch.zeros(1, dtype=torch.long), torch.tensor([5]), torch.zeros(1, dtype=torch.long),
          torch.zeros(1, dtype=torch.long)), "candidates\\[channel\\] must lie in \\[0, 2\\)"),
        ((torch.zeros(1),) * 4, "int64"),
    ],
)
def test_winners_among_rejects_bad_candidates(candidates, match):
    with pytest.raises((TypeError, ValueError), match=match):
        select_winners_among(torch.zeros(1, 2, 3, 3), None, candidates, WTAMode.BOTH, 1, 2)


def test_winners_among_rejects_bad_times_and_potentials():
    index = (torch.zeros(1, dtype=torch.long),) * 4
    times = torch.zeros(1, 2, 3, 3)
    with pytest.raises(ValueError, match="spike_times must hold times >= 0"):
        select_winners_among(-torch.ones(1, 2, 3, 3), None, index, WTAMode.BOTH, 1, 2)
    with pytest.raises(ValueError, match="potentials must have the shape"):
        select_winners_among(times, torch.zeros(1, 2, 3, 4), index, WTAMode.BOTH, 1, 2)
    with pytest.raises(ValueError, match="potentials must not contain NaN"):
        select_winners_among(times, torch.full((1, 2, 3, 3), math.nan), index, WTAMode.BOTH, 1, 2)


def test_find_wta_winner():
    spikes = torch.zeros(3, 2, 2, 2)
    spikes[1, 1, 0, 1] = 1
    spikes[1, 0, 1, 0] = 1
    spikes[2, 0, 0, 0] = 1
    potentials = torch.zeros(2, 2, 2)
    potentials[0, 1, 0] = 3.0
    assert find_wta_winner(spikes, potentials) == (0, (1, 0), 1.0)
    assert find_wta_winner(spikes) == (0, (1, 0), 1.0)  # lowest flat index
    assert find_wta_winner(torch.zeros(3, 2, 2, 2)) == (None, None, None)


def test_apply_lateral_inhibition():
    p = torch.ones(3, 2, 2)
    out = apply_lateral_inhibition(p, 1, 0, 1, inplace=False)
    assert p.sum() == 12 and out[:, 0, 1].tolist() == [0.0, 0.0, 0.0] and out.sum() == 9
    assert apply_lateral_inhibition(p, 2, 1, 1) is p and p.sum() == 9
    with pytest.raises(ValueError, match="winner_map"):
        apply_lateral_inhibition(p, 3, 0, 0)


def test_module_single_step_filters_and_tracks():
    spikes = torch.zeros(1, 2, 2, 2)
    spikes[0, 0, 0, 0] = spikes[0, 0, 1, 1] = spikes[0, 1, 1, 1] = 1
    membrane = torch.zeros(1, 2, 2, 2)
    membrane[0, 0, 1, 1] = 2.0
    wta = WTAInhibition(WTAConfig(mode=WTAMode.GLOBAL, enable_homeostasis=False))
    filtered, mask = wta(spikes, membrane)
    assert mask.nonzero().tolist() == [[0, 0, 1, 1], [0, 1, 1, 1]]
    assert torch.equal(filtered, mask.float())
    assert wta.winner_ratio == pytest.approx(2 / 3)
    assert torch.equal(wta.get_winner_mask(), mask)
    assert wta.get_thresholds() is None
    wta.reset_statistics()
    assert wta.winner_ratio == 0.0


def test_module_multi_step_keeps_all_winner_spikes_and_ties_by_pre_reset():
    """Both channels first fire at step 1 at (0, 0); the pre-reset potential (5 > 4) picks
    channel 1, which keeps its spikes at steps 1 and 2; channel 0 loses all of its."""
    spikes = torch.zeros(3, 1, 2, 1, 1)
    spikes[1:, 0, 0] = 1
    spikes[1:, 0, 1] = 1
    membrane = torch.zeros_like(spikes)
    pre_reset = torch.zeros_like(spikes)
    pre_reset[1, 0, 0] = 4.0
    pre_reset[1, 0, 1] = 5.0
    wta = WTAInhibition(WTAConfig(mode=WTAMode.LOCAL, local_radius=0, enable_homeostasis=False))
    filtered, mask = wta(spikes, membrane, pre_reset_membrane=pre_reset)
    assert mask.shape == (1, 2, 1, 1)
    assert mask.flatten().tolist() == [False, True]
    assert filtered[:, 0, 1].flatten().tolist() == [0.0, 1.0, 1.0]
    assert filtered[:, 0, 0].sum() == 0


def test_module_homeostasis_thresholds_decide_firing_and_adapt():
    cfg = WTAConfig(mode=WTAMode.GLOBAL, homeostasis_lr=0.5, target_rate=0.0, threshold_min=1.0)
    wta = WTAInhibition(cfg, n_channels=1, spatial_shape=(1, 2), initial_threshold=2.0)
    membrane = torch.tensor([[[[3.0, 1.5]]]])
    filtered, mask = wta(torch.zeros_like(membrane), membrane)
    assert mask.flatten().tolist() == [True, False]  # 3 >= 2 fires, 1.5 < 2 does not
    # winner rate 1 vs target 0: theta += 0.5 * 1 * 2 = 3; the loser stays at 2
    assert wta.get_thresholds(2).shape == (2, 1, 1, 2)
    assert wta.get_thresholds()[0, 0, 0].tolist() == [3.0, 2.0]
    wta.eval()
    wta(torch.zeros_like(membrane), membrane, threshold=1.0)
    assert wta.get_thresholds()[0, 0, 0].tolist() == [3.0, 2.0]
    assert wta.get_winner_mask().flatten().tolist() == [True, False]


def test_nonzero_indices_equals_torch_nonzero():
    from stdp_plugins.learning._indexing import nonzero_indices

    g = torch.Generator().manual_seed(0)
    for shape in [(3, 4, 5, 6), (7,), (2, 0, 3)]:
        mask = torch.rand(shape, generator=g) < 0.2
        got, expected = nonzero_indices(mask), mask.nonzero(as_tuple=True)
        assert len(got) == len(expected)
        assert all(a.dtype == torch.int64 and torch.equal(a, b) for a, b in zip(got, expected))
    values = torch.tensor([[0.0, 2.0], [1.0, 0.0]])  # non-bool masks: non-zero entries
    assert [t.tolist() for t in nonzero_indices(values)] == [[0, 1], [1, 0]]
