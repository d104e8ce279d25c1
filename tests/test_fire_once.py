"""The paper's fire-once IF neuron: the functional core and its SpikingJelly / snnTorch layers.

Real SpikingJelly 2.x and snnTorch 1.x, no mocks.
"""

from __future__ import annotations

import math

import pytest
import snntorch
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from snntorch import utils as snn_utils
from spikingjelly.activation_based import functional, layer
from torch import nn

import stdp_plugins.snntorch as snt
import stdp_plugins.spikingjelly as sj
from stdp_plugins.backends import dense_first_spike_conv
from stdp_plugins.learning import WTAConfig, WTAMode
from stdp_plugins.learning.fire_once_if import fire_once, first_spike_only, max_pool_spikes
from stdp_plugins.models import min_pool_times
from stdp_plugins.spikingjelly.learner import _is_fresh

INF = math.inf


def _currents(shape, seed, low=-0.5, high=1.0, dtype=torch.float32):
    generator = torch.Generator().manual_seed(seed)
    return (torch.rand(shape, generator=generator, dtype=torch.float64) * (high - low) + low).to(dtype)


def _first_times(spikes: torch.Tensor) -> torch.Tensor:
    """First-spike step of each unit of ``[T, ...]`` spikes, ``inf`` when silent."""
    fired = spikes != 0
    first = fired.to(torch.uint8).argmax(0).to(torch.float32)
    return torch.where(fired.any(0), first, INF)


def _flat(tensor: torch.Tensor) -> list:
    return tensor.flatten().tolist()


# --- functional core ------------------------------------------------------------------


def test_fire_once_spikes_at_first_crossing_only():
    spikes, v, fired = fire_once(torch.tensor([[0.4], [0.4], [0.4], [5.0]], dtype=torch.float64), 1.0)
    assert _flat(spikes) == [0.0, 0.0, 1.0, 0.0]
    assert spikes.dtype == torch.float64
    assert _flat(v) == [0.4 + 0.4 + 0.4 + 5.0]
    assert fired.dtype == torch.bool and _flat(fired) == [True]


def test_fire_once_threshold_reached_exactly_fires():
    spikes, v, _ = fire_once(torch.tensor([[0.5, 0.25], [0.5, 0.25]]), 1.0)
    assert spikes.tolist() == [[0.0, 0.0], [1.0, 0.0]]
    assert v.tolist() == [1.0, 0.5]


def test_fire_once_negative_currents_integrate_without_reset():
    currents = torch.tensor([[0.6, 1.0], [-0.5, -2.0], [0.6, 3.0], [0.5, 0.0]], dtype=torch.float64)
    spikes, v, fired = fire_once(currents, 1.0)
    # neuron 0: 0.6, 0.1, 0.7, 1.2 -> fires at t=3; neuron 1: 1, -1, 2, 2 -> only at t=0
    assert spikes.tolist() == [[0.0, 1.0], [0.0, 0.0], [0.0, 0.0], [1.0, 0.0]]
    assert v.tolist() == [0.6 - 0.5 + 0.6 + 0.5, 2.0]
    assert fired.tolist() == [True, True]


def test_fire_once_continues_from_given_state_without_changing_it():
    v0 = torch.tensor([0.75, 0.75, 0.0])
    fired0 = torch.tensor([True, False, False])
    currents = torch.tensor([[0.25, 0.25, 0.5], [1.0, 1.0, 0.5]])
    spikes, v, fired = fire_once(currents, 1.0, v0, fired0)
    assert spikes.tolist() == [[0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert v.tolist() == [2.0, 2.0, 1.0]
    assert fired.tolist() == [True, True, True]
    assert v0.tolist() == [0.75, 0.75, 0.0] and fired0.tolist() == [True, False, False]


def test_fire_once_returns_v_seq_and_takes_per_neuron_thresholds():
    currents = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]])
    spikes, v, fired, v_seq = fire_once(currents, torch.tensor([2.0, 3.0]), return_v_seq=True)
    assert spikes.tolist() == [[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]]
    assert v_seq.tolist() == [[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]]
    assert torch.equal(v, v_seq[-1])


def test_fire_once_empty_window_returns_the_state():
    spikes, v, fired = fire_once(torch.zeros(0, 2), 1.0, torch.tensor([0.5, 2.0]), torch.tensor([False, True]))
    assert spikes.shape == (0, 2)
    assert v.tolist() == [0.5, 2.0] and fired.tolist() == [False, True]


