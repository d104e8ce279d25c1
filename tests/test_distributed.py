"""Data-parallel training over torch.distributed (stdp_plugins.distributed) with 2 gloo
processes on the CPU: every step's weights are bitwise identical on both ranks and equal
to one process trained on the same global batches; the CLI under torchrun gives the
accuracy of one process; a killed rank stops the other with a message naming it, and
``--resume`` finishes from the intact checkpoint."""

from __future__ import annotations

import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn

from stdp_plugins import STDPConfig, WTAConfig, WTAMode, attach
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.distributed import distributed_train_step, shard
from stdp_plugins.models.kheradpisheh import KheradpishehNet
from stdp_plugins.training import LayerwiseTrainer, TrainConfig, load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
TORCHRUN = [PYTHON, "-m", "torch.distributed.run"]
WORLD = 2


# --------------------------------------------------------------------------- helpers
def _spawn(tmp_path: Path, worker, *args) -> None:
    """Run ``worker(rank, group, *args)`` in two gloo processes (assertions propagate)."""
    init = f"file://{tmp_path / 'rendezvous'}"
    mp.spawn(_entry, args=(init, worker, args), nprocs=WORLD, join=True)


def _entry(rank: int, init: str, worker, args) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=WORLD, timeout=timedelta(seconds=60))
    try:
        worker(rank, dist.group.WORLD, *args)
    finally:
        dist.destroy_process_group()
    # The worker passed. Leave without running C++ static destructors: after SpikingJelly and
    # snnTorch were imported, about one exit in ten aborted there ("terminate called without an
    # active exception", no Python frame), after the group was destroyed; a trivial gloo
    # worker never does. A failing worker still raises above, and spawn reports it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _same_on_every_rank(tensor: torch.Tensor, group) -> bool:
    copies = [torch.empty_like(tensor) for _ in range(WORLD)]
    dist.all_gather(copies, tensor.contiguous(), group=group)
    return all(torch.equal(copies[0], other) for other in copies[1:])


def _batches(n: int):
    """Uneven global batches (13, 1, 20, ...): shards of different sizes, and an empty one."""
    start, sizes = 0, itertools.cycle([13, 1, 20])
    while start < n:
        size = next(sizes)
        yield slice(start, min(start + size, n))
        start += size


# --------------------------------------------------------------- the network, per step
def _network_steps(rank: int, group) -> None:
    images = embedded_mnist()[0][:80]
    for reduction in ("sequential", "mean"):
        ranked, single = KheradpishehNet(seed=0), KheradpishehNet(seed=0)
        seen = 0
        for layer in (1, 2):
            inputs = ranked.layer_input(layer, ranked.encode(images))
            assert torch.equal(inputs, single.layer_input(layer, single.encode(images)))
            for batch in _batches(images.shape[0]):
                metric = distributed_train_step(ranked, layer, inputs[batch], seen, reduction, group)
                expected = single.train_step(layer, inputs[batch], seen, reduction)
                seen += inputs[batch].shape[0]
                weight = ranked.weight(layer)
                assert _same_on_every_rank(weight, group), f"{reduction} layer {layer}: ranks differ"
                assert torch.equal(weight, single.weight(layer)), f"{reduction} layer {layer}: not one process"
                assert metric == expected
            assert not torch.equal(ranked.weight(layer), KheradpishehNet(seed=0).weight(layer))  # it learned


def test_every_step_equals_one_process_on_both_ranks(tmp_path):
    _spawn(tmp_path, _network_steps)


