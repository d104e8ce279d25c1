"""The Kheradpisheh-2018 network as plain SpikingJelly and snnTorch models (the examples).

Both examples run on a small slice; the SpikingJelly model trained through the learners
learns the reference network's weights bit for bit, and so does the snnTorch model; the
snnTorch model computes the SpikingJelly model's features.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

pytest.importorskip("spikingjelly")
pytest.importorskip("snntorch")

from stdp_plugins.backends import kernel_threads  # noqa: E402
from stdp_plugins.datasets import embedded_mnist  # noqa: E402
from stdp_plugins.encoding import DoGLatencyEncoder  # noqa: E402
from stdp_plugins.models.recipe import attach_paper_learners  # noqa: E402
from stdp_plugins.training import epoch_order  # noqa: E402
from stdp_plugins.models.kheradpisheh import KheradpishehNet  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("spikingjelly_kheradpisheh", "snntorch_kheradpisheh")
BATCH = 32


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def sj() -> ModuleType:
    return load_example("spikingjelly_kheradpisheh")


@pytest.fixture(scope="module")
def snt() -> ModuleType:
    return load_example("snntorch_kheradpisheh")


@pytest.fixture(scope="module")
def input_times() -> torch.Tensor:
    """Input spike times of 64 real digits."""
    images, _ = embedded_mnist()
    return DoGLatencyEncoder(15).spike_times(images[:64])


@pytest.fixture(scope="module")
def trained(sj, input_times):
    """The SpikingJelly model trained one epoch per layer through the learners, and the
    reference network trained by ``train_step`` on the same digits in the same batches."""
    net = sj.build_model()
    group = attach_paper_learners(net, seed=0)
    reference = KheradpishehNet(seed=0)
    initial = (reference.conv1.weight.clone(), reference.conv2.weight.clone())
    assert torch.equal(net.conv1.weight, initial[0]) and torch.equal(net.conv2.weight, initial[1])
    with kernel_threads():
        sj.train_layer(net, group, 1, input_times, epochs=1, batch_size=BATCH, progress=False)
        layer2_times = sj.layer2_input(net, input_times)
        sj.train_layer(net, group, 2, layer2_times, epochs=1, batch_size=BATCH, progress=False)
    group.close()
    for layer in (1, 2):
        layer_input = reference.layer_input(layer, input_times)
        seen = 0
        for batch in epoch_order(0, layer, 0, input_times.shape[0]).split(BATCH):
            reference.train_step(layer, layer_input[batch], seen, "sequential")
            seen += batch.numel()
    return net, reference, initial, layer2_times


@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_on_a_slice_and_prints_the_accuracy_last(name, tmp_path):
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py"), "--train", "96", "--test", "64",
         "--epochs", "1", "1", "--out", str(tmp_path)],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    match = re.fullmatch(r"accuracy: (\d+\.\d{2})%", result.stdout.splitlines()[-1])
    assert match, result.stdout
    accuracy = float(match.group(1))
    assert 30.0 < accuracy <= 100.0  # 10 classes: well above chance even on 96 digits
    assert "layer 2" in result.stderr  # the progress bars
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["accuracy"]["test"] == pytest.approx(accuracy / 100, abs=5e-5)
    assert set(metrics["images_per_second"]) == {"layer1_training", "layer2_training", "readout"}
    assert all(rate > 0 for rate in metrics["images_per_second"].values())
    assert metrics["wall_time_seconds"] > 0 and (metrics["n_train"], metrics["n_test"]) == (96, 64)


def test_spikingjelly_learners_learn_the_reference_weights_bit_for_bit(trained):
    net, reference, initial, _ = trained
    for layer, conv in ((1, net.conv1), (2, net.conv2)):
        assert not torch.equal(conv.weight, initial[layer - 1])  # both layers learned
        assert torch.equal(conv.weight, reference.weight(layer))


def test_layer2_training_input_is_the_reference_one_without_its_zero_border(trained, input_times):
    net, reference, _, layer2_times = trained
    padded = reference.layer_input(2, input_times)  # the reference pads pool1 by 1 before conv2
    assert torch.equal(layer2_times, padded[:, :, 1:-1, 1:-1])
    assert bool(torch.isinf(padded[:, :, [0, -1], :]).all()) and bool(torch.isinf(padded[:, :, :, [0, -1]]).all())
    assert bool(torch.isfinite(layer2_times).any())





def test_snntorch_learners_learn_the_same_weights(snt, trained, input_times):
    sj_net, _, _, layer2_times = trained
    net = snt.build_model()
    group = attach_paper_learners(net, seed=0)
    with kernel_threads():
        snt.train_layer(net, group, 1, input_times, epochs=1, batch_size=BATCH, progress=False)
        assert torch.equal(snt.layer2_input(net, input_times), layer2_times)
        snt.train_layer(net, group, 2, layer2_times, epochs=1, batch_size=BATCH, progress=False)
    group.close()
    assert torch.equal(net.conv1.weight, sj_net.conv1.weight) and torch.equal(net.conv2.weight, sj_net.conv2.weight)


def test_snntorch_model_computes_the_spikingjelly_features(sj, snt, trained):
    sj_net = trained[0]
    snt_net = snt.build_model()
    with torch.no_grad():
        snt_net.conv1.weight.copy_(sj_net.conv1.weight)
        snt_net.conv2.weight.copy_(sj_net.conv2.weight)
    images, _ = embedded_mnist()
    digits = images[6000:6048]  # test digits
    encoder = DoGLatencyEncoder(15)
    expected = sj.featurizer(sj_net, encoder)(digits)
    assert expected.shape == (48, 150, 9, 9) and expected.dtype == torch.bool
    assert 0.0 < float(expected.float().mean()) < 1.0
    assert torch.equal(snt.featurizer(snt_net, encoder)(digits), expected)