def test_fire_once_split_window_equals_whole_window_bit_for_bit():
    currents = _currents((9, 2, 3, 5, 5), seed=1)
    whole = fire_once(currents, 1.5, return_v_seq=True)
    head = fire_once(currents[:4], 1.5, return_v_seq=True)
    tail = fire_once(currents[4:], 1.5, head[1], head[2], return_v_seq=True)
    assert torch.equal(torch.cat([head[0], tail[0]]), whole[0])
    assert torch.equal(torch.cat([head[3], tail[3]]), whole[3])
    assert torch.equal(tail[1], whole[1]) and torch.equal(tail[2], whole[2])


def test_first_spike_only_keeps_each_units_first_spike():
    spikes = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 1.0, 1.0]])
    out, fired = first_spike_only(spikes)
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]
    assert fired.tolist() == [True, True, True]
    out, fired = first_spike_only(spikes, torch.tensor([False, False, True]))
    assert out.tolist() == [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]


def test_max_pool_spikes_pools_every_step():
    spikes = torch.zeros(2, 1, 1, 2, 4)
    spikes[0, 0, 0, 1, 1] = 1.0
    spikes[1, 0, 0, 0, 3] = 1.0
    assert max_pool_spikes(spikes, 2).tolist() == [[[[[1.0, 0.0]]]], [[[[0.0, 1.0]]]]]


@st.composite
def _windows(draw):
    steps = draw(st.integers(0, 8))
    units = draw(st.integers(1, 4))
    values = st.floats(-2.0, 3.0, allow_nan=False, width=64)
    rows = draw(st.lists(st.lists(values, min_size=units, max_size=units), min_size=steps, max_size=steps))
    return torch.tensor(rows, dtype=torch.float64).reshape(steps, units), draw(st.floats(0.01, 5.0))


@settings(max_examples=200, deadline=None)
@given(window=_windows())
def test_fire_once_matches_the_running_sum_definition(window):
    currents, threshold = window
    spikes, v, fired, v_seq = fire_once(currents, threshold, return_v_seq=True)
    assert bool((spikes.sum(0) <= 1).all())
    for unit in range(currents.shape[1]):
        running, sums = 0.0, []
        for value in currents[:, unit].tolist():
            running += value
            sums.append(running)
        crossings = [t for t, s in enumerate(sums) if s >= threshold]
        expected = [0.0] * len(sums)
        if crossings:
            expected[crossings[0]] = 1.0
        assert spikes[:, unit].tolist() == expected
        assert v_seq[:, unit].tolist() == sums
        assert v[unit].item() == running
        assert bool(fired[unit]) == bool(crossings)


@pytest.mark.parametrize("threshold, error", [(0.0, ValueError), (-1.0, ValueError), (INF, ValueError),
                                              (math.nan, ValueError), ("1", TypeError), (True, TypeError)])
def test_fire_once_rejects_bad_thresholds(threshold, error):
    with pytest.raises(error, match="threshold"):
        fire_once(torch.zeros(2, 3), threshold)


def test_fire_once_rejects_bad_tensors_naming_the_argument():
    with pytest.raises(TypeError, match=r"currents must be a torch.Tensor, got list"):
        fire_once([[1.0]], 1.0)
    with pytest.raises(TypeError, match=r"currents must be a floating tensor, got dtype torch.int64"):
        fire_once(torch.ones(2, 3, dtype=torch.long), 1.0)
    with pytest.raises(ValueError, match=r"currents must be time-major \[T, \.\.\.\]"):
        fire_once(torch.tensor(1.0), 1.0)
    with pytest.raises(ValueError, match=r"v must have the shape of one time step \(3,\), got \(2,\)"):
        fire_once(torch.zeros(2, 3), 1.0, v=torch.zeros(2))
    with pytest.raises(TypeError, match=r"fired must be a bool tensor, got dtype torch.float32"):
        fire_once(torch.zeros(2, 3), 1.0, fired=torch.zeros(3))
    with pytest.raises(ValueError, match=r"threshold must broadcast to one time step \(3,\), got shape \(2,\)"):
        fire_once(torch.zeros(2, 3), torch.ones(2))
    with pytest.raises(ValueError, match=r"fired must have the shape of one time step"):
        first_spike_only(torch.zeros(2, 3), torch.zeros(4, dtype=torch.bool))
    with pytest.raises(ValueError, match=r"spikes must be a 5-D tensor \[T, N, C, H, W\], got shape \(2, 3\)"):
        max_pool_spikes(torch.zeros(2, 3), 2)
    with pytest.raises(ValueError, match=r"kernel_size\[0\] must be >= 1, got 0"):
        max_pool_spikes(torch.zeros(1, 1, 1, 2, 2), 0)
    with pytest.raises(ValueError, match=r"padding must be at most half of kernel_size \(2, 2\), got \(2, 2\)"):
        sj.FirstSpikeMaxPool2d(2, padding=2)
    with pytest.raises(TypeError, match=r"stride must be an int or a pair of ints, got str"):
        snt.FirstSpikeMaxPool2d(2, stride="2")
    with pytest.raises(ValueError, match=r"v_threshold must be > 0.0, got -1.0"):
        sj.FireOnceIFNode(v_threshold=-1.0)
    with pytest.raises(ValueError, match=r"threshold must be > 0.0, got 0.0"):
        snt.FireOnceIF(threshold=0.0)
    with pytest.raises(TypeError, match=r"mem must not be passed while init_hidden=True"):
        snt.FireOnceIF(init_hidden=True)(torch.zeros(2), torch.zeros(2))
    with pytest.raises(TypeError, match=r"train_only must be a bool, got str 'yes'"):
        sj.WTALayer(train_only="yes")
    with pytest.raises(TypeError, match=r"train_only must be a bool, got int 1"):
        snt.WTALayer(train_only=1)