def _trainer(rank: int, group, folder: str) -> None:
    images = embedded_mnist()[0][:72]
    config = TrainConfig(batch_size=10, epochs=(1, 1), checkpoint_every=30, progress=False)
    ranked = LayerwiseTrainer(KheradpishehNet(seed=0), images, config, Path(folder) / "ranked.pt", group)
    single = LayerwiseTrainer(KheradpishehNet(seed=0), images, config, Path(folder) / f"single{rank}.pt")
    assert ranked.train() == single.train()
    for layer in (1, 2):
        assert torch.equal(ranked.model.weight(layer), single.model.weight(layer))
    assert (ranked.save() is None) == (rank != 0)
    dist.barrier(group)
    saved, alone = load_checkpoint(Path(folder) / "ranked.pt"), load_checkpoint(Path(folder) / "single0.pt")
    assert all(torch.equal(saved["weights"][k], alone["weights"][k]) for k in ("conv1", "conv2"))
    resumed = LayerwiseTrainer(KheradpishehNet(seed=1), images, config, Path(folder) / "ranked.pt", group)
    resumed.resume()  # rank 0 reads, every rank gets it
    assert torch.equal(resumed.model.conv2.weight, single.model.conv2.weight)


def test_trainer_equals_one_process_and_rank_0_alone_writes(tmp_path):
    _spawn(tmp_path, _trainer, str(tmp_path))
    assert sorted(p.name for p in tmp_path.glob("*.pt")) == ["ranked.pt", "single0.pt", "single1.pt"]


# ------------------------------------------------------------------------ the learners
def _spikingjelly_steps(rank: int, group) -> None:
    from spikingjelly.activation_based import functional, layer, neuron

    def net():
        model = nn.Sequential(layer.Conv2d(2, 6, 3, bias=False), neuron.IFNode(v_threshold=1.5))
        functional.set_step_mode(model, "m")
        return model

    generator = torch.Generator().manual_seed(0)
    windows = [(torch.rand(5, n, 2, 9, 9, generator=generator) < 0.3).float() for n in (7, 12, 1, 9)]
    wta = WTAConfig(mode=WTAMode.BOTH, local_radius=1, k_winners=3, pointwise_inhibition=True)
    config = STDPConfig(lr_plus=0.05, lr_minus=0.04)
    for reduction, backend in (("sequential", "auto"), ("mean", "auto"), ("sequential", "torch")):
        ranked, single = net(), net()
        learners = attach(ranked, config=config, wta=wta, reduction=reduction, backend=backend, process_group=group)
        reference = attach(single, config=config, wta=wta, reduction=reduction, backend=backend)
        learners.initialize_weights(torch.Generator().manual_seed(1))
        reference.initialize_weights(torch.Generator().manual_seed(1))
        start = ranked[0].weight.detach().clone()
        for window in windows:
            ranked(window[:, shard(window.shape[1], group)])
            single(window)
            learners.apply()
            reference.apply()
            functional.reset_net(ranked)
            functional.reset_net(single)
            assert _same_on_every_rank(ranked[0].weight.detach(), group)
            assert torch.equal(ranked[0].weight, single[0].weight), (reduction, backend)
        assert not torch.equal(ranked[0].weight, start)  # it learned


def _snntorch_steps(rank: int, group) -> None:
    import snntorch as snn

    generator = torch.Generator().manual_seed(2)
    x = (torch.rand(6, 10, 16, generator=generator) < 0.4).float()
    models = [nn.Linear(16, 5, bias=False) for _ in range(2)]
    lifs = [snn.Leaky(beta=1.0, threshold=1.2) for _ in range(2)]
    wta = WTAConfig(mode=WTAMode.LOCAL, local_radius=0)
    from stdp_plugins.snntorch import STDPLearner

    learners = [STDPLearner(models[0], lifs[0], wta=wta, process_group=group), STDPLearner(models[1], lifs[1], wta=wta)]
    for learner in learners:
        learner.initialize_weights(torch.Generator().manual_seed(3))
    for fc, lif, inputs in ((models[0], lifs[0], x[:, shard(10, group)]), (models[1], lifs[1], x)):
        mem = lif.reset_mem()
        for step in range(inputs.shape[0]):
            _, mem = lif(fc(inputs[step]), mem)
    start = models[0].weight.detach().clone()
    for learner in learners:
        learner.apply()
    assert not torch.equal(models[0].weight, start)
    assert _same_on_every_rank(models[0].weight.detach(), group)
    assert torch.equal(models[0].weight, models[1].weight)


def _learners(rank: int, group) -> None:
    _spikingjelly_steps(rank, group)
    _snntorch_steps(rank, group)


