"""Hypothesis invariants of the STDP core (at least 200 examples each)."""

import math

import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from stdp_plugins import STDPConfig, STDPLearner, STDPVariant, get_first_spike_times
from stdp_plugins.learning import batch_stdp_update, sequential_stdp_update_

INF = math.inf
variants = st.sampled_from(list(STDPVariant))
seeds = st.integers(0, 2**31 - 1)


def _random_times(shape, generator, horizon=6, silent=0.3):
    times = torch.randint(0, horizon, shape, generator=generator).float()
    times[torch.rand(shape, generator=generator) < silent] = INF
    return times


@settings(max_examples=200, deadline=None)
@given(seed=seeds, variant=variants, steps=st.integers(1, 8), lr=st.floats(0.0, 2.0),
       bounds=st.tuples(st.floats(-3, 3), st.floats(0.1, 3)))
def test_weights_stay_in_bounds_after_any_update_sequence(seed, variant, steps, lr, bounds):
    low, width = bounds
    learner = STDPLearner(STDPConfig(lr_plus=lr, lr_minus=lr / 2, weight_min=low, weight_max=low + width,
                                     variant=variant, weight_init_mean=low + width / 2, weight_init_std=width))
    generator = torch.Generator().manual_seed(seed)
    w = learner.initialize_weights((2, 1, 2, 2), generator=generator)
    for _ in range(steps):
        pre = _random_times((1, 3, 3), generator)
        y, x = torch.randint(0, 2, (2,), generator=generator).tolist()
        learner.update_weights_for_winner(w[0], pre, 3.0, y, x, kernel_size=2)
        delta = learner.compute_batch_update(w, _random_times((2, 1, 3, 3), generator),
                                             _random_times((2, 2, 2, 2), generator))
        learner.apply_update(w, delta)
    assert torch.isfinite(w).all()
    assert w.min() >= low and w.max() <= low + width


@settings(max_examples=200, deadline=None)
@given(seed=seeds, variant=variants, t_post=st.integers(0, 6))
def test_update_positive_exactly_where_pre_not_after_post(seed, variant, t_post):
    generator = torch.Generator().manual_seed(seed)
    learner = STDPLearner(STDPConfig(variant=variant))
    w = torch.rand(3, 4, 4, generator=generator) * 0.98 + 0.01  # strictly inside (0, 1)
    pre = _random_times((3, 4, 4), generator)
    delta = learner.compute_update(w, pre, float(t_post))
    assert torch.equal(delta > 0, torch.isfinite(pre) & (pre <= t_post))
    assert torch.equal(delta < 0, ~(torch.isfinite(pre) & (pre <= t_post)))


@settings(max_examples=200, deadline=None)
@given(seed=seeds, variant=variants, stride=st.integers(1, 2), padding=st.integers(0, 2),
       kernel=st.integers(1, 3), batch=st.integers(1, 3))
def test_batch_update_equals_average_of_per_winner_updates(seed, variant, stride, padding, kernel, batch):
    generator = torch.Generator().manual_seed(seed)
    learner = STDPLearner(STDPConfig(variant=variant))
    c_out, c_in, size = 3, 2, 5
    out = (size + 2 * padding - kernel) // stride + 1
    w = learner.initialize_weights((c_out, c_in, kernel, kernel), generator=generator)
    pre = _random_times((batch, c_in, size, size), generator)
    post = _random_times((batch, c_out, out, out), generator, silent=0.5)
    mask = torch.rand(post.shape, generator=generator) < 0.5
    delta = learner.compute_batch_update(w, pre, post, mask, stride=stride, padding=padding)
    for c in range(c_out):
        winners = (mask[:, c] & torch.isfinite(post[:, c])).nonzero().tolist()
        if not winners:
            assert torch.all(delta[c] == 0)
            continue
        updates = []
        for n, y, x in winners:
            field = _field(pre[n], y, x, kernel, stride, padding)
            updates.append(learner.compute_update(w[c], field, post[n, c, y, x]))
        assert torch.allclose(delta[c], torch.stack(updates).mean(0), atol=1e-7)


