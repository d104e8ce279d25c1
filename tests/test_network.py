"""The reference network: event-driven first spikes equal the dense computation, the fast
winner selection equals the core's, features equal a SpykeTorch-style dense simulation."""

import math
import shutil

import pytest
import torch
import torch.nn.functional as F

from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.learning import (
    STDPConfig,
    STDPVariant,
    WTAMode,
    select_winners,
    select_winners_among,
    sequential_stdp_update_,
)
from stdp_plugins.models.kheradpisheh import KheradpishehConfig, KheradpishehNet
from stdp_plugins.backends import (
    dense_first_spike_conv,
    fires_at_all,
    first_spike_conv,
    first_spike_conv_pointwise,
    first_spike_conv_winners,
    first_spike_training_step_,
    fires_given_inputs,
    fused_winner_update,
    kernel_threads,
    native_available,
)
from stdp_plugins.backends.fires import _fires_float32_checked
from stdp_plugins.models import max_pool_binary, min_pool_times, pad_times
from wta_reference import sequential_winners

INF = math.inf
# The event-driven kernel is built with the system C compiler: wherever one is installed
# (CI included) it must build, so these tests only skip on machines without any.
needs_native = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the event-driven kernel")


def test_native_kernel_builds_where_a_compiler_exists():
    if shutil.which("cc") is not None:
        assert native_available()


@pytest.fixture(scope="module")
def digits():
    images, _ = embedded_mnist()
    return images[:24]


