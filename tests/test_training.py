"""Layer-wise trainer: batch semantics, determinism, stopping, read-out."""

import math

import pytest
import torch

from stdp_plugins.datasets import embedded_mnist, shift_images
from stdp_plugins.learning import STDPLearner
from stdp_plugins.models.kheradpisheh import KheradpishehNet
from stdp_plugins.readout import (
    LinearReadout, fit_readout, predict_shifted, shift_offsets, shifted_training_set, silent_fraction,
)
from stdp_plugins.backends import codes_to_times, times_to_codes
from stdp_plugins.training import LayerwiseTrainer, SpikeCodeFile, TrainConfig


@pytest.fixture(scope="module")
def data():
    images, labels = embedded_mnist()
    return images[:48], labels[:48]


def _train(images, **options):
    options.setdefault("progress", False)
    options.setdefault("checkpoint_every", 0)
    net = KheradpishehNet(seed=options.get("seed", 0))
    trainer = LayerwiseTrainer(net, images, TrainConfig(**options))
    trainer.train()
    return net, trainer


def test_batch_one_is_the_sequential_per_winner_algorithm(data):
    """Batch size 1 applies each winner's own STDP step, one image after the other."""
    images = data[0][:12]
    net, trainer = _train(images, batch_size=1, epochs=(1, 0), stop_at_convergence=False)
    reference = KheradpishehNet(seed=0)
    learner = STDPLearner(reference.config.stdp)
    order = trainer._order(1, 0, images.shape[0])
    for seen, i in enumerate(order.tolist()):
        x = reference.encode(images[i:i + 1])
        times, pots, _ = reference.layer_forward(1, x)
        winners = reference.select_winners(1, times, pots)
        lr_plus, lr_minus = reference.learning_rates(1, seen)
        learner.config.lr_plus, learner.config.lr_minus = lr_plus, lr_minus
        for _, c, y, xx in winners.nonzero().tolist():
            learner.update_weights_for_winner(
                reference.conv1.weight[c], x[0], times[0, c, y, xx], y, xx, kernel_size=5, padding=2
            )
    assert torch.allclose(net.conv1.weight, reference.conv1.weight, atol=1e-6)
    assert not torch.equal(net.conv1.weight, KheradpishehNet(seed=0).conv1.weight)


def test_batch_one_is_the_same_for_both_reductions(data):
    a, _ = _train(data[0][:12], batch_size=1, epochs=(1, 1), reduction="sequential")
    b, _ = _train(data[0][:12], batch_size=1, epochs=(1, 1), reduction="mean")
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.conv2.weight, b.conv2.weight)


def test_sequential_batch_applies_each_images_step_in_turn(data):
    """One batch of B images with reduction='sequential' = the B single-image steps, in
    the batch's order, each on the weights the previous one left (spikes from the
    weights at the start of the batch)."""
    images = data[0][:8]
    net, trainer = _train(images, batch_size=8, epochs=(1, 0), reduction="sequential")
    ref = KheradpishehNet(seed=0)
    x = ref.encode(images[trainer._order(1, 0, 8)])
    times, winners = ref.forward_winners(1, x)
    for n in range(8):
        ref.learn(1, x[n:n + 1], times[n:n + 1], winners[n:n + 1], *ref.learning_rates(1, 0), reduction="mean")
    assert torch.equal(net.conv1.weight, ref.conv1.weight)


def test_batched_step_averages_every_images_winners(data):
    """One batch of B images = the per-channel mean of the B single-image deltas."""
    images = data[0][:8]
    net, _ = _train(images, batch_size=8, epochs=(1, 0), stop_at_convergence=False, reduction="mean")
    ref = KheradpishehNet(seed=0)
    x = ref.encode(images)
    times, pots, _ = ref.layer_forward(1, x)
    winners = ref.select_winners(1, times, pots)
    w0 = ref.conv1.weight.clone()
    learner = STDPLearner(ref.config.stdp)
    deltas = torch.zeros_like(w0)
    counts = torch.zeros(w0.shape[0])
    for n, c, y, xx in winners.nonzero().tolist():
        field = torch.nn.functional.pad(x[n], (2, 2, 2, 2), value=math.inf)[:, y:y + 5, xx:xx + 5]
        deltas[c] += learner.compute_update(w0[c], field, times[n, c, y, xx])
        counts[c] += 1
    expected = (w0 + deltas / counts.clamp(min=1)[:, None, None, None]).clamp(0, 1)
    assert torch.allclose(net.conv1.weight, expected, atol=1e-6)


