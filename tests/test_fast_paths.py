"""The CLI's and the kernels' fast paths equal the torch reference on real digits."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from stdp_plugins.backends import first_spike_conv_winners, fires_given_inputs, pooled_fires, select_winners
from stdp_plugins.backends._conv_native import run_event_kernel
from stdp_plugins.backends.pooled import pooled_survivors
from stdp_plugins.backends.svm import native_binary_svm
from stdp_plugins.cli import spike_features
from stdp_plugins.datasets import embedded_split
from stdp_plugins.learning import WTAMode
from stdp_plugins.models import min_pool_times
from stdp_plugins.models.kheradpisheh import KheradpishehNet
from stdp_plugins.readout import LinearReadout, fit_readout
from stdp_plugins.training import LayerwiseTrainer, TrainConfig

@pytest.fixture(scope="module")
def trained():
    """A network trained one epoch per layer on 300 real digits, and 200 other digits."""
    (images, _), _ = embedded_split()
    net = KheradpishehNet(seed=0)
    LayerwiseTrainer(net, images[:300], TrainConfig(epochs=(1, 1), progress=False, checkpoint_every=0)).train()
    return net, images[300:500]


def test_cli_featurizer_equals_features_of_the_encoded_digits(trained):
    net, digits = trained
    expected = net.features(net.encode(digits))
    assert expected.any() and not expected.all()
    assert torch.equal(spike_features(net)(digits), expected)


def test_native_fires_given_inputs_equals_torch_on_both_layers(trained):
    net, digits = trained
    fired0 = net.encode(digits) < net.config.time_steps
    layer1 = [fires_given_inputs(fired0, net.conv1.weight, 10.0, 2, backend=b) for b in ("native", "torch")]
    assert torch.equal(*layer1) and 0 < layer1[0].float().mean() < 1
    layer2_in = F.pad(F.max_pool2d(layer1[0].float(), 2, 2, 1), (1,) * 4)
    layer2 = [fires_given_inputs(layer2_in, net.conv2.weight, 1.0, 0, backend=b) for b in ("native", "torch")]
    assert torch.equal(*layer2) and 0 < layer2[0].float().mean() < 1


def test_native_fires_given_inputs_handles_channel_counts_off_the_block():
    g = torch.Generator().manual_seed(3)
    fired = torch.rand(5, 3, 9, 7, generator=g) < 0.4
    weight = torch.rand(21, 3, 3, 3, generator=g)  # 21 = one block of 16 and a rest of 5
    expected = F.conv2d(fired.double(), weight.double(), padding=1) >= 2.5
    assert torch.equal(fires_given_inputs(fired, weight, 2.5, 1, backend="native"), expected)


def test_native_local_radius_zero_winners_equal_torch(trained):
    net, digits = trained
    times = net.encode(digits)
    pooled = min_pool_times(net.layer_forward(1, times)[0], 2, 2, 1)
    ties = pooled.clone()
    ties[:, 1] = ties[:, 0]  # equal times in two channels: the lower channel wins
    for spikes in (pooled, ties):
        got = select_winners(spikes, None, WTAMode.LOCAL, 0, backend="native")
        assert torch.equal(got, select_winners(spikes, None, WTAMode.LOCAL, 0, backend="torch"))


@pytest.mark.parametrize("mode", list(WTAMode))
@pytest.mark.parametrize("radius, k", [(0, 1), (2, 5), (1, 8), (3, 40)])
def test_training_winners_that_stop_at_the_kth_equal_the_whole_walk(trained, mode, radius, k):
    """Training asks the event kernel for winners only, and each image stops at the step
    its k-th winner is accepted; the winners and their times equal those of the torch
    layer and the whole walk (first_spike_conv_winners) on both layers."""
    net, digits = trained
    inputs = net.encode(digits[:24])
    for layer in (1, 2):
        spec = net.spec(layer)
        args = (net.weight(layer), spec.threshold, spec.padding, net.config.time_steps)
        size = tuple(s + 2 * spec.padding - spec.kernel_size + 1 for s in inputs.shape[2:])
        _, _, _, flat, flat_t = run_event_kernel(inputs, *args, size, False, False, (mode, radius, k), times=False)
        times, expected = first_spike_conv_winners(inputs, *args, mode, radius, k, "torch")
        got = torch.zeros(expected.shape, dtype=torch.bool).flatten(1)
        sample, slot = (flat >= 0).nonzero(as_tuple=True)
        got[sample, flat[sample, slot].long()] = True
        assert torch.equal(got.view(expected.shape), expected) and expected.sum() >= inputs.shape[0]
        assert torch.equal(flat_t[sample, slot], times.flatten(1)[sample, flat[sample, slot].long()])
        inputs = net.next_input(layer + 1, inputs) if layer == 1 else inputs


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("shape, kernel, padding", [((3, 4, 28, 28), 2, 1), ((2, 3, 7, 9), 3, 1), ((2, 3, 6, 6), 2, 0)])
def test_min_pool_times_equals_negated_max_pool(shape, kernel, padding, channels_last):
    g = torch.Generator().manual_seed(1)
    times = torch.randint(0, 15, shape, generator=g).float()
    times[torch.rand(shape, generator=g) < 0.5] = math.inf
    if channels_last:
        times = times.contiguous(memory_format=torch.channels_last)
    assert torch.equal(min_pool_times(times, kernel, kernel, padding), -F.max_pool2d(-times, kernel, kernel, padding))


def test_layer2_input_equals_torch_path(trained):
    net, digits = trained
    reference = KheradpishehNet(seed=0, backend="torch")
    reference.load_state_dict(net.state_dict())
    times = net.encode(digits[:50])
    assert torch.equal(net.layer_input(2, times), reference.layer_input(2, times))


@pytest.mark.parametrize("kernel, stride, padding, border", [(2, 2, 1, 1), (3, 3, 0, 0), (2, 2, 0, 2)])
def test_native_pooled_survivors_equal_torch(trained, kernel, stride, padding, border):
    net, digits = trained
    times = net.layer_forward(1, net.encode(digits[:40]))[0].contiguous(memory_format=torch.channels_last)
    ties = times.clone()
    ties[:, 3] = ties[:, 2]  # equal times in two channels: the lower channel passes
    for spikes in (times, ties):
        got = pooled_survivors(spikes, kernel, stride, padding, border, backend="native")
        assert torch.equal(got, pooled_survivors(spikes, kernel, stride, padding, border, backend="torch"))
    assert torch.isfinite(got).any()


@pytest.mark.parametrize("kernel, stride, padding, border", [(2, 2, 1, 1), (3, 3, 0, 0), (2, 2, 0, 2), (3, 3, 1, 0)])
def test_native_pooled_fires_equal_torch(trained, kernel, stride, padding, border):
    """The gathering kernel writing its answer pooled and padded equals fires_given_inputs,
    max_pool2d and pad, on both layers' real inputs (odd map sizes drop the last row)."""
    net, digits = trained
    fired = net.encode(digits[:40]) < net.config.time_steps
    layer2_in = pooled_fires(fired, net.conv1.weight, 10.0, 2, 2, 2, 1, 1, backend="torch")
    for layer, layer_in in ((1, fired), (1, fired[:, :, :27, :25]), (2, layer2_in)):
        spec = net.spec(layer)
        args = (layer_in, net.weight(layer), spec.threshold, spec.padding, kernel, stride, padding, border)
        got = pooled_fires(*args, backend="native")
        assert torch.equal(got, pooled_fires(*args, backend="torch")) and 0 < got.float().mean() < 1


