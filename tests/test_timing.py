"""First-spike times and receptive fields on hand-computed cases."""

import math

import pytest
import torch

from stdp_plugins import extract_receptive_field_times, get_first_spike_times
from stdp_plugins.learning import gather_receptive_field_times

INF = math.inf


def test_first_spike_times_hand_case():
    """Neuron 0 fires at steps 1 and 2 -> 1; neuron 1 at 0 -> 0; neuron 2 never -> inf."""
    spikes = torch.tensor([[0, 1, 0], [1, 0, 0], [1, 1, 0]], dtype=torch.float32)
    assert get_first_spike_times(spikes).tolist() == [1.0, 0.0, INF]


def test_first_spike_times_custom_no_spike_value_and_bool():
    spikes = torch.tensor([[False, False], [False, True]])
    assert get_first_spike_times(spikes, no_spike_value=-1.0).tolist() == [-1.0, 1.0]


def test_first_spike_times_keeps_trailing_shape():
    spikes = torch.zeros(4, 2, 3, 5, 5)
    spikes[2, 1, 0, 4, 4] = 1
    times = get_first_spike_times(spikes)
    assert times.shape == (2, 3, 5, 5)
    assert times[1, 0, 4, 4] == 2.0
    assert torch.isinf(times).sum() == 2 * 3 * 25 - 1


def test_first_spike_times_empty_time_axis():
    assert torch.isinf(get_first_spike_times(torch.zeros(0, 3))).all()


@pytest.mark.parametrize("bad", [torch.tensor(1.0), torch.tensor([[0.5, 1.0]])])
def test_first_spike_times_rejects_bad_spikes(bad):
    with pytest.raises(ValueError, match="spikes"):
        get_first_spike_times(bad)


def _grid():
    """pre times [1, 4, 4] = row * 4 + col (0 .. 15)."""
    return torch.arange(16, dtype=torch.float32).view(1, 4, 4)


def test_receptive_field_no_padding():
    """Output (1, 2) of a 2x2 kernel, stride 1: rows 1-2, cols 2-3 -> [[6, 7], [10, 11]]."""
    field = extract_receptive_field_times(_grid(), 1, 2, kernel_size=2)
    assert field.tolist() == [[[6.0, 7.0], [10.0, 11.0]]]


def test_receptive_field_stride_two():
    """Output (1, 1), k=2, stride 2: rows 2-3, cols 2-3 -> [[10, 11], [14, 15]]."""
    field = extract_receptive_field_times(_grid(), 1, 1, kernel_size=2, stride=2)
    assert field.tolist() == [[[10.0, 11.0], [14.0, 15.0]]]


def test_receptive_field_padding_reads_inf():
    """Output (0, 0), k=3, padding 1: rows -1..1, cols -1..1; the top row and left column
    are padding (inf), the rest is [[0, 1], [4, 5]]."""
    field = extract_receptive_field_times(_grid(), 0, 0, kernel_size=3, padding=1)
    assert field.tolist() == [[[INF, INF, INF], [INF, 0.0, 1.0], [INF, 4.0, 5.0]]]


def test_receptive_field_multi_channel():
    pre = torch.stack([_grid()[0], _grid()[0] + 100])
    field = extract_receptive_field_times(pre, 0, 0, kernel_size=1)
    assert field.tolist() == [[[0.0]], [[100.0]]]


def test_gather_matches_single_extraction():
    generator = torch.Generator().manual_seed(0)
    pre = torch.randint(0, 6, (3, 2, 7, 6), generator=generator).float()
    pre[pre > 4] = INF
    sample = torch.tensor([0, 2, 1])
    y = torch.tensor([0, 3, 2])
    x = torch.tensor([2, 0, 1])
    batch = gather_receptive_field_times(pre, sample, y, x, 3, stride=2, padding=1)
    for i in range(3):
        single = extract_receptive_field_times(pre[sample[i]], int(y[i]), int(x[i]), 3, 2, 1)
        assert torch.equal(batch[i], single)


def test_receptive_field_rejects_out_of_map_position():
    with pytest.raises(ValueError, match="post_y, post_x"):
        extract_receptive_field_times(_grid(), 3, 0, kernel_size=2)