def test_training_is_deterministic_and_trains_both_layers(data):
    a, ta = _train(data[0], batch_size=16, epochs=(1, 1))
    b, _ = _train(data[0], batch_size=16, epochs=(1, 1))
    assert torch.equal(a.conv1.weight, b.conv1.weight) and torch.equal(a.conv2.weight, b.conv2.weight)
    fresh = KheradpishehNet(seed=0)
    assert not torch.equal(a.conv2.weight, fresh.conv2.weight)
    assert ta.state.images_seen == (48, 48) and ta.state.phase == 3
    assert [s for s, _ in ta.history[1]] == [16, 32, 48]
    assert all(0 < m < 0.25 for _, m in ta.history[2])
    rates = ta.images_per_second()
    assert rates["layer1"] > 0 and rates["layer2"] > 0


def test_stop_at_convergence_ends_the_layer_early(data):
    net = KheradpishehNet(seed=0)
    net.config.stdp.convergence_threshold = 0.5  # the initial metric (~0.16) is already below
    trainer = LayerwiseTrainer(net, data[0], TrainConfig(batch_size=8, epochs=(3, 3), progress=False,
                                                         checkpoint_every=0, stop_at_convergence=True))
    trainer.train()
    assert trainer.state.images_seen == (8, 8)
    assert trainer.state.converged == (True, True)


def test_readout_fits_and_round_trips():
    g = torch.Generator().manual_seed(0)
    labels = torch.arange(60) % 3
    prototypes = torch.rand(3, 40, generator=g) < 0.3
    flips = torch.rand(60, 40, generator=g) < 0.05
    feats = (prototypes[labels] ^ flips).view(60, 5, 8)  # noisy binary patterns per class
    readout = fit_readout(feats[:45], labels[:45])
    assert isinstance(readout, LinearReadout) and readout.weight.shape == (3, 40)
    assert readout.accuracy(feats[:45], labels[:45]) == 1.0
    assert readout.accuracy(feats[45:], labels[45:]) >= 0.9
    from sklearn.svm import LinearSVC

    reference = LinearSVC(C=2.4, dual=True, random_state=0).fit(feats[:45].reshape(45, -1).float().numpy(), labels[:45].numpy())
    assert readout.predict(feats).tolist() == reference.predict(feats.reshape(60, -1).float().numpy()).tolist()
    again = LinearReadout.from_state_dict(readout.state_dict())
    assert torch.equal(again.predict(feats), readout.predict(feats))
    assert silent_fraction(feats) == 0.0
    assert silent_fraction(torch.zeros(4, 3)) == 1.0
    assert silent_fraction(torch.tensor([[0, 1], [0, 0]])) == 0.5
    with pytest.raises(ValueError, match="two classes"):
        fit_readout(feats[:3], torch.zeros(3, dtype=torch.long))


def test_readout_from_chunks_equals_readout_from_one_tensor():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(90) % 3
    feats = (torch.rand(3, 30, generator=g) < 0.3)[labels] ^ (torch.rand(90, 30, generator=g) < 0.1)
    whole = fit_readout(feats, labels)
    chunked = fit_readout(iter(feats.split(7)), labels)
    assert torch.equal(whole.weight, chunked.weight) and torch.equal(whole.bias, chunked.bias)
    graded = feats.to(torch.float32) * torch.rand(90, 30, generator=g)
    mixed = fit_readout([graded[:40], graded[40:].bool(), ], labels)  # a bool chunk holds ones
    reference = fit_readout(torch.cat([graded[:40], graded[40:].bool().float()]), labels)
    assert torch.equal(mixed.weight, reference.weight)
    assert torch.equal(whole.labels_of_scores(whole.scores(feats)), whole.predict(feats))
    with pytest.raises(ValueError, match="chunk 1 has 29 values per sample, earlier chunks 30"):
        fit_readout([feats[:40], feats[40:, :29]], labels)
    with pytest.raises(ValueError, match="labels must have 90 entries"):
        fit_readout(iter(feats.split(7)), labels[:80])
    with pytest.raises(ValueError, match="at least one chunk"):
        fit_readout(iter([]), labels)
    with pytest.raises(ValueError, match="scores must have 3 columns, got 2"):
        whole.labels_of_scores(torch.zeros(4, 2))