def _field(pre, y, x, kernel, stride, padding):
    """Reference receptive field by explicit inf-padding and slicing."""
    padded = torch.nn.functional.pad(pre, (padding,) * 4, value=INF)
    return padded[:, y * stride:y * stride + kernel, x * stride:x * stride + kernel]


@settings(max_examples=200, deadline=None)
@given(seed=seeds, steps=st.integers(1, 6), extra=st.integers(1, 4))
def test_first_spike_times_unchanged_by_trailing_zeros(seed, steps, extra):
    generator = torch.Generator().manual_seed(seed)
    spikes = (torch.rand(steps, 3, 4, generator=generator) < 0.3).float()
    padded = torch.cat([spikes, torch.zeros(extra, 3, 4)])
    assert torch.equal(get_first_spike_times(spikes), get_first_spike_times(padded))


@settings(max_examples=200, deadline=None)
@given(seed=seeds, variant=variants, stride=st.integers(1, 2), padding=st.integers(0, 2),
       kernel=st.integers(1, 3), batch=st.integers(1, 6), lr=st.floats(0.0, 1.5))
def test_sequential_update_equals_sample_by_sample_updates(seed, variant, stride, padding, kernel, batch, lr):
    """reduction='sequential' is, bit for bit, one mean step per sample in sample order,
    and never leaves the bounds."""
    generator = torch.Generator().manual_seed(seed)
    learner = STDPLearner(STDPConfig(variant=variant, weight_min=-0.5, weight_max=1.0, weight_init_mean=0.25))
    c_out, c_in, size = 3, 2, 5
    out = (size + 2 * padding - kernel) // stride + 1
    w = learner.initialize_weights((c_out, c_in, kernel, kernel), generator=generator)
    pre = _random_times((batch, c_in, size, size), generator)
    post = _random_times((batch, c_out, out, out), generator, silent=0.5)
    mask = torch.rand(post.shape, generator=generator) < 0.5
    expected = w.clone()
    for n in range(batch):
        delta = batch_stdp_update(expected, pre[n:n + 1], post[n:n + 1], mask[n:n + 1], lr, lr / 2,
                                  variant, -0.5, 1.0, stride, padding)
        expected.add_(delta).clamp_(-0.5, 1.0)
    got = sequential_stdp_update_(w.clone(), pre, post, mask, lr, lr / 2, variant, -0.5, 1.0, stride, padding)
    assert torch.equal(got, expected)
    assert got.min() >= -0.5 and got.max() <= 1.0


@settings(max_examples=200, deadline=None)
@given(seed=seeds, size=st.tuples(st.integers(1, 7), st.integers(1, 7)),
       offset=st.tuples(st.integers(-6, 6), st.integers(-6, 6)))
def test_shifting_moves_every_pixel_that_stays_inside(seed, size, offset):
    from stdp_plugins.datasets import shift_images

    height, width = size
    dy, dx = offset
    assume(abs(dy) < height and abs(dx) < width)
    images = torch.randint(1, 256, (2, height, width), generator=torch.Generator().manual_seed(seed)).to(torch.uint8)
    shifted = shift_images(images, dy, dx)
    inside = torch.zeros(height, width, dtype=torch.bool)
    inside[max(dy, 0): height + min(dy, 0), max(dx, 0): width + min(dx, 0)] = True
    assert (shifted[:, ~inside] == 0).all()  # zeros move in
    back = shift_images(shifted, -dy, -dx)  # moving back restores what stayed inside
    kept = shift_images(inside[None].to(torch.uint8), -dy, -dx)[0].bool()
    assert torch.equal(back[:, kept], images[:, kept]) and (back[:, ~kept] == 0).all()
    assert int(shifted.sum()) == int(images[:, kept].long().sum())
