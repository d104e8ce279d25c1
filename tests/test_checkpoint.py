"""Checkpoints: atomic, verified, never half-loaded; a killed or interrupted run resumes
to bitwise the same weights as an uninterrupted one."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.models.kheradpisheh import KheradpishehNet
from stdp_plugins.training import (
    CHECKPOINT_VERSION,
    CheckpointError,
    LayerwiseTrainer,
    TrainConfig,
    load_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def images():
    return embedded_mnist()[0][:40]


def _trainer(images, path=None, **options):
    options.setdefault("progress", False)
    options.setdefault("checkpoint_every", 0)
    return LayerwiseTrainer(KheradpishehNet(seed=0), images, TrainConfig(**options), path)


def test_round_trip_and_atomic_write(tmp_path, images):
    trainer = _trainer(images, tmp_path / "ck.pt", batch_size=8, epochs=(1, 1))
    trainer.train()
    payload = load_checkpoint(tmp_path / "ck.pt")
    assert payload["phase"] == 3 and payload["images_seen"] == [40, 40]
    assert torch.equal(payload["weights"]["conv2"], trainer.model.conv2.weight)
    assert [p.name for p in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind


@pytest.mark.parametrize("damage", ["truncate_end", "truncate_start", "flip_weight", "version", "format",
                                    "version1", "empty"])
def test_damaged_checkpoints_fail_clearly_and_load_nothing(tmp_path, images, damage):
    path = tmp_path / "ck.pt"
    source = _trainer(images[:16], path, batch_size=8, epochs=(1, 0))
    source.train()
    raw = bytearray(path.read_bytes())
    if damage == "truncate_end":
        raw = raw[: len(raw) - 100]
    elif damage == "truncate_start":
        raw = raw[:20]
    elif damage == "flip_weight":  # one byte of conv1's stored weights
        at = raw.find(source.model.conv1.weight.numpy().tobytes()[:64])
        assert at > 0
        raw[at + 100] ^= 0x01
    elif damage in ("version", "format"):
        record = torch.load(path, weights_only=True)
        record.update(version=CHECKPOINT_VERSION + 1) if damage == "version" else record.update(format="other")
        torch.save(record, path)
        raw = bytearray(path.read_bytes())
    elif damage == "version1":  # the binary header of format version 1
        raw = bytearray(b"STDPPLUG" + (1).to_bytes(4, "little")) + raw
    else:
        raw = bytearray()
    path.write_bytes(bytes(raw))
    target = _trainer(images[:16], path, batch_size=8, epochs=(1, 0))
    before = target.model.conv1.weight.clone()
    expected = {"truncate_end": "truncated or corrupted", "truncate_start": "truncated or corrupted",
                "flip_weight": "corrupted", "version": f"format version {CHECKPOINT_VERSION + 1}",
                "format": "not an stdp-plugins", "version1": "format version 1", "empty": "truncated"}[damage]
    with pytest.raises(CheckpointError, match=expected) as info:
        target.resume()
    assert str(path) in str(info.value)
    assert torch.equal(target.model.conv1.weight, before)
    assert target.state.images_seen == (0, 0)


def test_mismatched_checkpoint_is_refused(tmp_path, images):
    path = tmp_path / "ck.pt"
    _trainer(images[:16], path, batch_size=8, epochs=(1, 0)).train()
    with pytest.raises(CheckpointError, match="batch_size"):
        _trainer(images[:16], path, batch_size=4, epochs=(1, 0)).resume()
    with pytest.raises(CheckpointError, match="other training data"):
        _trainer(images[16:32], path, batch_size=8, epochs=(1, 0)).resume()
    save_checkpoint(path, {"kind": "training"})
    with pytest.raises(CheckpointError, match="malformed"):
        _trainer(images[:16], path, batch_size=8, epochs=(1, 0)).resume()


def test_in_process_resume_is_bitwise_identical(tmp_path, images):
    full = _trainer(images, batch_size=4, epochs=(1, 2))
    full.train()
    path = tmp_path / "ck.pt"
    first = _trainer(images, path, batch_size=4, epochs=(1, 2), checkpoint_every=12)
    # stop after the checkpoint written in the middle of layer 2
    first.config.epochs = (1, 2)
    original_step = first.model.train_step
    calls = {"n": 0}

    def step(*args):
        calls["n"] += 1
        if calls["n"] == 16:
            raise KeyboardInterrupt
        return original_step(*args)

    first.model.train_step = step
    with pytest.raises(KeyboardInterrupt):
        first.train()
    resumed = _trainer(images, path, batch_size=4, epochs=(1, 2), checkpoint_every=12)
    resumed.resume()
    assert resumed.state.phase == 2 and 0 < resumed.state.images_seen[1] < 80
    resumed.train()
    assert torch.equal(resumed.model.conv1.weight, full.model.conv1.weight)
    assert torch.equal(resumed.model.conv2.weight, full.model.conv2.weight)
    assert resumed.history == full.history


def _cli(out, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "stdp_plugins.cli", "train", "--data", str(out.parent / "digits.npz"),
           "--out", str(out), "--batch-size", "2", "--epochs", "1", "3", "--checkpoint-every", "16",
           "--no-progress", "--svm-max-iter", "20", *extra]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(path, process, timeout=120.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.01)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    """An uninterrupted CLI run on 96 digits (1 epoch of layer 1, 3 of layer 2)."""
    root = tmp_path_factory.mktemp("cli")
    images, labels = embedded_mnist()
    np.savez(root / "digits.npz", images=images[:96].numpy(), labels=labels[:96].numpy())
    reference = root / "reference"
    assert _cli(reference).wait() == 0
    return reference


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_or_interrupted_cli_run_resumes_bitwise(reference_run, sig):
    reference = reference_run
    broken = reference.parent / f"broken-{int(sig)}"
    process = _cli(broken)
    _wait_for(broken / "checkpoint.pt", process)  # the first of several (every 16 of 384 images)
    process.send_signal(sig)
    code = process.wait()
    assert code == (-signal.SIGKILL if sig == signal.SIGKILL else 130)
    assert not (broken / "model.pt").exists()  # it really stopped mid-run
    stopped_at = load_checkpoint(broken / "checkpoint.pt")
    assert stopped_at["phase"] in (1, 2)
    assert _cli(broken, "--resume").wait() == 0
    done = load_checkpoint(broken / "checkpoint.pt")
    ref = load_checkpoint(reference / "checkpoint.pt")
    for name in ("conv1", "conv2"):
        assert torch.equal(done["weights"][name], ref["weights"][name])
    assert done["history"] == ref["history"]
    assert load_checkpoint(broken / "model.pt")["readout"]["weight"].shape[0] == 10


def test_cli_resume_from_truncated_checkpoint_fails_clearly(tmp_path, capsys):
    from stdp_plugins.cli import main

    images, labels = embedded_mnist()
    np.savez(tmp_path / "digits.npz", images=images[:8].numpy(), labels=labels[:8].numpy())
    out = tmp_path / "run"
    out.mkdir()
    save_checkpoint(out / "checkpoint.pt", {"kind": "training", "weights": torch.zeros(100)})
    raw = (out / "checkpoint.pt").read_bytes()
    (out / "checkpoint.pt").write_bytes(raw[: len(raw) // 2])
    code = main(["train", "--data", str(tmp_path / "digits.npz"), "--out", str(out), "--resume", "--no-progress"])
    assert code == 2
    err = capsys.readouterr().err
    assert "truncated or corrupted" in err and "checkpoint.pt" in err and "Traceback" not in err