def test_shift_images_moves_pixels_and_fills_zeros():
    images = torch.arange(1, 10, dtype=torch.uint8).view(1, 3, 3)
    assert shift_images(images, 1, 0).tolist() == [[[0, 0, 0], [1, 2, 3], [4, 5, 6]]]
    assert shift_images(images, 0, -1).tolist() == [[[2, 3, 0], [5, 6, 0], [8, 9, 0]]]
    assert shift_images(images, -2, 2).tolist() == [[[0, 0, 7], [0, 0, 0], [0, 0, 0]]]
    assert torch.equal(shift_images(images, 0, 0), images)
    with pytest.raises(ValueError, match=r"dy must lie in \(-3, 3\).*got 3"):
        shift_images(images, 3, 0)
    with pytest.raises(TypeError, match="dx must be an int"):
        shift_images(images, 0, 1.0)
    with pytest.raises(ValueError, match=r"images must be a \[N, H, W\] tensor, got \(3, 3\)"):
        shift_images(images[0], 0, 0)
    assert shift_offsets(0) == [(0, 0)]
    assert shift_offsets(2) == [(0, 0), (2, 0), (-2, 0), (0, 2), (0, -2)]
    with pytest.raises(ValueError, match="shift"):
        shift_offsets(-1)


def test_eight_directions_give_even_images_the_straight_copies_and_odd_ones_the_diagonals():
    assert shift_offsets(1, 8) == [(0, 0), (1, 0), (-1, 0), (0, 1), (0, -1), (1, 1), (1, -1), (-1, 1), (-1, -1)]
    g = torch.Generator().manual_seed(4)
    images = (torch.rand(10, 6, 6, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(10) % 3
    featurize = lambda x: x.reshape(x.shape[0], -1) > 128  # noqa: E731 - a toy featurizer
    chunks, got_labels = shifted_training_set(featurize, images, labels, shift=1, copies=4, directions=8)
    even, odd = torch.arange(0, 10, 2), torch.arange(1, 10, 2)
    groups = [torch.arange(10)] + [even] * 4 + [odd] * 4
    expected = torch.cat([featurize(shift_images(images[rows], dy, dx)) for rows, (dy, dx)
                          in zip(groups, shift_offsets(1, 8))])
    assert torch.equal(torch.cat(list(chunks)), expected)
    assert torch.equal(got_labels, torch.cat([labels[rows] for rows in groups]))
    _, three = shifted_training_set(featurize, images, labels, shift=1, copies=3, directions=8)
    assert three.shape[0] == 10 + 30  # every image three of the eight copies
    with pytest.raises(ValueError, match="copies must be 1 to 8"):
        shifted_training_set(featurize, images, labels, copies=9, directions=8)
    with pytest.raises(ValueError, match="directions must be 4 or 8"):
        shift_offsets(1, 6)


def test_feature_memo_featurizes_each_distinct_image_once():
    from stdp_plugins.readout import FeatureMemo

    calls = []

    def featurize(x):
        calls.append(x.shape[0])
        return x[:, :3, :4] > 100

    g = torch.Generator().manual_seed(5)
    images = (torch.rand(6, 5, 5, generator=g) * 255).to(torch.uint8)
    memo = FeatureMemo(featurize)
    assert torch.equal(memo(images[:4]), featurize(images[:4]))
    mixed = torch.cat([images[2:], images[:1], images[:1]])  # two new images, three seen, a repeat
    assert torch.equal(memo(mixed), featurize(mixed))
    assert calls[0] == 4 and calls[2] == 2 and memo.computed == 6 and memo.images_per_second() > 0
    with pytest.raises(ValueError, match="binary"):
        FeatureMemo(lambda x: x.float())(images)


def test_shifted_training_set_and_prediction_use_every_copy():
    """Row order: the images, then each offset; prediction sums the copies' scores."""
    g = torch.Generator().manual_seed(2)
    images = (torch.rand(12, 6, 6, generator=g) * 255).to(torch.uint8)
    labels = torch.arange(12) % 2
    featurize = lambda x: x.reshape(x.shape[0], -1) > 128  # noqa: E731 - a toy featurizer
    chunks, repeated = shifted_training_set(featurize, images, labels, shift=1, copies=4, batch_size=5)
    rows = torch.cat(list(chunks))
    expected = torch.cat([featurize(shift_images(images, dy, dx)) for dy, dx in shift_offsets(1)])
    assert torch.equal(rows, expected) and torch.equal(repeated, labels.repeat(5))
    # two copies: even images move down and up, odd ones right and left
    chunks, two = shifted_training_set(featurize, images, labels, shift=1, copies=2, batch_size=5)
    even, odd = images[0::2], images[1::2]
    expected = torch.cat([featurize(images), featurize(shift_images(even, 1, 0)), featurize(shift_images(even, -1, 0)),
                          featurize(shift_images(odd, 0, 1)), featurize(shift_images(odd, 0, -1))])
    assert torch.equal(torch.cat(list(chunks)), expected)
    assert torch.equal(two, torch.cat([labels, labels[0::2], labels[0::2], labels[1::2], labels[1::2]]))
    chunks, one = shifted_training_set(featurize, images, labels, shift=1, copies=1)
    assert torch.equal(one, torch.cat([labels] + [labels[d::4] for d in range(4)]))
    chunks, none = shifted_training_set(featurize, images, labels, shift=0)
    assert torch.equal(torch.cat(list(chunks)), featurize(images)) and torch.equal(none, labels)
    with pytest.raises(ValueError, match="copies must be 1 to 4"):
        shifted_training_set(featurize, images, labels, copies=5)
    readout = fit_readout(rows, repeated)
    summed = sum(readout.scores(featurize(shift_images(images, dy, dx))) for dy, dx in shift_offsets(1))
    assert torch.equal(predict_shifted(readout, featurize, images, 1, batch_size=5), readout.labels_of_scores(summed))
    assert torch.equal(predict_shifted(readout, featurize, images, 0), readout.predict(featurize(images)))
    given = predict_shifted(readout, featurize, images, 1, features=featurize(images))
    assert torch.equal(given, readout.labels_of_scores(summed))
    assert torch.equal(predict_shifted(readout, featurize, images, 0, features=featurize(images)),
                       readout.predict(featurize(images)))
    with pytest.raises(ValueError, match="features must have 12 rows"):
        predict_shifted(readout, featurize, images, 1, features=featurize(images[:3]))
    with pytest.raises(ValueError, match="labels must have 12 entries"):
        shifted_training_set(featurize, images, labels[:5])


@pytest.mark.parametrize(
    "options, name",
    [
        (dict(batch_size=0), "batch_size"),
        (dict(reduction="sum"), "reduction"),
        (dict(epochs=()), "epochs"),
        (dict(epochs=(1, -1)), "epochs[1]"),
        (dict(seed=-1), "seed"),
        (dict(checkpoint_every=-5), "checkpoint_every"),
    ],
)
def test_bad_train_config(options, name):
    with pytest.raises((ValueError, TypeError), match=name.replace("[", r"\[").replace("]", r"\]")):
        TrainConfig(**options)


def test_bad_trainer_inputs():
    with pytest.raises(TypeError, match="model"):
        LayerwiseTrainer(object(), torch.zeros(2, 28, 28, dtype=torch.uint8))
    with pytest.raises(ValueError, match="images"):
        LayerwiseTrainer(KheradpishehNet(), torch.zeros(2, 28, 28))
    with pytest.raises(ValueError, match=r"epochs must hold 1 or 2 budgets for a 2-layer network"):
        LayerwiseTrainer(KheradpishehNet(), torch.zeros(2, 28, 28, dtype=torch.uint8), TrainConfig(epochs=(1, 2, 3)))


def test_spike_code_file_round_trips_by_index_and_in_chunks():
    g = torch.Generator().manual_seed(0)
    codes = torch.randint(0, 256, (11, 3, 4, 5), generator=g, dtype=torch.uint8)
    store = SpikeCodeFile(codes.split(4))
    assert len(store) == 11 and store.shape == (3, 4, 5)
    order = torch.tensor([10, 0, 3, 3, 7])
    assert torch.equal(store.take(order), codes[order])
    assert torch.equal(store.take(torch.tensor([], dtype=torch.int64)), codes[:0])
    assert torch.equal(torch.cat(list(store.chunks(3))), codes)
    with pytest.raises(ValueError, match="indices"):
        store.take(torch.tensor([11]))
    with pytest.raises(ValueError, match="chunks"):
        SpikeCodeFile([codes[:2], codes[:2, :, :3]])
    with pytest.raises(ValueError, match="chunks"):
        SpikeCodeFile([codes.float()])


def test_trainer_keeps_layer_inputs_out_of_memory(data):
    """The trainer's per-image inputs live in temporary files, equal to encoding on the fly."""
    net = KheradpishehNet(seed=0)
    trainer = LayerwiseTrainer(net, data[0][:10], TrainConfig(progress=False, checkpoint_every=0))
    first = trainer.layer_inputs(1)
    assert isinstance(first, SpikeCodeFile) and trainer.layer_inputs(1) is first
    expected = times_to_codes(net.encode(data[0][:10]), 15)
    assert torch.equal(torch.cat(list(first.chunks(4))), expected)
    second = trainer.layer_inputs(2)
    assert torch.equal(codes_to_times(second.take(torch.arange(10))),
                       net.layer_input(2, codes_to_times(expected)))