# --- SpikingJelly ---------------------------------------------------------------------


def _sj_steps(node: sj.FireOnceIFNode, x_seq: torch.Tensor):
    spikes = torch.stack([node(x) for x in x_seq])
    return spikes, node.v, node.fired


def test_sj_single_steps_equal_one_multi_step_forward():
    x_seq = _currents((7, 2, 3, 4, 4), seed=2)
    spikes_s, v_s, fired_s = _sj_steps(sj.FireOnceIFNode(1.2), x_seq)
    node = sj.FireOnceIFNode(1.2, step_mode="m")
    spikes_m = node(x_seq)
    assert spikes_m.sum() > 0 and bool((spikes_m.sum(0) <= 1).all())
    assert torch.equal(spikes_s, spikes_m)
    assert torch.equal(v_s, node.v) and torch.equal(fired_s, node.fired)
    assert torch.equal(spikes_m, fire_once(x_seq, 1.2)[0])


def test_sj_reset_net_starts_a_new_window():
    x_seq = _currents((5, 2, 6), seed=3, low=0.0)
    net = nn.Sequential(sj.FireOnceIFNode(1.0, step_mode="m"))
    first = net(x_seq)
    assert not _is_fresh(net[0])
    assert net(x_seq).sum() == 0  # the window continues: everyone who could fire has fired
    functional.reset_net(net)
    assert net[0].v == 0.0 and net[0].fired is False and _is_fresh(net[0])
    assert torch.equal(net(x_seq), first)
    assert torch.equal(net(x_seq[:, :1]), first[:, :1])  # a new batch shape starts a new window too


def test_sj_store_v_seq_keeps_the_membrane_of_every_step():
    x_seq = _currents((4, 3, 5), seed=4)
    node = sj.FireOnceIFNode(0.8, step_mode="m", store_v_seq=True)
    spikes = node(x_seq)
    assert torch.equal(node.v_seq, fire_once(x_seq, 0.8, return_v_seq=True)[3])
    assert torch.equal(node.v_seq[-1], node.v)
    assert torch.equal(spikes, fire_once(x_seq, 0.8)[0])
    functional.reset_net(node)
    assert node.v_seq is None
    plain = sj.FireOnceIFNode(0.8, step_mode="m")
    plain(x_seq)
    assert plain.v_seq is None
    assert repr(node) == "FireOnceIFNode(v_threshold=0.8, step_mode=m, store_v_seq=True)"


def _pool_input() -> torch.Tensor:
    """[T=3, N=1, C=1, 2, 4]: two inputs of one 2x2 window fire at t=0 and t=2."""
    x = torch.zeros(3, 1, 1, 2, 4)
    x[0, 0, 0, 0, 0] = 1.0
    x[2, 0, 0, 1, 1] = 1.0
    x[1, 0, 0, 0, 3] = 1.0
    x[2, 0, 0, 1, 2] = 1.0
    return x


EXPECTED_POOL = [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]  # [T, W_out], first spikes only


def test_sj_first_spike_max_pool_in_both_modes():
    x = _pool_input()
    pool_m = sj.FirstSpikeMaxPool2d(2, step_mode="m")
    assert pool_m(x)[:, 0, 0, 0].tolist() == EXPECTED_POOL
    pool_s = sj.FirstSpikeMaxPool2d(2)
    assert torch.stack([pool_s(x_t) for x_t in x])[:, 0, 0, 0].tolist() == EXPECTED_POOL
    assert pool_s.fired.tolist() == [[[[True, True]]]]
    functional.reset_net(pool_s)
    assert pool_s.fired is False
    assert pool_s(x[2])[0, 0, 0].tolist() == [1.0, 1.0]