def test_learners_with_a_process_group_equal_one_process(tmp_path):
    pytest.importorskip("spikingjelly")
    pytest.importorskip("snntorch")
    _spawn(tmp_path, _learners)


# ------------------------------------------------------------------------------ the CLI
@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    root = tmp_path_factory.mktemp("digits")
    images, labels = embedded_mnist()
    np.savez(root / "train.npz", images=images[:200].numpy(), labels=labels[:200].numpy())
    np.savez(root / "test.npz", images=images[-100:].numpy(), labels=labels[-100:].numpy())
    return root


def _train_args(digits: Path, out: str, *extra: str) -> list:
    return ["train", "--data", str(digits / "train.npz"), "--out", out, "--batch-size", "16", "--no-progress",
            "--svm-max-iter", "30", "--readout-copies", "1", *extra]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _environment() -> dict:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    return env


def test_torchrun_gives_the_accuracy_of_one_process(tmp_path, digits):
    args = _train_args(digits, "", "--test-data", str(digits / "test.npz"), "--epochs", "1")
    one, two = tmp_path / "one", tmp_path / "two"
    args[args.index("--out") + 1] = str(one)
    subprocess.run([PYTHON, "-m", "stdp_plugins", *args, "--threads", "1"], check=True, env=_environment(),
                   capture_output=True, timeout=120)
    args[args.index("--out") + 1] = str(two)
    run = subprocess.run([*TORCHRUN, "--standalone", "--nproc-per-node", str(WORLD), "-m", "stdp_plugins", *args],
                         env=_environment(), capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    single, ranked = (json.loads((d / "metrics.json").read_text()) for d in (one, two))
    assert ranked["accuracy"] == single["accuracy"] and ranked["processes"] == WORLD
    assert ranked["silent_fraction"] == single["silent_fraction"]
    for name in ("conv1", "conv2"):
        assert torch.equal(load_checkpoint(one / "checkpoint.pt")["weights"][name],
                           load_checkpoint(two / "checkpoint.pt")["weights"][name])
    assert run.stdout.count("accuracy:") == 1  # only rank 0 reports


def _launch(rank: int, port: int, cwd: Path, args: list) -> subprocess.Popen:
    env = dict(_environment(), RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(WORLD),
               LOCAL_WORLD_SIZE=str(WORLD), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    return subprocess.Popen([PYTHON, "-m", "stdp_plugins", *args], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def test_a_killed_rank_stops_the_other_and_resume_finishes(tmp_path, digits):
    timeout = 20.0
    args = _train_args(digits, "run", "--epochs", "3", "4", "--checkpoint-every", "32",
                       "--dist-timeout", str(timeout))
    places = [tmp_path / "rank0", tmp_path / "rank1"]  # one working folder per rank: --out run is relative
    for place in places:
        place.mkdir()
    port = _free_port()
    ranks = [_launch(rank, port, places[rank], args) for rank in range(WORLD)]
    checkpoint = places[0] / "run" / "checkpoint.pt"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline and ranks[0].poll() is None:
        time.sleep(0.02)
    assert checkpoint.exists(), ranks[0].communicate()[1][-3000:]
    ranks[1].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = ranks[0].communicate(timeout=timeout + 30)
    ranks[1].wait()
    assert ranks[0].returncode == 3, stderr[-3000:]
    assert time.monotonic() - killed < timeout
    assert "lost rank 1 of 2" in stderr and "continue with --resume" in stderr, stderr[-3000:]
    assert not (places[1] / "run").exists()  # rank 1 never writes
    state = load_checkpoint(checkpoint)
    assert 0 < sum(state["images_seen"]) < 200 * 7
    port = _free_port()
    resumed = [_launch(rank, port, places[rank], [*args, "--resume"]) for rank in range(WORLD)]
    outputs = [process.communicate(timeout=120) for process in resumed]
    assert [process.returncode for process in resumed] == [0, 0], outputs[0][1][-3000:]
    metrics = json.loads((places[0] / "run" / "metrics.json").read_text())
    assert metrics["convergence"]["layer2"]["images_seen"] == 200 * 4
    assert not (places[1] / "run").exists()