def _trained_like(net: KheradpishehNet) -> KheradpishehNet:
    """Weights pushed towards 0/1 (some exactly 0 or 1, some near), like a trained net."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for conv in (net.conv1, net.conv2):
            w = torch.rand(conv.weight.shape, generator=g)
            w = torch.where(w < 0.3, torch.rand(w.shape, generator=g) * 1e-3, w)
            w = torch.where(w > 0.8, 1.0 - torch.rand(w.shape, generator=g) * 1e-7, w)
            conv.weight.copy_(w.clamp(0, 1))
    return net


def test_first_spike_conv_hand_computed():
    # one input channel, 3 pixels firing at t = 0, 1, 2; 2x2 kernel of ones; threshold 2
    times = torch.full((1, 1, 2, 3), INF)
    times[0, 0, 0, 0], times[0, 0, 0, 1], times[0, 0, 1, 1] = 0.0, 1.0, 2.0
    weight = torch.ones(1, 1, 2, 2)
    out, pot = dense_first_spike_conv(times, weight, threshold=2.0, padding=0, time_steps=4)
    # output (0,0) sees t=0,1,2 -> reaches 2 at t=1; output (0,1) sees t=1,2 -> reaches 2 at t=2
    assert out.tolist() == [[[[1.0, 2.0]]]]
    assert pot.tolist() == [[[[2.0, 2.0]]]]
    out3, _ = dense_first_spike_conv(times, weight, threshold=3.0, padding=0, time_steps=4)
    assert out3.tolist() == [[[[2.0, INF]]]]


@needs_native
@pytest.mark.parametrize("trained", [False, True])
def test_event_driven_equals_dense_on_real_digits(digits, trained):
    net = KheradpishehNet(seed=1)
    if trained:
        _trained_like(net)
    inputs = net.encode(digits)
    spec1, spec2 = net.config.layer1, net.config.layer2
    t1d, p1d = dense_first_spike_conv(inputs, net.conv1.weight, spec1.threshold, spec1.padding, 15)
    t1e, p1e = first_spike_conv(inputs, net.conv1.weight, spec1.threshold, spec1.padding, 15, "native")
    assert torch.equal(t1d, t1e) and torch.equal(p1d, p1e)
    assert 0 < torch.isfinite(t1d).float().mean() < 1
    layer2_in = pad_times(min_pool_times(t1d, 2, 2, 1), 1)
    t2d, p2d = dense_first_spike_conv(layer2_in, net.conv2.weight, spec2.threshold, spec2.padding, 15)
    t2e, p2e = first_spike_conv(layer2_in, net.conv2.weight, spec2.threshold, spec2.padding, 15, "native")
    assert torch.equal(t2d, t2e) and torch.equal(p2d, p2e)
    times_only, none = first_spike_conv(layer2_in, net.conv2.weight, spec2.threshold, 0, 15, "native",
                                        potentials=False)
    assert none is None and torch.equal(times_only, t2d)
    assert torch.equal(fires_at_all(inputs, net.conv1.weight, 10.0, 2, 15), torch.isfinite(t1d))
    assert torch.equal(fires_at_all(layer2_in, net.conv2.weight, 1.0, 0, 15), torch.isfinite(t2d))


def test_fires_at_all_is_exact_at_the_threshold():
    # ten float32 weights of 0.1 sum to 1.0000000149 exactly (fires at threshold 1), while a
    # float32 sum may round to just below 1; 0.0999999 weights sum to just below 1
    times = torch.zeros(3, 10, 1, 1)
    weight = torch.full((2, 10, 1, 1), 0.1)
    weight[1] = 0.0999999
    fired = fires_at_all(times, weight, threshold=1.0)
    assert fired[:, 0].all() and not fired[:, 1].any()
    exact = (weight.double().sum(dim=(1, 2, 3)) >= 1.0)
    assert exact.tolist() == [True, False]


def _float32_path(fired, weight, threshold):
    return _fires_float32_checked(fired, weight, threshold, 0)


@pytest.mark.parametrize("decide", [fires_given_inputs, _float32_path], ids=["public", "float32-checked"])
def test_fires_given_inputs_float32_path_decides_like_float64_sums(decide):
    """Potentials on, just above and just below the threshold: the public function (the
    event kernel on this machine) and the float32 convolution with its float64 re-check
    (CUDA, no compiler) give the decisions of exact float64 sums."""
    g = torch.Generator().manual_seed(7)
    fired = torch.rand(6, 16, 6, 6, generator=g) < 0.5
    weight = torch.rand(5, 16, 2, 2, generator=g)
    weight[0] = 1.0 - 2.0 ** -24  # one input: just below 1; two inputs: far above
    weight[1] = 0.1  # sums of float32 0.1 round differently in float32 and float64
    exact = F.conv2d(fired.double(), weight.double())
    for threshold in (1.0, float(exact[2, 3, 1, 1]), float(exact[4, 4, 2, 3]), 0.3):
        expected = exact >= threshold
        assert torch.equal(decide(fired, weight, threshold), expected)
    # thresholds exactly on a float64 sum of float32 weights fire; one ulp above does not
    t = float(exact[2, 3, 1, 1])
    assert decide(fired, weight, t)[2, 3, 1, 1]
    assert not decide(fired, weight, math.nextafter(t, math.inf))[2, 3, 1, 1]
    # negative weights take the float64 path
    signed = weight - 0.5
    assert torch.equal(fires_given_inputs(fired, signed, 0.2), F.conv2d(fired.double(), signed.double()) >= 0.2)


@pytest.mark.parametrize("size, kernel, stride, padding", [
    ((28, 28), 2, 2, 1), ((16, 16), 2, 2, 1), ((7, 9), 3, 3, 0), ((7, 9), 3, 3, 1), ((5, 5), 3, 2, 1),
])
def test_max_pool_binary_equals_float_max_pool(size, kernel, stride, padding):
    g = torch.Generator().manual_seed(sum(size) + kernel)
    fired = torch.rand(3, 4, *size, generator=g) < 0.3
    expected = F.max_pool2d(fired.float(), kernel, stride, padding) > 0
    pooled = max_pool_binary(fired, kernel, stride, padding)
    assert pooled.dtype == torch.bool and torch.equal(pooled, expected)


def test_min_pool_of_times_is_max_pool_of_waves():
    g = torch.Generator().manual_seed(0)
    times = torch.randint(0, 6, (2, 3, 7, 7), generator=g).float()
    times[torch.rand(times.shape, generator=g) < 0.5] = INF
    waves = torch.stack([(times <= t).float() for t in range(6)])
    pooled_waves = torch.stack([F.max_pool2d(w, 2, 2, 1) for w in waves])
    pooled = min_pool_times(times, 2, 2, 1)
    assert torch.equal(torch.stack([(pooled <= t).float() for t in range(6)]), pooled_waves)


def _spyketorch_style_features(net: KheradpishehNet, images: torch.Tensor) -> torch.Tensor:
    """Dense simulation: waves, conv at every step, threshold, pool, pad, conv, pool, max over time."""
    times = net.encode(images)
    waves = torch.stack([(times <= t).double() for t in range(15)])  # [T, N, 2, 28, 28]
    out = []
    for t in range(15):
        pot1 = F.conv2d(waves[t], net.conv1.weight.double(), padding=2)
        spk1 = (pot1 >= 10.0).double()
        x2 = F.pad(F.max_pool2d(spk1, 2, 2, 1), (1, 1, 1, 1))
        spk2 = (F.conv2d(x2, net.conv2.weight.double()) >= 1.0).double()
        out.append(F.max_pool2d(spk2, 2, 2, 1))
    return torch.stack(out).amax(dim=0).bool()


@pytest.mark.parametrize("trained", [False, True])
def test_features_equal_dense_simulation(digits, trained):
    net = KheradpishehNet(seed=2)
    if trained:
        _trained_like(net)
    feats = net.features(net.encode(digits[:8]))
    assert feats.shape == (8, 150, 9, 9) and feats.dtype == torch.bool
    assert torch.equal(feats, _spyketorch_style_features(net, digits[:8]))
    assert torch.equal(net(digits[:8]), feats.float())


@pytest.mark.parametrize("layer", [1, 2])
def test_learning_winners_equal_sequential_walk_on_digits(digits, layer):
    """Pointwise inhibition then k winners, on real digits, equals the plain walk."""
    net = _trained_like(KheradpishehNet(seed=0))
    x = net.layer_input(layer, net.encode(digits[:4]))
    times, pots, _ = net.layer_forward(layer, x)
    spec = net.spec(layer)
    survivors = sequential_winners(times, pots, WTAMode.LOCAL, 0, None)
    expected = sequential_winners(torch.where(survivors, times, INF), pots, WTAMode.BOTH, spec.radius, spec.k_winners)
    for backend in ("auto", "torch"):
        net.backend = backend
        winners = net.select_winners(layer, times, pots)
        assert torch.equal(winners, expected)
        assert bool((winners.sum(dim=(1, 2, 3)) == spec.k_winners).all())
        fused_times, fused = net.forward_winners(layer, x)
        assert torch.equal(fused_times, times) and torch.equal(fused, expected)


@needs_native
@pytest.mark.parametrize("mode", list(WTAMode))
@pytest.mark.parametrize("radius, k", [(0, 1), (1, 3), (2, 40)])
def test_kernel_winner_walk_equals_core_for_every_mode(mode, radius, k):
    """The C kernel's walk over survivors equals select_winners_among (ties included:
    integer weights make equal potentials common)."""
    g = torch.Generator().manual_seed(radius * 100 + k)
    times = torch.randint(0, 4, (5, 3, 9, 9), generator=g).float()
    times[torch.rand(times.shape, generator=g) < 0.4] = INF
    weight = torch.randint(0, 3, (6, 3, 3, 3), generator=g).float()
    out_times, pots, survivor = first_spike_conv_pointwise(times, weight, 2.0, 1, 4, "torch")
    sample, y, x = (survivor >= 0).nonzero(as_tuple=True)
    expected = select_winners_among(out_times, pots, (sample, survivor[sample, y, x], y, x), mode, radius, k)
    got_times, got = first_spike_conv_winners(times, weight, 2.0, 1, 4, mode, radius, k, "native")
    assert torch.equal(got_times, out_times) and torch.equal(got, expected)
    assert expected.any()


@needs_native
def test_training_steps_fast_path_equal_dense_path(digits):
    """Identical spikes, winners and weights over several batch updates of both layers."""
    fast = KheradpishehNet(seed=5, backend="native")
    dense = KheradpishehNet(seed=5, backend="torch")
    inputs = fast.encode(digits)
    for layer in (1, 2):
        for step, batch in enumerate(inputs.split(6)):
            x_fast, x_dense = fast.layer_input(layer, batch), dense.layer_input(layer, batch)
            assert torch.equal(x_fast, x_dense)
            tf, pf, sf = fast.layer_forward(layer, x_fast)
            td, pd, sd = dense.layer_forward(layer, x_dense)
            assert torch.equal(tf, td) and torch.equal(pf, pd) and torch.equal(sf, sd)
            # the dense side picks winners the plain way: select_winners twice
            survivors = select_winners(td, pd, WTAMode.LOCAL, 0)
            spec = dense.spec(layer)
            wd = select_winners(torch.where(survivors, td, INF), pd, WTAMode.BOTH, spec.radius, spec.k_winners)
            assert torch.equal(fast.select_winners(layer, tf, pf), wd)
            # the trainer's path: times and winners from the kernel in one pass
            tf, wf = fast.forward_winners(layer, x_fast)
            assert torch.equal(tf, td) and torch.equal(wf, wd)
            lr = fast.learning_rates(layer, 600 * step)
            fast.learn(layer, x_fast, tf, wf, *lr)
            dense.learn(layer, x_dense, td, wd, *lr)
            assert torch.equal(fast.weight(layer), dense.weight(layer))
    assert not torch.equal(fast.conv1.weight, KheradpishehNet(seed=5).conv1.weight)


def test_learning_rate_schedule():
    net = KheradpishehNet()
    assert net.learning_rates(1, 0) == (0.004, 0.003)
    assert net.learning_rates(1, 499) == (0.004, 0.003)
    assert net.learning_rates(1, 500) == pytest.approx((0.008, 0.006))
    assert net.learning_rates(1, 1500) == pytest.approx((0.032, 0.024))
    assert net.learning_rates(1, 10**6) == pytest.approx((0.15, 0.1125))
    assert net.learning_rates(2, 10**6) == (0.004, 0.003)


def test_network_shapes_and_init():
    net = KheradpishehNet(seed=0)
    assert net.conv1.weight.shape == (32, 2, 5, 5) and net.conv2.weight.shape == (150, 32, 2, 2)
    for w in (net.conv1.weight, net.conv2.weight):
        assert not w.requires_grad
        assert 0.0 <= float(w.min()) and float(w.max()) <= 1.0
        assert abs(float(w.mean()) - 0.8) < 0.01 and abs(float(w.std()) - 0.05) < 0.01
    assert torch.equal(KheradpishehNet(seed=0).conv2.weight, net.conv2.weight)


LAYER = (torch.zeros(1, 2, 5, 5), torch.ones(1, 2, 3, 3), 1.0, 0, 4)  # in_times, weight, threshold, padding, T


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: KheradpishehNet().spec(3), "layer"),
        (lambda: KheradpishehConfig(time_steps=0), "time_steps"),
        (lambda: first_spike_conv(torch.zeros(1, 2, 5, 5), torch.ones(1, 2, 3, 3), 1.0, backend="fast"), "backend"),
        (lambda: first_spike_conv(torch.zeros(1, 2, 5, 5), -torch.ones(1, 2, 3, 3), 1.0), "weight"),
        (lambda: first_spike_conv(torch.zeros(1, 2, 5, 5), torch.ones(1, 3, 3, 3), 1.0), "weight"),
        (lambda: first_spike_conv(torch.zeros(2, 5, 5), torch.ones(1, 2, 3, 3), 1.0), "in_times"),
        (lambda: first_spike_conv(torch.zeros(1, 2, 5, 5), torch.ones(1, 2, 3, 3), 0.0), "threshold"),
        (lambda: first_spike_conv(torch.zeros(1, 2, 2, 2), torch.ones(1, 2, 3, 3), 1.0), "in_times"),
        (lambda: first_spike_conv_winners(*LAYER, "ring", 1, 2), "mode"),
        (lambda: first_spike_conv_winners(*LAYER, "both", -1, 2), "radius"),
        (lambda: first_spike_conv_winners(*LAYER, "both", 1, 0), "k_winners"),
        (lambda: first_spike_training_step_(torch.ones(1, 2, 3, 3), *LAYER[:1], *LAYER[2:], "ring", 1, 2,
                                            STDPConfig(), 0.1, 0.1), "mode"),
        (lambda: max_pool_binary(torch.zeros(1, 1, 4, 4), 0, 2), "kernel_size"),
        (lambda: max_pool_binary(torch.zeros(1, 1, 2, 2), 3, 3), "fired"),
        (lambda: max_pool_binary(torch.zeros(4, 4), 2, 2), "fired"),
        (lambda: fires_given_inputs(torch.zeros(2, 5, 5), torch.ones(1, 2, 3, 3), 1.0), "fired"),
        (lambda: fires_given_inputs(torch.zeros(1, 2, 5, 5), torch.ones(2, 3, 3), 1.0), "weight"),
        (lambda: fires_given_inputs(torch.zeros(1, 2, 5, 5), torch.ones(1, 3, 3, 3), 1.0), "weight"),
        (lambda: fused_winner_update(torch.ones(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 2, 5, 5),
                                     torch.zeros(1, 1, 3, 3), torch.ones(1, 1, 3, 3, dtype=torch.bool),
                                     STDPConfig(), backend="native"), "float32 weights"),
    ],
)
def test_bad_input_names_the_argument(call, name):
    with pytest.raises((ValueError, TypeError), match=name):
        call()


@needs_native
def test_kernel_threads_gives_torch_threads_to_the_kernel(digits):
    net = KheradpishehNet(seed=0)
    x = net.encode(digits[:9])
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    expected = net.forward_winners(1, x)
    try:
        torch.set_num_threads(2)
        with kernel_threads() as workers:
            assert workers == 2 and torch.get_num_threads() == 1
            split = net.forward_winners(1, x)  # images split over two kernel workers
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert all(torch.equal(a, b) for a, b in zip(split, expected))


@needs_native
@pytest.mark.parametrize("variant", list(STDPVariant))
def test_native_sequential_update_equals_the_core_bit_for_bit(digits, variant):
    """The C library's sequential STDP step equals sequential_stdp_update_ on real digits
    (both layers, changing rates) and with several winners per image and channel."""
    config = STDPConfig(variant=variant)
    net = KheradpishehNet(seed=4)
    inputs = net.encode(digits[:12])
    for layer, padding in ((1, 2), (2, 0)):
        native, core = net.weight(layer).detach().clone(), net.weight(layer).detach().clone()
        for step, batch in enumerate(inputs.split(4)):
            x = net.layer_input(layer, batch)
            times, winners = net.forward_winners(layer, x)
            if layer == 2:  # LOCAL-style masks: many winners per (image, channel)
                coin = torch.rand(times.shape, generator=torch.Generator().manual_seed(step))
                winners = torch.isfinite(times) & (coin < 0.05)
            rates = (0.004 * 2 ** step, 0.003 * 2 ** step)
            fused_winner_update(native, x, times, winners, config, *rates, padding=padding, backend="native",
                                reduction="sequential")
            sequential_stdp_update_(core, x, times, winners, *rates, variant, 0.0, 1.0, 1, padding)
            assert torch.equal(native, core)
        assert not torch.equal(native, net.weight(layer))


def test_first_spike_conv_channels_last_has_the_same_values(digits):
    net = KheradpishehNet(seed=0)
    x = net.encode(digits[:3])
    for backend in ("torch", "auto"):
        plain, _ = first_spike_conv(x, net.conv1.weight, 10.0, 2, 15, backend, potentials=False)
        last, none = first_spike_conv(x, net.conv1.weight, 10.0, 2, 15, backend, potentials=False,
                                      memory_format=torch.channels_last)
        assert none is None and last.is_contiguous(memory_format=torch.channels_last)
        assert torch.equal(plain, last)


@needs_native
@pytest.mark.parametrize("reduction", ["sequential", "mean"])
def test_train_step_in_the_c_library_equals_the_torch_path(digits, reduction):
    """train_step on the CPU (kernel winners without dense times, C sequential step) gives
    the weights and convergence of the dense torch path, bit for bit, over several steps."""
    fast, dense = KheradpishehNet(seed=6), KheradpishehNet(seed=6, backend="torch")
    inputs = fast.encode(digits)
    for layer in (1, 2):
        for step, batch in enumerate(inputs.split(8)):
            x = fast.layer_input(layer, batch)
            metric = fast.train_step(layer, x, 500 * step, reduction)
            assert metric == dense.train_step(layer, x, 500 * step, reduction)
            assert torch.equal(fast.weight(layer), dense.weight(layer))
    assert not torch.equal(fast.conv2.weight, KheradpishehNet(seed=6).conv2.weight)