def test_sj_first_spike_max_pool_padding_never_fires():
    x = torch.zeros(2, 1, 1, 2, 2)
    x[1, 0, 0, 1, 1] = 1.0
    out = sj.FirstSpikeMaxPool2d(2, stride=2, padding=1, step_mode="m")(x)
    assert out[:, 0, 0].tolist() == [[[0.0, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 1.0]]]


@pytest.mark.parametrize("padding, via_zero_pad", [(0, False), (2, False), (2, True)])
def test_sj_paper_layer_equals_first_spike_conv_and_min_pool(padding, via_zero_pad):
    generator = torch.Generator().manual_seed(5)
    time_steps, n, c_in, c_out, size = 6, 2, 2, 4, 9
    in_times = torch.randint(0, time_steps, (n, c_in, size, size), generator=generator).float()
    in_times[torch.rand(in_times.shape, generator=generator) < 0.4] = INF
    weight = torch.randint(0, 256, (c_out, c_in, 5, 5), generator=generator).double() / 256  # exact sums
    threshold = 14.0
    conv = layer.Conv2d(c_in, c_out, 5, padding=0 if via_zero_pad else padding, bias=False).double()
    conv.weight.data.copy_(weight)
    pad = [layer.StepModeContainer(False, "s", nn.ZeroPad2d(padding))] if via_zero_pad else []
    net = nn.Sequential(*pad, conv, sj.FireOnceIFNode(threshold), sj.FirstSpikeMaxPool2d(2, 2))
    functional.set_step_mode(net, "m")
    steps = torch.arange(time_steps, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    events = (in_times[None] == steps).double()  # each input fires once, at its time
    out = net(events)

    times, _ = dense_first_spike_conv(in_times, weight.float(), threshold, padding, time_steps)
    expected = min_pool_times(times, 2, 2)
    assert not torch.isfinite(expected).all() and expected[torch.isfinite(expected)].unique().numel() == 3
    assert torch.equal(_first_times(out), expected)
    assert torch.equal(net[-2].fired, torch.isfinite(times))


# --- snnTorch -------------------------------------------------------------------------


def test_snn_is_a_spiking_neuron_with_a_threshold_buffer():
    lif = snt.FireOnceIF(threshold=2.5)
    assert isinstance(lif, snntorch.SpikingNeuron) and snt.is_neuron(lif)
    assert "threshold" in lif._buffers and lif.threshold.item() == 2.5
    assert repr(lif) == "FireOnceIF(threshold=2.5, init_hidden=False, output=False)"


def test_snn_per_step_loops_equal_forward_sequence():
    cur_seq = _currents((7, 3, 2, 4, 4), seed=6)
    spk_ref, mem_ref = snt.FireOnceIF(threshold=1.1).forward_sequence(cur_seq)
    assert spk_ref.sum() > 0 and torch.equal(spk_ref, fire_once(cur_seq, 1.1)[0])

    lif = snt.FireOnceIF(threshold=1.1)
    mem = lif.reset_mem()
    spks, mems = [], []
    for cur in cur_seq:
        spk, mem = lif(cur, mem)
        spks.append(spk)
        mems.append(mem)
    assert torch.equal(torch.stack(spks), spk_ref) and torch.equal(torch.stack(mems), mem_ref)

    hidden = snt.FireOnceIF(threshold=1.1, init_hidden=True)
    assert torch.equal(torch.stack([hidden(cur) for cur in cur_seq]), spk_ref)
    assert torch.equal(hidden.mem, mem_ref[-1])

    with_output = snt.FireOnceIF(threshold=1.1, init_hidden=True, output=True)
    pairs = [with_output(cur) for cur in cur_seq]
    assert torch.equal(torch.stack([s for s, _ in pairs]), spk_ref)
    assert torch.equal(torch.stack([m for _, m in pairs]), mem_ref)


def test_snn_forward_sequence_continues_the_stored_window():
    cur_seq = _currents((6, 2, 5), seed=7)
    spk_ref, mem_ref = snt.FireOnceIF(threshold=0.9).forward_sequence(cur_seq)
    lif = snt.FireOnceIF(threshold=0.9)
    spk_head, _ = lif.forward_sequence(cur_seq[:2])
    spk_mid, mem_mid = lif(cur_seq[2])
    spk_tail, mem_tail = lif.forward_sequence(cur_seq[3:])
    assert torch.equal(torch.cat([spk_head, spk_mid[None], spk_tail]), spk_ref)
    assert torch.equal(mem_tail, mem_ref[3:])


def test_snn_utils_reset_and_reset_mem_restart_the_window():
    cur_seq = _currents((5, 2, 6), seed=8, low=0.0)
    net = nn.Sequential(nn.Identity(), snt.FireOnceIF(threshold=1.0, init_hidden=True))
    first = torch.stack([net(cur) for cur in cur_seq])
    assert first.sum() > 0
    assert torch.stack([net(cur) for cur in cur_seq]).sum() == 0  # still the same window
    snn_utils.reset(net)
    assert torch.equal(net[1].mem, torch.zeros(2, 6))
    assert torch.equal(torch.stack([net(cur) for cur in cur_seq]), first)

    lif = snt.FireOnceIF(threshold=1.0)
    for _ in range(2):
        mem = lif.reset_mem()
        spks = []
        for cur in cur_seq:
            spk, mem = lif(cur, mem)
            spks.append(spk)
        assert torch.equal(torch.stack(spks), first)


def test_snn_a_foreign_membrane_counts_as_fired_where_it_reached_threshold():
    lif = snt.FireOnceIF(threshold=1.0)
    spk, mem = lif(torch.tensor([1.5, 0.5]))
    assert spk.tolist() == [1.0, 0.0]
    spk, _ = lif(torch.tensor([0.0, 0.5]), mem.clone())  # not the returned tensor: derived state
    assert spk.tolist() == [0.0, 1.0]
    spk, _ = lif(torch.tensor([0.0, 0.0]), torch.tensor([0.0, 2.0]))
    assert spk.tolist() == [0.0, 0.0]


def test_snn_first_spike_max_pool_and_its_reset():
    x = _pool_input()
    pool = snt.FirstSpikeMaxPool2d(2)
    assert torch.stack([pool(x_t) for x_t in x])[:, 0, 0, 0].tolist() == EXPECTED_POOL
    assert pool(x[0])[0, 0, 0].tolist() == [0.0, 0.0]  # the window continues
    pool.reset()
    assert pool.fired is None
    assert pool(x[2])[0, 0, 0].tolist() == [1.0, 1.0]
    assert pool(torch.ones(2, 1, 2, 4)).sum() == 4  # a new batch shape starts a new window
    assert repr(pool) == "FirstSpikeMaxPool2d(kernel_size=(2, 2), stride=(2, 2), padding=(0, 0))"


# --- WTA layers with train_only ---------------------------------------------------------


def _two_channel_spikes() -> torch.Tensor:
    """[T=2, N=1, C=2, 1, 2]: both channels fire at position 0 (t=0); channel 1 at position 1 (t=1)."""
    x = torch.zeros(2, 1, 2, 1, 2)
    x[0, 0, :, 0, 0] = 1.0
    x[1, 0, 1, 0, 1] = 1.0
    return x


POINTWISE = WTAConfig(mode=WTAMode.LOCAL, local_radius=0)
INHIBITED = [[[[1.0, 0.0]], [[0.0, 0.0]]], [[[0.0, 0.0]], [[0.0, 1.0]]]]  # [T, C, H, W]


def test_sj_wta_train_only_inhibits_in_training_and_passes_in_eval():
    x = _two_channel_spikes()
    wta = sj.WTALayer(POINTWISE, step_mode="m", train_only=True)
    assert wta(x)[:, 0].tolist() == INHIBITED
    functional.reset_net(wta)
    wta.eval()
    assert wta(x) is x
    always = sj.WTALayer(POINTWISE, step_mode="m").eval()
    assert always(x)[:, 0].tolist() == INHIBITED
    assert "train_only=True" in repr(wta) and "train_only=False" in repr(always)


def test_snn_wta_train_only_inhibits_in_training_and_passes_in_eval():
    x = _two_channel_spikes()
    wta = snt.WTALayer(POINTWISE, train_only=True)
    assert torch.stack([wta(x_t) for x_t in x])[:, 0].tolist() == INHIBITED
    wta.reset()
    wta.eval()
    step = x[0]
    pair = (step, torch.zeros_like(step))
    assert wta(step) is step and wta(pair) is pair
    always = snt.WTALayer(POINTWISE).eval()
    assert torch.stack([always(x_t) for x_t in x])[:, 0].tolist() == INHIBITED
    assert "train_only=True" in repr(wta) and "train_only=False" in repr(always)
