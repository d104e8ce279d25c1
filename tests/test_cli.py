"""The ``stdp-plugins`` command and the data loaders it uses."""

import gzip
import json
import struct

import numpy as np
import pytest
import torch

from stdp_plugins.cli import main
from stdp_plugins.datasets import DatasetError, embedded_mnist, embedded_split, load_dataset


@pytest.fixture(scope="module")
def digits():
    images, labels = embedded_mnist()
    return images[:64].numpy(), labels[:64].numpy()


@pytest.fixture(scope="module")
def files(tmp_path_factory, digits):
    root = tmp_path_factory.mktemp("data")
    images, labels = digits
    np.savez(root / "train.npz", images=images[:48], labels=labels[:48])
    np.savez(root / "test.npz", images=images[48:], labels=labels[48:])
    _write_idx(root / "t10k-images-idx3-ubyte.gz", images[48:], gz=True)
    _write_idx(root / "t10k-labels-idx1-ubyte.gz", labels[48:], gz=True)
    _write_idx(root / "plain-images-idx3-ubyte", images[48:], gz=False)
    _write_idx(root / "plain-labels-idx1-ubyte", labels[48:], gz=False)
    return root


def _write_idx(path, array, gz):
    header = struct.pack(">HBB", 0, 8, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()
    with (gzip.open if gz else open)(path, "wb") as handle:
        handle.write(data)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, files):
    out = tmp_path_factory.mktemp("run")
    code = main(["train", "--data", str(files / "train.npz"), "--test-data", str(files / "test.npz"),
                 "--out", str(out), "--batch-size", "16", "--epochs", "1", "--no-progress", "--svm-max-iter", "50"])
    assert code == 0
    return out


def test_train_writes_model_metrics_and_figures(trained):
    names = {p.name for p in trained.iterdir()}
    assert {"model.pt", "checkpoint.pt", "metrics.json", "kernels.png", "convergence.png"} <= names
    metrics = json.loads((trained / "metrics.json").read_text())
    assert 0.0 <= metrics["accuracy"]["test"] <= 1.0 and metrics["accuracy"]["train"] > 0.5
    for layer in ("layer1", "layer2"):
        conv = metrics["convergence"][layer]
        assert conv["threshold"] == 0.01 and conv["reached"] == (conv["metric"] < 0.01)
        assert conv["images_seen"] == 48
    rates = metrics["images_per_second"]
    assert all(rates[k] > 0 for k in ("encoding", "layer1_training", "layer2_training", "feature_extraction"))
    assert 0.0 <= metrics["silent_fraction"]["test"] <= 1.0
    assert metrics["readout_shift"] == 1
    assert (trained / "kernels.png").read_bytes()[:4] == b"\x89PNG"


def test_readout_shift_is_saved_and_used_by_evaluate(trained, files, tmp_path):
    """evaluate classifies with the shift train used; --readout-shift 0 is the plain SVM."""
    from stdp_plugins.cli import extract_features, load_model, spike_features
    from stdp_plugins.readout import predict_shifted

    model, readout, shift = load_model(trained, torch.device("cpu"))
    assert shift == 1
    images, labels = load_dataset(files / "test.npz")
    expected = (predict_shifted(readout, spike_features(model), images, 1) == labels).double().mean().item()
    assert json.loads((trained / "metrics.json").read_text())["accuracy"]["test"] == pytest.approx(expected)
    plain = tmp_path / "plain"
    assert main(["train", "--data", str(files / "train.npz"), "--test-data", str(files / "test.npz"),
                 "--out", str(plain), "--batch-size", "16", "--epochs", "1", "--no-progress",
                 "--readout-shift", "0"]) == 0
    model, readout, shift = load_model(plain, torch.device("cpu"))
    features, _ = extract_features(model, images)
    assert shift == 0
    metrics = json.loads((plain / "metrics.json").read_text())
    assert metrics["readout_shift"] == 0
    assert metrics["accuracy"]["test"] == pytest.approx(readout.accuracy(features, labels))


