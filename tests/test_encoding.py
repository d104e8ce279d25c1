"""DoG filtering, local normalisation and intensity-to-latency coding."""

import math
import re

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.encoding import (
    DoGLatencyEncoder,
    dog_filter,
    dog_kernels,
    encode_images,
    intensity_to_latency,
    local_normalization,
    spike_events,
    spike_waves,
)
from stdp_plugins.learning import get_first_spike_times

INF = math.inf


@pytest.fixture(scope="module")
def digits():
    images, _ = embedded_mnist()
    return images[:32]


def test_dog_kernels_are_zero_mean_max_one_and_mirrored():
    k = dog_kernels()
    assert k.shape == (2, 1, 7, 7)
    assert torch.allclose(k.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-7)
    assert torch.allclose(k.amax(dim=(1, 2, 3)), torch.ones(2))
    assert k[0, 0, 3, 3] == 1.0  # on-centre: the centre is the maximum
    assert k[1, 0, 3, 3] < 0  # off-centre: negative centre
    # the off-centre kernel is the on-centre one negated and rescaled
    ratio = k[1] / -k[0]
    assert torch.allclose(ratio, ratio.flatten()[0].expand_as(ratio), rtol=1e-5)


def test_dog_filter_single_bright_pixel():
    image = torch.zeros(1, 9, 9, dtype=torch.uint8)
    image[0, 4, 4] = 200
    k = dog_kernels()
    out = dog_filter(image, k, threshold=50)
    # on-centre response at the pixel is 200 * centre weight; off-centre is negative -> 0
    assert out[0, 0, 4, 4] == pytest.approx(200.0)
    assert out[0, 1, 4, 4] == 0.0
    # a neighbour sees 200 * k[dy, dx]; kept only if >= 50
    expected = 200.0 * float(k[0, 0, 3, 4])
    assert out[0, 0, 4, 5] == pytest.approx(expected if expected >= 50 else 0.0)
    assert bool((out[0, 1] >= 0).all())


def test_local_normalization_hand_computed():
    x = torch.ones(1, 1, 3, 3)
    out = local_normalization(x, radius=1)
    assert out[0, 0, 1, 1] == pytest.approx(1.0)  # full window of ones
    assert out[0, 0, 0, 0] == pytest.approx(9 / 4)  # corner: 4 ones in a 9-window
    assert out[0, 0, 0, 1] == pytest.approx(9 / 6)


def test_intensity_to_latency_hand_computed():
    x = torch.tensor([[4.0, 0.0, 3.0, 2.0, 1.0]])
    times = intensity_to_latency(x, time_steps=2)
    assert times.tolist() == [[0.0, INF, 0.0, 1.0, 1.0]]
    ties = intensity_to_latency(torch.tensor([[1.0, 1.0, 1.0]]), time_steps=3)
    assert ties.tolist() == [[0.0, 1.0, 2.0]]  # equal values ranked by flat index


@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=40), st.integers(1, 15))
def test_latency_bins_are_balanced_and_monotone(values, steps):
    x = torch.tensor([values], dtype=torch.float32)
    times = intensity_to_latency(x, steps)[0]
    fired = torch.isfinite(times)
    assert torch.equal(fired, x[0] > 0)
    if fired.any():
        counts = torch.bincount(times[fired].long(), minlength=steps)
        assert int(counts.max() - counts.min()) <= 1 or fired.sum() < steps
        # stronger inputs never fire later
        v, t = x[0][fired], times[fired]
        stronger = v[:, None] > v[None, :]
        assert bool((t[:, None] <= t[None, :])[stronger].all())


def test_spike_waves_are_cumulative_and_invert_first_spike_times():
    times = torch.tensor([[0.0, 2.0, INF, 1.0]])
    waves = spike_waves(times, 3)
    assert waves.shape == (3, 1, 4)
    assert waves[:, 0].T.tolist() == [[1, 1, 1], [0, 0, 1], [0, 0, 0], [0, 1, 1]]
    assert torch.equal(get_first_spike_times(waves), times)


def test_spike_events_fire_once_at_the_first_spike_and_sum_to_the_waves(digits):
    times = torch.tensor([[0.0, 2.0], [INF, 1.0]])
    events = spike_events(times, 3)
    assert events.shape == (3, 2, 2) and events.dtype == torch.float32
    assert events[:, 0, 0].tolist() == [1.0, 0.0, 0.0] and events[:, 0, 1].tolist() == [0.0, 0.0, 1.0]
    assert events[:, 1, 0].tolist() == [0.0, 0.0, 0.0] and events[:, 1, 1].tolist() == [0.0, 1.0, 0.0]
    real = DoGLatencyEncoder().spike_times(digits[:4])
    events = spike_events(real, 15, dtype=torch.bool)
    assert events.dtype == torch.bool and int(events.sum(dim=0).max()) == 1  # at most one spike each
    assert torch.equal(events.cumsum(dim=0).bool(), spike_waves(real, 15, dtype=torch.bool))
    assert torch.equal(get_first_spike_times(events), real)
    assert not spike_events(torch.tensor([3.0, 0.5, -1.0]), 3).any()  # outside [0, T) or not whole


def test_encoding_real_digits(digits):
    times = encode_images(digits)
    assert times.shape == (32, 2, 28, 28) and times.dtype == torch.float32
    fired = torch.isfinite(times)
    assert not bool((fired[:, 0] & fired[:, 1]).any())  # on and off never both respond
    per_image = fired.sum(dim=(1, 2, 3))
    assert bool((per_image > 100).all())
    steps = times[fired].long()
    assert int(steps.min()) == 0 and int(steps.max()) == 14
    # batched equals one image at a time
    single = torch.cat([encode_images(digits[i:i + 1]) for i in range(4)])
    assert torch.equal(single, times[:4])


def test_encoder_module_outputs_waves(digits):
    enc = DoGLatencyEncoder()
    waves = enc(digits[:3])
    assert waves.shape == (15, 3, 2, 28, 28)
    assert bool((waves[1:] >= waves[:-1]).all())
    assert torch.equal(get_first_spike_times(waves), enc.spike_times(digits[:3]))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: dog_kernels(size=6), "size"),
        (lambda: dog_kernels(sigmas=((1.0, 1.0),)), "sigmas[0]"),
        (lambda: dog_kernels(sigmas=((-1.0, 2.0),)), "sigmas[0][0]"),
        (lambda: dog_filter(torch.zeros(2, 3, 8, 8), dog_kernels()), "images"),
        (lambda: dog_filter(torch.full((1, 8, 8), math.nan), dog_kernels()), "images"),
        (lambda: local_normalization(torch.ones(3, 3), 1), "x"),
        (lambda: local_normalization(torch.ones(1, 1, 3, 3), -1), "radius"),
        (lambda: intensity_to_latency(torch.tensor([[-1.0]])), "x"),
        (lambda: intensity_to_latency(torch.ones(1, 3), 0), "time_steps"),
        (lambda: spike_waves(torch.zeros(3), 0), "time_steps"),
        (lambda: spike_events(torch.zeros(3), 0), "time_steps"),
        (lambda: spike_events([0.0], 3), "spike_times"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=re.escape(name)):
        call()