def test_features_equal_the_torch_network(trained):
    net, digits = trained
    reference = KheradpishehNet(seed=0, backend="torch")
    reference.load_state_dict(net.state_dict())
    times = net.encode(digits[:60])
    assert torch.equal(net.features(times), reference.features(times))


def test_native_fires_given_inputs_decides_sums_at_the_threshold_exactly():
    # float32 sums of these weights round across the threshold; the float64 sums decide
    third = torch.tensor(1 / 3, dtype=torch.float32)
    weight = third.expand(2, 3, 1, 1).contiguous()
    exact = 3 * third.double()
    fired = torch.ones(1, 3, 2, 2, dtype=torch.bool)
    for threshold, fires in ((float(exact), True), (float(exact) + 1e-12, False), (float(exact) - 1e-12, True)):
        got = fires_given_inputs(fired, weight, threshold, backend="native")
        assert bool(got.all()) is fires and bool(got.any()) is fires
        assert torch.equal(got, F.conv2d(fired.double(), weight.double()) >= threshold)


def test_native_fires_given_inputs_refuses_float64_weights():
    with pytest.raises(ValueError, match="float64 weights"):
        fires_given_inputs(torch.ones(1, 1, 2, 2), torch.ones(1, 1, 1, 1, dtype=torch.float64), 0.5,
                           backend="native")


def test_parallel_items_takes_every_item_once_and_keeps_their_order():
    import time

    from stdp_plugins.backends._threads import parallel_items

    seen = []

    def square(item):  # early items take longest, so the second thread takes several
        time.sleep(0.002 * (7 - item))
        seen.append(item)
        return item * item

    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        got = parallel_items(7, square)
    finally:
        torch.set_num_threads(threads)
    assert got == [i * i for i in range(7)] and sorted(seen) == list(range(7))


