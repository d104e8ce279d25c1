"""model.pt and checkpoint.pt are plain weights_only torch files with a verified digest, and
their weights load into a user's own SpikingJelly or snnTorch model in one call."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from stdp_plugins import load_weights
from stdp_plugins.cli import load_model, main
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.encoding import DoGLatencyEncoder
from stdp_plugins.serialization import CHECKPOINT_VERSION, FORMAT, CheckpointError, load_checkpoint, save_checkpoint

ROOT = Path(__file__).resolve().parent.parent


def _example(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "examples" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A tiny ``stdp-plugins train`` run on 32 digits."""
    root = tmp_path_factory.mktemp("files")
    images, labels = embedded_mnist()
    np.savez(root / "digits.npz", images=images[:32].numpy(), labels=labels[:32].numpy())
    out = root / "run"
    assert main(["train", "--data", str(root / "digits.npz"), "--out", str(out), "--batch-size", "8",
                 "--epochs", "1", "--no-progress", "--svm-max-iter", "20", "--readout-shift", "0"]) == 0
    return out


def _plain(value, where="file"):
    """Assert ``value`` holds only tensors, numbers, strings, lists and dicts."""
    if isinstance(value, dict):
        for key, item in value.items():
            assert isinstance(key, str), where
            _plain(item, f"{where}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            _plain(item, f"{where}[{index}]")
    else:
        assert value is None or isinstance(value, (Tensor, bool, int, float, str)), (where, type(value))


@pytest.mark.parametrize("name, kind", [("model.pt", "model"), ("checkpoint.pt", "training")])
def test_both_files_open_with_plain_torch_load_weights_only(run, name, kind):
    record = torch.load(run / name, weights_only=True)
    _plain(record)
    assert record["format"] == FORMAT and record["version"] == CHECKPOINT_VERSION and len(record["sha256"]) == 64
    assert record["kind"] == kind
    assert record["model_config"]["layers"][1]["out_channels"] == 150
    weights = record["weights"]
    assert sorted(weights) == ["conv1", "conv2"]
    assert weights["conv1"].shape == (32, 2, 5, 5) and weights["conv2"].shape == (150, 32, 2, 2)
    model, _, _ = load_model(run, torch.device("cpu"))
    assert torch.equal(weights["conv1"], model.conv1.weight) and torch.equal(weights["conv2"], model.conv2.weight)
    verified = load_checkpoint(run / name)
    assert "sha256" not in verified and torch.equal(verified["weights"]["conv2"], weights["conv2"])


def test_edited_content_is_refused_even_when_torch_reads_it(tmp_path, run):
    record = torch.load(run / "model.pt", weights_only=True)
    record["weights"]["conv2"][0, 0, 0, 0] += 0.25  # a file someone changed without its digest
    torch.save(record, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="corrupted file .*SHA-256") as info:
        load_checkpoint(tmp_path / "model.pt")
    assert str(tmp_path / "model.pt") in str(info.value)
    record["readout_shift"] = 1  # restored weights, another number: still refused
    record["weights"]["conv2"][0, 0, 0, 0] -= 0.25
    torch.save(record, tmp_path / "model.pt")
    with pytest.raises(CheckpointError, match="SHA-256"):
        load_checkpoint(tmp_path / "model.pt")


def test_save_checkpoint_rejects_what_weights_only_cannot_load(tmp_path):
    with pytest.raises(TypeError, match="payload values .* got object at payload.extra"):
        save_checkpoint(tmp_path / "x.pt", {"extra": object()})
    with pytest.raises(ValueError, match="reserved keys \\['sha256'\\]"):
        save_checkpoint(tmp_path / "x.pt", {"sha256": "0" * 64})
    assert not any(tmp_path.iterdir())  # nothing written, not even a temporary file


@pytest.mark.parametrize("framework", ["spikingjelly_kheradpisheh", "snntorch_kheradpisheh"])
def test_load_weights_into_a_framework_model_in_one_call(run, framework):
    pytest.importorskip(framework.split("_")[0])
    example = _example(framework)
    net = example.build_model()
    assert load_weights(run, net) == ["conv1", "conv2"]
    reference, _, _ = load_model(run, torch.device("cpu"))
    assert torch.equal(net.conv1.weight, reference.conv1.weight) and torch.equal(net.conv2.weight, reference.conv2.weight)
    assert load_weights(run / "checkpoint.pt", example.build_model()) == ["conv1", "conv2"]
    digits = embedded_mnist()[0][6000:6032]
    features = example.featurizer(net, DoGLatencyEncoder(15))(digits)
    expected = reference.features(reference.encode(digits))
    assert features.shape == expected.shape == (32, 150, 9, 9)
    assert torch.equal(features, expected)  # the framework model computes the trained network's features


def test_load_weights_checks_every_shape_before_copying(run, tmp_path):
    one = nn.Sequential(nn.Conv2d(2, 32, 5, bias=False))
    with pytest.raises(ValueError, match=r"model has 1 nn.Conv2d layers \(0\), .* holds 2 \(conv1 .. conv2\)"):
        load_weights(run, one)
    wrong = nn.Sequential(nn.Conv2d(2, 32, 5, bias=False), nn.ReLU(), nn.Conv2d(32, 100, 2, bias=False))
    before = [conv.weight.clone() for conv in (wrong[0], wrong[2])]
    with pytest.raises(ValueError, match=r"model's 2 has weights of shape \(100, 32, 2, 2\), conv2 .* \(150, 32, 2, 2\)"):
        load_weights(run, wrong)
    assert torch.equal(wrong[0].weight, before[0]) and torch.equal(wrong[2].weight, before[1])  # nothing loaded
    with pytest.raises(TypeError, match="model must be a torch.nn.Module"):
        load_weights(run, {"conv1": None})
    raw = (run / "model.pt").read_bytes()
    (tmp_path / "model.pt").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupted"):
        load_weights(tmp_path, wrong)
    with pytest.raises(CheckpointError, match="cannot read"):
        load_weights(tmp_path / "missing", wrong)
