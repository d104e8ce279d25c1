"""NIR export (`stdp-plugins export --format nir`) and its round trip through SpikingJelly's
and snnTorch's NIR importers on real digits: the imported graphs reproduce the network's
output spike waves, first-spike times and features bit for bit."""

import math

import nir
import numpy as np
import pytest
import snntorch.utils
import torch
import torch.nn.functional as F
from snntorch.import_nir import import_from_nir as snntorch_import
from spikingjelly.activation_based.nir_exchange import import_from_nir as spikingjelly_import

from stdp_plugins.cli import load_model, main
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.models.kheradpisheh import KheradpishehConfig, KheradpishehNet, LayerSpec
from stdp_plugins.nir_export import decode_stepwise_output, in_float64, network_to_nir, stepwise_waves


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """100 training digits in a file and 50 held-out digits."""
    images, labels = embedded_mnist()
    path = tmp_path_factory.mktemp("nir_data") / "train.npz"
    np.savez(path, images=images[:100].numpy(), labels=labels[:100].numpy())
    return path, images[-50:]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory, digits):
    out = tmp_path_factory.mktemp("nir_run")
    assert main(["train", "--data", str(digits[0]), "--out", str(out), "--batch-size", "20", "--epochs", "1",
                 "--no-progress", "--svm-max-iter", "50", "--readout-shift", "0"]) == 0
    return out


@pytest.fixture(scope="module")
def exported(model_dir):
    path = model_dir / "network.nir"
    assert main(["export", "--model", str(model_dir), "--format", "nir", "--out", str(path)]) == 0
    return path


@pytest.fixture(scope="module")
def reference(model_dir, digits):
    """The network's input times, its output wave [T, N, C, H, W] and its features."""
    model, _, _ = load_model(model_dir, torch.device("cpu"))
    times = model.encode(digits[1])
    steps = model.config.time_steps
    # the output wave at t: the features of the inputs fired by t (weights are non-negative)
    wave = torch.stack([model.features(torch.where(times <= t, times, math.inf)) for t in range(steps)])
    features = model.features(times)
    assert features.any() and not features.all()  # a test that can fail
    return model, times, wave, features


def _first_spikes(wave):
    steps = torch.arange(wave.shape[0], dtype=torch.float32).view(-1, 1, 1, 1, 1)
    return torch.where(wave, steps, math.inf).amin(dim=0)


def test_graph_holds_the_weights_thresholds_and_input_shape(exported, reference):
    model = reference[0]
    graph = nir.read(str(exported))
    names = ["input"] + [f"{kind}{layer}{suffix}" for layer in (1, 2)
                         for kind, suffix in (("conv", ""), ("neuron", ""), ("pool", ""), ("pool", "_neuron"))]
    assert set(graph.nodes) == set(names + ["output"])
    assert set(graph.edges) == set(zip(names, names[1:] + ["output"]))
    assert graph.nodes["input"].input_type["input"].tolist() == [2, 28, 28]
    assert graph.nodes["output"].output_type["output"].tolist() == [150, 9, 9]
    for layer in (1, 2):
        spec, conv = model.spec(layer), graph.nodes[f"conv{layer}"]
        assert np.array_equal(conv.weight, model.weight(layer).numpy()) and not conv.bias.any()
        assert tuple(conv.padding) == (spec.padding + spec.input_padding,) * 2
        neuron = graph.nodes[f"neuron{layer}"]
        assert isinstance(neuron, nir.LIF) and np.all(neuron.v_threshold == spec.threshold)
        assert np.all(neuron.v_reset == 0) and np.all(neuron.v_leak == 0)
        assert graph.nodes[f"pool{layer}"].kernel_size.tolist() == [2, 2]
        assert np.all(graph.nodes[f"pool{layer}_neuron"].v_threshold == 0.125)
    assert graph.metadata["time_steps"] == 15


def test_spikingjelly_import_reproduces_first_spikes_and_features(exported, reference):
    model, times, wave, features = reference
    imported = spikingjelly_import(str(exported), dtype=torch.float64)
    output, _ = imported(stepwise_waves(times, model.config.time_steps, torch.float64))
    first, imported_features = decode_stepwise_output(output, model.config.time_steps)
    assert torch.equal(imported_features, features)
    assert torch.equal(first, _first_spikes(wave))


def test_snntorch_import_reproduces_first_spikes_and_features(exported, reference):
    model, times, wave, features = reference
    imported = in_float64(snntorch_import(nir.read(str(exported))))
    snntorch.utils.reset(imported)  # the initial state: every sample starts from rest
    output, _ = imported(stepwise_waves(times, model.config.time_steps, torch.float64))
    first, imported_features = decode_stepwise_output(output, model.config.time_steps)
    assert torch.equal(imported_features, features)
    assert torch.equal(first, _first_spikes(wave))


def test_no_potential_sits_exactly_on_a_threshold(reference):
    """snnTorch fires at v > threshold, the paper (and SpikingJelly) at v >= threshold: the
    equality above holds because no potential of these digits equals a threshold."""
    model, times, _, _ = reference
    fired = (times < model.config.time_steps).to(torch.float64)
    for layer in (1, 2):
        spec = model.spec(layer)
        fired = F.pad(fired, (spec.input_padding,) * 4)
        potential = F.conv2d(fired, model.weight(layer).to(torch.float64), padding=spec.padding)
        assert not (potential == spec.threshold).any()
        spikes = (potential >= spec.threshold).to(torch.float64)
        fired = (F.max_pool2d(spikes, spec.pool_kernel, spec.pool_stride, spec.pool_padding) > 0).to(torch.float64)


def test_network_to_nir_rejects_bad_arguments():
    model = KheradpishehNet(seed=0)
    with pytest.raises(TypeError, match="model must be a KheradpishehNet"):
        network_to_nir(torch.nn.Conv2d(2, 2, 1))
    with pytest.raises(ValueError, match="input_size"):
        network_to_nir(model, (28,))
    one_layer = KheradpishehNet(KheradpishehConfig(layers=(LayerSpec(2, 4, 5, 0, 1.0, 1, 1),)))
    with pytest.raises(ValueError, match="input_size .* too small"):
        network_to_nir(one_layer, (3, 3))
    for bad in (-0.5, math.nan):
        broken = KheradpishehNet(seed=0)
        with torch.no_grad():
            broken.weight(2)[0, 0, 0, 0] = bad
        with pytest.raises(ValueError, match="layer 2 weights must be finite and >= 0"):
            network_to_nir(broken)
    with pytest.raises(TypeError, match="imported must be a torch.nn.Module"):
        in_float64("graph")
    with pytest.raises(ValueError, match="multiple of time_steps"):
        decode_stepwise_output(torch.zeros(7, 1, 1, 1), 15)


def test_export_command_errors(tmp_path, model_dir, capsys):
    assert main(["export", "--model", str(tmp_path), "--out", str(tmp_path / "x.nir")]) == 2
    assert "model.pt" in capsys.readouterr().err
    for bad in (["--format", "onnx"], ["--input-size", "0", "28"]):
        with pytest.raises(SystemExit):
            main(["export", "--model", str(model_dir), "--out", str(tmp_path / "x.nir"), *bad])
    assert not (tmp_path / "x.nir").exists()
    assert main(["export", "--model", str(model_dir), "--out", str(tmp_path / "missing" / "x.nir")]) == 2
    assert "missing" in capsys.readouterr().err
