"""The CuPy backends on a CUDA GPU against the torch path, on real digits: every kernel gives
the CPU path's results bit for bit (the torch path on the same GPU too, except where torch's
CUDA cumsum rounds differently), launches without host synchronisation, and the reference
network trains on CUDA tensors with the same weights as on the CPU.

Marked ``gpu``; skipped without a CUDA GPU and CuPy (the host-build tests of
``test_cuda_host.py`` check the same kernels everywhere).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from stdp_plugins.backends import (
    IMPLEMENTATIONS,
    cupy_available,
    first_spike_conv,
    first_spike_times,
    first_spike_training_step_,
    fused_winner_update,
    resolve_backend,
    select_winners,
)
from stdp_plugins.learning import WTAMode
from stdp_plugins.models import KheradpishehNet
from stdp_plugins.datasets import embedded_mnist
from cuda_digits import CONVERGENCE_ATOL, WALK_RULES, network_on_digits

HAS_GPU = torch.cuda.is_available() and cupy_available()
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="needs a CUDA GPU and CuPy")]
CUDA = "cuda"


@pytest.fixture(scope="module")
def digits():
    """The reference network on 6 real digits (see ``cuda_digits.network_on_digits``)."""
    return network_on_digits()


def test_auto_picks_cupy_for_every_learning_operation_on_cuda():
    for operation in ("first_spike_times", "select_winners", "stdp_update", "first_spike_conv"):
        assert "cupy" in IMPLEMENTATIONS[operation]
        assert resolve_backend(operation, "auto", torch.device(CUDA)) == "cupy"


@pytest.mark.parametrize("layer", [1, 2])
def test_first_spike_conv_equals_the_cpu_and_the_gpu_torch_path(digits, layer):
    net, layers = digits
    d = layers[layer]
    args = (d["spec"].threshold, d["spec"].padding, net.config.time_steps)
    times, potentials = first_spike_conv(d["input"].to(CUDA), d["weight"].to(CUDA), *args, backend="cupy")
    gpu_times, gpu_potentials = first_spike_conv(d["input"].to(CUDA), d["weight"].to(CUDA), *args, backend="torch")
    assert torch.equal(times.cpu(), d["times"]) and torch.equal(potentials.cpu(), d["potentials"])
    assert torch.equal(times, gpu_times) and torch.equal(potentials, gpu_potentials)


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("mode, radius, k", WALK_RULES, ids=lambda v: getattr(v, "name", str(v)))
def test_select_winners_equals_torch(digits, mode, radius, k, pointwise):
    _, layers = digits
    d = layers[1]
    for potentials in (d["potentials"], None):
        cuda_potentials = None if potentials is None else potentials.to(CUDA)
        mask = select_winners(d["times"].to(CUDA), cuda_potentials, mode, radius, k, pointwise=pointwise,
                              backend="cupy")
        expected = select_winners(d["times"], potentials, mode, radius, k, pointwise=pointwise, backend="torch")
        gpu = select_winners(d["times"].to(CUDA), cuda_potentials, mode, radius, k, pointwise=pointwise,
                             backend="torch")
        assert torch.equal(mask.cpu(), expected) and torch.equal(mask, gpu)


@pytest.mark.parametrize("cumulative", [False, True])
def test_first_spike_times_equals_torch(digits, cumulative):
    net, layers = digits
    d = layers[1]
    steps = torch.arange(net.config.time_steps, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    window = d["times"][None] <= steps
    drive = torch.randn(window.shape, generator=torch.Generator().manual_seed(0))
    times, value = first_spike_times(window.to(CUDA), drive.to(CUDA), cumulative=cumulative, backend="cupy")
    expected_times, expected_value = first_spike_times(window, drive, cumulative=cumulative, backend="torch")
    assert torch.equal(times.cpu(), expected_times) and torch.equal(value.cpu(), expected_value)
    gpu_times, gpu_value = first_spike_times(window.to(CUDA), drive.to(CUDA), cumulative=cumulative, backend="torch")
    assert torch.equal(times, gpu_times)
    torch.testing.assert_close(value, gpu_value, atol=1e-5, rtol=1e-6)  # torch's CUDA cumsum: float32, parallel


@pytest.mark.parametrize("reduction", ["mean", "sequential"])
@pytest.mark.parametrize("layer", [1, 2])
def test_stdp_update_equals_the_cpu_and_the_gpu_torch_path(digits, layer, reduction):
    net, layers = digits
    d = layers[layer]
    lr_plus, lr_minus = d["rates"]
    results = {}
    for name, device, backend in (("cupy", CUDA, "cupy"), ("gpu_torch", CUDA, "torch"), ("cpu", "cpu", "torch")):
        weights = d["weight"].clone().to(device)
        convergence = fused_winner_update(weights, d["input"].to(device), d["times"].to(device),
                                          d["winners"].to(device), net.config.stdp, lr_plus, lr_minus, 1,
                                          d["spec"].padding, backend, reduction=reduction)
        results[name] = (weights.cpu(), convergence.cpu())
    assert not torch.equal(results["cpu"][0], d["weight"])
    for other in ("gpu_torch", "cpu"):
        assert torch.equal(results["cupy"][0], results[other][0]), other
        torch.testing.assert_close(results["cupy"][1], results[other][1], atol=CONVERGENCE_ATOL, rtol=0)


def test_kernels_launch_without_host_synchronisation(digits):
    net, layers = digits
    d = {key: value.to(CUDA) if isinstance(value, torch.Tensor) else value for key, value in layers[1].items()}
    window = d["times"][None] <= torch.arange(15, device=CUDA, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        first_spike_times(window, window.float(), cumulative=True, backend="cupy")
        mask = select_winners(d["times"], d["potentials"], WTAMode.BOTH, 2, 5, pointwise=True, backend="cupy")
        for reduction in ("mean", "sequential"):
            fused_winner_update(d["weight"], d["input"], d["times"], mask, net.config.stdp, 0.004, 0.003, 1, 2,
                                "cupy", reduction=reduction)
            first_spike_training_step_(d["weight"], d["input"], 10.0, 2, 15, WTAMode.BOTH, 2, 5, net.config.stdp,
                                       0.004, 0.003, reduction, "cupy")
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_reference_network_trains_on_cuda_with_the_cpu_weights():
    images, _ = embedded_mnist()
    nets = {device: KheradpishehNet(seed=0).to(device) for device in ("cpu", CUDA)}
    encoded = nets["cpu"].encode(images[:96])  # the DoG filter is a float32 convolution: encode once
    for device, net in nets.items():
        times = net.layer_input(1, encoded.to(device))
        for layer in (1, 2):
            if layer == 2:
                times = net.next_input(2, times)
            for start in range(0, times.shape[0], 32):
                net.train_step(layer, times[start:start + 32], start, reduction="sequential")
    for layer in (1, 2):
        assert torch.equal(nets[CUDA].weight(layer).cpu(), nets["cpu"].weight(layer))


def test_spikingjelly_example_learners_give_the_torch_weights_on_cuda():
    # the adapters' learners on CUDA tensors: first spikes, winners and updates all via CuPy,
    # against the learners' torch path on the same GPU (the model's own float32 convolutions
    # run in cuDNN for both, so only the learning step differs)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))
    import spikingjelly_kheradpisheh as example

    from stdp_plugins.encoding import DoGLatencyEncoder
    from stdp_plugins.models.recipe import PAPER, attach_paper_learners

    images, _ = embedded_mnist()
    times = DoGLatencyEncoder(PAPER.time_steps).to(CUDA).spike_times(images[:64].to(CUDA))
    weights = {}
    for backend in ("cupy", "torch"):
        net = example.build_model().to(CUDA)
        group = attach_paper_learners(net)
        for name in example.SYNAPSES:
            group[name].backend = backend
        example.train_layer(net, group, 1, times, 1, 16, 0, False)
        example.train_layer(net, group, 2, example.layer2_input(net, times), 1, 16, 0, False)
        group.close()
        weights[backend] = [net.conv1.weight.detach().clone(), net.conv2.weight.detach().clone()]
    assert all(torch.equal(a, b) for a, b in zip(weights["cupy"], weights["torch"]))