@pytest.mark.parametrize("name", ["test.npz", "t10k-images-idx3-ubyte.gz", "plain-images-idx3-ubyte"])
def test_evaluate_any_format(trained, files, name, capsys):
    out = trained / f"eval-{name}.json"
    assert main(["evaluate", "--model", str(trained), "--data", str(files / name), "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    metrics = json.loads((trained / "metrics.json").read_text())
    assert result["n_images"] == 16
    assert result["accuracy"] == pytest.approx(metrics["accuracy"]["test"])
    assert "accuracy:" in capsys.readouterr().out


def test_evaluate_default_output_and_plot(trained, files):
    assert main(["evaluate", "--model", str(trained), "--data", str(files / "test.npz")]) == 0
    assert (trained / "evaluation.json").exists()
    (trained / "kernels.png").unlink()
    assert main(["plot", "--model", str(trained)]) == 0
    assert (trained / "kernels.png").exists()


def test_idx_and_npz_load_the_same_digits(files, digits):
    a = load_dataset(files / "t10k-images-idx3-ubyte.gz")
    b = load_dataset(files / "test.npz")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert a[0].dtype == torch.uint8 and a[1].dtype == torch.int64


def test_embedded_split():
    (train_x, train_y), (test_x, test_y) = embedded_split()
    assert train_x.shape == (6000, 28, 28) and test_x.shape == (2000, 28, 28)
    assert train_y.shape == (6000,) and int(test_y.max()) == 9


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda d: d / "missing.npz", "no such file"),
        (lambda d: _bytes(d / "junk.npz", b"not a zip"), "not a readable .npz"),
        (lambda d: _npz(d / "nolabels.npz", images=np.zeros((2, 4, 4), np.uint8)), "missing \\['labels'\\]"),
        (lambda d: _npz(d / "float.npz", images=np.zeros((2, 4, 4)), labels=np.zeros(2, int)), "uint8"),
        (lambda d: _npz(d / "len.npz", images=np.zeros((2, 4, 4), np.uint8), labels=np.zeros(3, int)),
         "same length"),
        (lambda d: _bytes(d / "cut-images-idx3-ubyte", struct.pack(">HBBIII", 0, 8, 3, 5, 28, 28) + b"\0" * 10),
         "truncated or corrupted"),
        (lambda d: _bytes(d / "bad-images-idx3-ubyte", bytes(range(1, 9))), "magic"),
        (lambda d: _idx_alone(d), "labels file not found"),
        (lambda d: _bytes(d / "digits.csv", b"1,2"), "unknown data file type"),
    ],
)
def test_bad_data_files_name_the_file(tmp_path, make, message, capsys):
    path = make(tmp_path)
    with pytest.raises(DatasetError, match=message) as info:
        load_dataset(path)
    assert path.name in str(info.value)
    assert main(["train", "--data", str(path), "--out", str(tmp_path / "o"), "--no-progress"]) == 2
    assert path.name in capsys.readouterr().err


def _bytes(path, data):
    path.write_bytes(data)
    return path


def _npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def _idx_alone(root):
    path = root / "lonely-images-idx3-ubyte"
    _write_idx(path, np.zeros((2, 4, 4), np.uint8), gz=False)
    return path


def test_bad_model_dir_and_arguments(tmp_path, files, capsys):
    assert main(["evaluate", "--model", str(tmp_path), "--data", str(files / "test.npz")]) == 2
    assert "model.pt" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--batch-size", "0"])
    with pytest.raises(SystemExit):
        main(["train", "--epochs", "1", "2", "3"])
    with pytest.raises(SystemExit):
        main(["bogus"])
    with pytest.raises(SystemExit):
        main(["train", "--readout-shift", "-1"])
    assert "expected an integer >= 0, got -1" in capsys.readouterr().err
