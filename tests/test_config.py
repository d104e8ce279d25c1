"""Networks from a config file: the presets, the file format's errors, an N-layer network
and ``stdp-plugins train --config caltech`` on small synthetic images."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from stdp_plugins import load_weights
from stdp_plugins.cli import load_model, main
from stdp_plugins.models import PRESETS, KheradpishehConfig, KheradpishehNet, LayerSpec, load_network_config
from stdp_plugins.models.config import network_config_from_dict, preset_path
from stdp_plugins.serialization import load_checkpoint
from stdp_plugins.training import LayerwiseTrainer, TrainConfig

CALTECH_SIZE = 160  # the paper scales Caltech images to 160 pixels high


def _synthetic(n: int, size: int = CALTECH_SIZE, seed: int = 0):
    """Two classes of grey images: a bright disc ("face") or dark horizontal bars
    ("motorbike") at a random place, on a noisy background."""
    g = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = g.integers(80, 120, size=(n, size, size)).astype(np.float64)
    labels = np.arange(n) % 2
    for i, label in enumerate(labels):
        cy, cx = g.integers(size // 4, 3 * size // 4, size=2)
        if label == 0:
            images[i][(yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2] = 230
        else:
            band = (np.abs(xx - cx) < size // 4) & (np.abs(yy - cy) < size // 5)
            images[i][band & ((yy // 6) % 2 == 0)] = 10
    return images.astype(np.uint8), labels.astype(np.int64)


def test_presets_ship_with_the_package_and_mnist_is_the_default():
    assert PRESETS == ("mnist", "caltech")
    assert all(preset_path(name).is_file() for name in PRESETS)
    mnist = load_network_config("mnist")
    assert mnist == KheradpishehConfig() and mnist.to_dict() == KheradpishehConfig().to_dict()
    assert load_network_config(preset_path("mnist")) == mnist
    assert mnist.feature_shape(28, 28) == (150, 9, 9)
    assert (mnist.pool_kernel, mnist.pool_stride, mnist.pool_padding, mnist.inter_padding) == (2, 2, 1, 1)
    assert mnist.learning_rates(1, 1500) == pytest.approx((0.032, 0.024)) and mnist.learning_rates(2, 10**6) == (
        0.004, 0.003)


def test_caltech_preset_is_the_papers_three_layer_network():
    config = load_network_config("caltech")
    assert config.num_layers == 3
    assert [s.out_channels for s in config.layers] == [4, 20, 10]
    assert [s.in_channels for s in config.layers] == [2, 4, 20]
    assert [s.kernel_size for s in config.layers] == [5, 16, 5]
    assert [s.threshold for s in config.layers] == [10.0, 60.0, 2.0]
    assert [(s.pool_kernel, s.pool_stride) for s in config.layers[:2]] == [(7, 6), (2, 2)]
    assert config.layers[2].global_pool and not config.layers[0].global_pool
    assert all(config.learning_rates(layer, 10**6) == (0.004, 0.003) for layer in (1, 2, 3))
    assert config.feature_shape(160, 250) == (10, 1, 1)
    with pytest.raises(ValueError, match=r"layer 2: an input of 5x5 is too small .* \(images of 40x40\)"):
        config.feature_shape(40, 40)


def test_json_and_toml_describe_the_same_network(tmp_path):
    data = {"time_steps": 15, "layers": [
        {"maps": 8, "kernel": 3, "padding": 1, "threshold": 4.0, "k": 2, "radius": 1,
         "rates": {"plus": 0.01, "minus": 0.005, "double_every": 10}, "pooling": {"kernel": 2, "stride": 2,
                                                                               "padding": 0}},
        {"maps": 6, "kernel": 2, "input_padding": 1, "threshold": 1.5, "k": 3, "radius": 0, "pooling": "global"},
    ]}
    (tmp_path / "net.json").write_text(json.dumps(data))
    (tmp_path / "net.toml").write_text(
        "time_steps = 15\n[[layers]]\nmaps = 8\nkernel = 3\npadding = 1\nthreshold = 4.0\nk = 2\nradius = 1\n"
        "rates = { plus = 0.01, minus = 0.005, double_every = 10 }\npooling = { kernel = 2, stride = 2, padding = 0 }\n"
        "[[layers]]\nmaps = 6\nkernel = 2\ninput_padding = 1\nthreshold = 1.5\nk = 3\nradius = 0\npooling = \"global\"\n")
    config = load_network_config(tmp_path / "net.json")
    assert load_network_config(str(tmp_path / "net.toml")) == config
    assert config.layers[1] == LayerSpec(8, 6, 2, 0, 1.5, 3, 0, pool_kernel=0, pool_padding=0, input_padding=1)
    assert config.learning_rates(1, 25) == pytest.approx((0.04, 0.03))
    assert config.feature_shape(12, 12) == (6, 1, 1)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["layers"][0].update(map=d["layers"][0].pop("maps")),
         r"layer 1: unknown keys \['map'\], missing keys \['maps'\]; allowed: \['input_padding'"),
        (lambda d: d["layers"][1].pop("radius"), r"layer 2: missing keys \['radius'\]; allowed"),
        (lambda d: d["layers"][1].update(threshold=0), "layer 2: threshold must be > 0"),
        (lambda d: d["layers"][1].update(k=0), "layer 2: k_winners must be >= 1"),
        (lambda d: d["layers"][0].update(pooling={"kernel": 2, "size": 2}), r"layer 1.pooling has unknown keys \['size'\]"),
        (lambda d: d["layers"][0].update(rates={"plus": -1.0}), "layer 1: lr_plus must be >= 0"),
        (lambda d: d["layers"][0].update(pooling={"kernel": 2, "padding": 2}), "pool_padding must be at most half"),
        (lambda d: d.update(layers=[]), "'layers' must be a non-empty list"),
        (lambda d: d.update(steps=15), r"unknown keys \['steps'\]"),
        (lambda d: d.update(time_steps=300), "time_steps must be <= 254"),
        (lambda d: d.update(paper="nobody2020"), "nobody2020"),
    ],
)
def test_bad_network_files_name_the_file_and_the_key(change, message):
    import tomllib

    data = tomllib.loads(preset_path("mnist").read_text())
    change(data)
    with pytest.raises(ValueError, match=message) as info:
        network_config_from_dict(data, "my-net.toml")
    assert str(info.value).startswith("my-net.toml")


def test_unreadable_network_files_are_refused(tmp_path):
    (tmp_path / "broken.toml").write_text("[[layers]\nmaps = 4\n")
    with pytest.raises(ValueError, match="broken.toml: cannot read the network file"):
        load_network_config(tmp_path / "broken.toml")
    with pytest.raises(ValueError, match="missing.json: cannot read"):
        load_network_config(tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"path_or_preset must be a .toml or .json file or one of \['mnist', 'caltech'\]"):
        load_network_config("imagenet")
    with pytest.raises(ValueError, match=r"layers\[1\].in_channels must equal layers\[0\].out_channels \(32\)"):
        KheradpishehConfig(layers=(LayerSpec(2, 32, 5, 2, 10.0, 5, 2), LayerSpec(16, 8, 2, 0, 1.0, 1, 0)))
    with pytest.raises(ValueError, match=r"layers\[0\].in_channels must equal the encoder's DoG channels \(2\)"):
        KheradpishehConfig(layers=(LayerSpec(3, 8, 5, 2, 10.0, 5, 2),))


def test_three_layer_network_walks_its_layers():
    net = KheradpishehNet(load_network_config("caltech"), seed=1)
    assert net.num_layers == 3
    assert [tuple(net.weight(layer).shape) for layer in range(1, 4)] == [(4, 2, 5, 5), (20, 4, 16, 16), (10, 20, 5, 5)]
    assert [name for name, _ in net.named_children() if name.startswith("conv")] == ["conv1", "conv2", "conv3"]
    assert net.spec(3).global_pool and net.spec(1).pool_kernel == 7
    with pytest.raises(ValueError, match=r"layer must be an int in \[1, 3\], got 4"):
        net.spec(4)
    images = torch.from_numpy(_synthetic(4)[0])
    times = net.encode(images)
    assert tuple(net.layer_input(2, times).shape) == (4, 4, 25, 25)
    assert tuple(net.layer_input(3, times).shape) == (4, 20, 5, 5)
    assert torch.equal(net.layer_input(3, times), net.next_input(3, net.layer_input(2, times)))
    assert net.features(times).shape == (4, 10, 1, 1) and net.features(times).dtype == torch.bool


def test_trainer_and_checkpoints_loop_over_three_layers(tmp_path):
    images = torch.from_numpy(_synthetic(6)[0])
    config = TrainConfig(batch_size=3, epochs=(1,), checkpoint_every=0, progress=False)
    trainer = LayerwiseTrainer(KheradpishehNet(load_network_config("caltech")), images, config, tmp_path / "ck.pt")
    history = trainer.train()
    assert sorted(history) == [1, 2, 3] and [len(history[layer]) for layer in (1, 2, 3)] == [2, 2, 2]
    saved = load_checkpoint(tmp_path / "ck.pt")
    assert saved["phase"] == 4 and saved["images_seen"] == [6, 6, 6] and sorted(saved["weights"]) == [
        "conv1", "conv2", "conv3"]
    again = LayerwiseTrainer(KheradpishehNet(load_network_config("caltech"), seed=5), images, config,
                             tmp_path / "ck.pt")
    again.resume()
    assert all(torch.equal(a, b) for a, b in zip(again.model.weights(), trainer.model.weights()))
    mnist = LayerwiseTrainer(KheradpishehNet(), images, config, tmp_path / "ck.pt")
    with pytest.raises(ValueError, match="another network configuration"):
        mnist.resume()


def test_cli_trains_the_caltech_preset_on_synthetic_images(tmp_path, capsys):
    train_x, train_y = _synthetic(12, seed=1)
    test_x, test_y = _synthetic(6, seed=2)
    np.savez(tmp_path / "train.npz", images=train_x, labels=train_y)
    np.savez(tmp_path / "test.npz", images=test_x, labels=test_y)
    out = tmp_path / "run"
    assert main(["train", "--config", "caltech", "--data", str(tmp_path / "train.npz"), "--test-data",
                 str(tmp_path / "test.npz"), "--out", str(out), "--batch-size", "4", "--epochs", "1", "1", "2",
                 "--no-progress", "--readout-shift", "0", "--svm-max-iter", "50"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert sorted(metrics["convergence"]) == ["layer1", "layer2", "layer3"]
    assert [metrics["convergence"][f"layer{layer}"]["images_seen"] for layer in (1, 2, 3)] == [12, 12, 24]
    assert {"layer1_training", "layer2_training", "layer3_training"} <= set(metrics["images_per_second"])
    assert metrics["model_config"] == load_network_config("caltech").to_dict()
    assert 0.0 <= metrics["accuracy"]["test"] <= 1.0
    model, readout, _ = load_model(out, torch.device("cpu"))
    assert model.num_layers == 3 and readout.weight.shape[-1] == 10
    user = nn.Sequential(nn.Conv2d(2, 4, 5), nn.MaxPool2d(7, 6), nn.Conv2d(4, 20, 16), nn.Conv2d(20, 10, 5))
    assert load_weights(out, user) == ["0", "2", "3"]
    assert torch.equal(user[2].weight, model.conv2.weight) and torch.equal(user[3].weight, model.conv3.weight)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["train", "--config", "caltech", "--epochs", "1", "2"])
    assert "--epochs takes one non-negative integer or 3 (one per layer)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--config", str(tmp_path / "nothing.toml")])
    assert "argument --config" in capsys.readouterr().err
    np.savez(tmp_path / "digits.npz", images=train_x[:, :28, :28], labels=train_y)
    assert main(["train", "--config", "caltech", "--data", str(tmp_path / "digits.npz"), "--out", str(out)]) == 2
    assert ("do not fit the network: layer 2: an input of 3x3 is too small for a 16x16 convolution and its "
            "pooling (images of 28x28)") in capsys.readouterr().err


def test_three_layer_features_equal_the_first_spike_times_path():
    """features() (which neurons fire, layer by layer) equals pooling the first-spike times of
    every layer without inhibition, on the Caltech preset with its global last pooling."""
    from stdp_plugins.backends import first_spike_conv
    from stdp_plugins.models import min_pool_times, pad_times

    net = KheradpishehNet(load_network_config("caltech"), seed=2)
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():  # sparse weights (over a third exactly 0), so that features differ
        for weight in net.weights():
            weight.copy_((torch.rand(weight.shape, generator=g) * 1.6 - 0.6).clamp(0.0, 1.0))
    times = net.encode(torch.from_numpy(_synthetic(6, seed=3)[0]))
    x = times
    for layer in range(1, net.num_layers + 1):
        spec = net.spec(layer)
        x, _ = first_spike_conv(x, net.weight(layer), spec.threshold, spec.padding, 15, potentials=False)
        x = x.amin(dim=(2, 3), keepdim=True) if spec.global_pool else min_pool_times(
            x, spec.pool_kernel, spec.pool_stride, spec.pool_padding)
        if layer < net.num_layers:
            x = pad_times(x, net.spec(layer + 1).input_padding)
    expected = torch.isfinite(x)
    assert 0.0 < float(expected.float().mean()) < 1.0
    assert torch.equal(net.features(times), expected)