def test_native_readout_is_the_same_on_one_and_two_threads():
    g = torch.Generator().manual_seed(8)
    labels = torch.arange(300) % 5
    x = (torch.rand(5, 200, generator=g) < 0.2)[labels] ^ (torch.rand(300, 200, generator=g) < 0.1)
    flat = x.numpy()
    columns = np.nonzero(flat)[1].astype(np.int32)
    indptr = np.concatenate([[0], np.cumsum(flat.sum(axis=1))]).astype(np.int64)
    threads = torch.get_num_threads()
    fits = []
    for count in (1, 2):
        torch.set_num_threads(count)
        try:
            fits.append(native_binary_svm(indptr, columns, labels.numpy(), 5, 200, 2.4, 1e-3, 1000, 0))
        finally:
            torch.set_num_threads(threads)
    assert all(torch.equal(a, b) for a, b in zip(fits[0][:2], fits[1][:2])) and fits[0][2] == fits[1][2]


def test_native_readout_takes_int32_indices_past_65536_features():
    g = torch.Generator().manual_seed(9)
    labels = torch.arange(120) % 3
    x = (torch.rand(3, 40, generator=g) < 0.3)[labels] ^ (torch.rand(120, 40, generator=g) < 0.1)
    flat = x.numpy()
    columns = np.nonzero(flat)[1]
    indptr = np.concatenate([[0], np.cumsum(flat.sum(axis=1))]).astype(np.int64)
    narrow = native_binary_svm(indptr, columns.astype(np.uint16), labels.numpy(), 3, 40, 2.4, 1e-3, 1000, 0)
    wide = native_binary_svm(indptr, (columns + 70_000).astype(np.int32), labels.numpy(), 3, 70_040, 2.4, 1e-3,
                             1000, 0)  # the same features at columns 70,000 and up
    assert torch.equal(wide[0][:, 70_000:], narrow[0]) and not wide[0][:, :70_000].any()
    assert torch.equal(wide[1], narrow[1]) and wide[2] == narrow[2]


def _svm_objective(readout, x, labels, c):
    scores = readout.scores(x)
    classes = readout.classes if readout.weight.shape[0] > 1 else readout.classes[1:]
    signs = torch.where(labels[:, None] == classes[None], 1.0, -1.0).double()
    hinge = (1 - signs * scores).clamp(min=0) ** 2
    return float(0.5 * (readout.weight ** 2).sum() + 0.5 * (readout.bias ** 2).sum() + c * hinge.sum())


@pytest.mark.parametrize("n_classes", [2, 4])
def test_native_readout_solves_liblinears_dual_problem(n_classes):
    from sklearn.svm import LinearSVC

    g = torch.Generator().manual_seed(5)
    labels = torch.arange(240) % n_classes
    prototypes = torch.rand(n_classes, 300, generator=g) < 0.2
    x = prototypes[labels] ^ (torch.rand(240, 300, generator=g) < 0.1)
    svm = LinearSVC(C=2.4, dual=True, random_state=0, tol=1e-6, max_iter=10000).fit(x.double().numpy(), labels.numpy())
    reference = LinearReadout(torch.from_numpy(svm.coef_), torch.from_numpy(svm.intercept_),
                              torch.from_numpy(svm.classes_))
    flat = x.numpy()
    rows, columns = np.nonzero(flat)
    indptr = np.concatenate([[0], np.cumsum(flat.sum(axis=1))]).astype(np.int64)
    weight, bias, passes = native_binary_svm(indptr, columns.astype(np.int32), labels.numpy(), n_classes,
                                             flat.shape[1], 2.4, 1e-6, 10000, 0)
    exact = LinearReadout(weight, bias, reference.classes)
    assert passes < 10000 and weight.shape == reference.weight.shape
    assert _svm_objective(exact, x, labels, 2.4) == pytest.approx(_svm_objective(reference, x, labels, 2.4),
                                                                rel=1e-6)
    native = fit_readout(x, labels)  # the read-out's own, looser stopping rule (gap 0.1): near the
    # optimum (on this small problem within 25 % of its objective) and classifying alike
    assert _svm_objective(native, x, labels, 2.4) == pytest.approx(_svm_objective(reference, x, labels, 2.4),
                                                                 rel=0.25)
    assert torch.equal(native.predict(x), reference.predict(x))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_readout_falls_back_to_the_primal_solver_when_the_dual_does_not_converge():
    from sklearn.svm import LinearSVC

    g = torch.Generator().manual_seed(6)
    labels = torch.arange(90) % 3
    x = torch.rand(90, 50, generator=g) < 0.5  # random labels: nothing separates them well
    fitted = fit_readout(x, labels, max_iter=2)
    svm = LinearSVC(C=2.4, dual=False, random_state=0, max_iter=2).fit(x.double().numpy(), labels.numpy())
    assert torch.allclose(fitted.weight, torch.from_numpy(svm.coef_))
