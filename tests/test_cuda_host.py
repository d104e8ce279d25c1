"""The CUDA kernels of stdp_plugins/backends/cuda, run on the CPU through their host build
(the same .cu sources compiled by g++ with cuda/host_shim.h), against the torch path on
real digits.

The launchers are the ones the ``cupy`` backend runs on a GPU (same launch plans, same
arguments); given CPU tensors they run the host build. Every kernel is compared bit for
bit with torch, except the mean kernel's convergence statistic, a float32 mean that the
kernel reduces in its own fixed order instead of torch's (``CONVERGENCE_ATOL``).
"""

from __future__ import annotations

import math
import subprocess
from importlib import resources
from pathlib import Path

import pytest
import torch

from stdp_plugins.backends import (
    dense_first_spike_conv,
    first_spike_times,
    first_spike_training_step_,
    fused_winner_update,
    select_winners,
)
from stdp_plugins.backends._cuda_host import host_build_status, reversed_order
from stdp_plugins.backends._cuda_kernels import KERNELS, ordered_arguments
from stdp_plugins.backends._cupy import launch_fused_update, launch_plan
from stdp_plugins.backends._cupy_ops import (
    launch_first_spike_conv,
    launch_first_spike_times,
    launch_select_winners,
    launch_sequential_update,
)
from stdp_plugins.backends._native import wta_mode_bits
from stdp_plugins.learning import STDPConfig, WTAMode
from cuda_digits import CONVERGENCE_ATOL, WALK_RULES, network_on_digits
from test_stdp_backends import random_case


@pytest.fixture(scope="module")
def digits():
    """The reference network on 6 real digits (see ``cuda_digits.network_on_digits``)."""
    return network_on_digits()


def test_host_build_is_available():
    assert host_build_status() == "available"


@pytest.mark.parametrize("layer", [1, 2])
def test_first_spike_conv_kernel_equals_torch_on_digits(digits, layer):
    net, layers = digits
    d = layers[layer]
    for threshold, inputs in ((d["spec"].threshold, d["input"]), (3.0, d["input"]), (3.0, d["input"] * 0.7)):
        times, potentials = launch_first_spike_conv(inputs, d["weight"], threshold, d["spec"].padding,
                                                    net.config.time_steps)
        expected_times, expected_potentials = dense_first_spike_conv(
            inputs, d["weight"], threshold, d["spec"].padding, net.config.time_steps)
        assert 0.01 < float(torch.isfinite(times).float().mean()) < 1.0  # a real mix of silent and firing
        assert torch.equal(times, expected_times) and torch.equal(potentials, expected_potentials)
    times, none = launch_first_spike_conv(d["input"], d["weight"], 3.0, d["spec"].padding, 4, potentials=False)
    assert none is None and torch.equal(times, dense_first_spike_conv(d["input"], d["weight"], 3.0,
                                                                      d["spec"].padding, 4)[0])


@pytest.mark.parametrize("pointwise", [False, True])
@pytest.mark.parametrize("mode, radius, k", WALK_RULES, ids=lambda v: getattr(v, "name", str(v)))
def test_winner_walk_equals_torch_on_digits(digits, mode, radius, k, pointwise):
    _, layers = digits
    d = layers[1]
    for potentials in (d["potentials"], None):
        mask = launch_select_winners(d["times"], potentials, wta_mode_bits(mode), radius, k, pointwise)
        expected = select_winners(d["times"], potentials, mode, radius, k, pointwise=pointwise, backend="torch")
        assert expected.any() and torch.equal(mask, expected)


def test_winner_walk_without_cap_and_on_layer_2(digits):
    _, layers = digits
    d = layers[1]
    two = slice(0, 2)  # every survivor wins: hundreds of steps per image
    mask = launch_select_winners(d["times"][two], d["potentials"][two], wta_mode_bits(WTAMode.LOCAL), 0, None, True)
    assert torch.equal(mask, select_winners(d["times"][two], d["potentials"][two], WTAMode.LOCAL, 0, pointwise=True,
                                            backend="torch"))
    d = layers[2]
    for mode in WTAMode:
        mask = launch_select_winners(d["times"], d["potentials"], wta_mode_bits(mode), 1, 8, True)
        assert torch.equal(mask, select_winners(d["times"], d["potentials"], mode, 1, 8, pointwise=True,
                                                backend="torch"))


def test_winner_walk_hand_computed_ties():
    times = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]], [[math.inf, 0.0]]]])  # [1, 3, 1, 2]
    potentials = torch.tensor([[[[0.0, 1.0]], [[5.0, 1.0]], [[0.0, 2.0]]]])
    mask = launch_select_winners(times, potentials, wta_mode_bits(WTAMode.LOCAL), 0, None, False)
    assert mask.view(3, 2).tolist() == [[False, False], [True, False], [False, True]]
    mask = launch_select_winners(times, None, wta_mode_bits(WTAMode.GLOBAL), 0, None, False)
    assert mask.view(3, 2).tolist() == [[False, True], [True, False], [False, True]]  # ties: lowest flat index


@pytest.mark.parametrize("layer", [1, 2])
def test_sequential_kernel_equals_torch_on_digits(digits, layer):
    net, layers = digits
    d = layers[layer]
    lr_plus, lr_minus = d["rates"]
    weights, expected = d["weight"].clone(), d["weight"].clone()
    convergence = launch_sequential_update(weights, d["input"], d["times"], d["winners"], net.config.stdp, lr_plus,
                                           lr_minus, 1, d["spec"].padding)
    expected_convergence = fused_winner_update(expected, d["input"], d["times"], d["winners"], net.config.stdp,
                                               lr_plus, lr_minus, 1, d["spec"].padding, "torch",
                                               reduction="sequential")
    assert not torch.equal(weights, d["weight"])
    assert torch.equal(weights, expected) and torch.equal(convergence, expected_convergence)


@pytest.mark.parametrize("layer", [1, 2])
def test_mean_kernel_equals_torch_on_digits(digits, layer):
    net, layers = digits
    d = layers[layer]
    lr_plus, lr_minus = d["rates"]
    weights, expected = d["weight"].clone(), d["weight"].clone()
    convergence = launch_fused_update(weights, d["input"], d["times"], d["winners"], net.config.stdp, lr_plus,
                                      lr_minus, 1, d["spec"].padding)
    expected_convergence = fused_winner_update(expected, d["input"], d["times"], d["winners"], net.config.stdp,
                                               lr_plus, lr_minus, 1, d["spec"].padding, "torch", reduction="mean")
    assert not torch.equal(weights, d["weight"])
    assert torch.equal(weights, expected)
    torch.testing.assert_close(convergence, expected_convergence, atol=CONVERGENCE_ATOL, rtol=0)


@pytest.mark.parametrize("seed", range(14))
def test_stdp_kernels_equal_torch_on_edge_cases(seed):
    # strides, padding, masks (none, empty, sparse with infinite post times), additive and
    # shifted bounds, out-of-bound initial weights, tensor learning rates
    for reduction, kernel in (("mean", launch_fused_update), ("sequential", launch_sequential_update)):
        case, reference = random_case(seed), random_case(seed)
        convergence = kernel(case.weights, case.pre, case.post, case.mask, case.config, case.lr_plus, case.lr_minus,
                             case.stride, case.padding)
        expected = fused_winner_update(reference.weights, reference.pre, reference.post, reference.mask,
                                       reference.config, reference.lr_plus, reference.lr_minus, reference.stride,
                                       reference.padding, "torch", reduction=reduction)
        assert torch.equal(case.weights, reference.weights), reduction
        torch.testing.assert_close(convergence, expected, atol=CONVERGENCE_ATOL, rtol=0)


def test_first_spike_times_kernel_equals_torch_on_digits(digits):
    net, layers = digits
    d = layers[1]
    steps = torch.arange(net.config.time_steps, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    window = d["times"][None] <= steps  # [T, N, C, H, W]: a neuron spikes from its first step on
    events = (d["input"][None] == steps).float()
    drive = torch.nn.functional.conv2d(events.flatten(0, 1), d["weight"], padding=d["spec"].padding)
    drive = drive.view(window.shape)
    for spikes in (window, window.float(), window.to(torch.uint8)):
        for cumulative in (False, True):
            times, value = launch_first_spike_times(spikes, drive, cumulative)
            expected_times, expected_value = first_spike_times(spikes, drive, cumulative=cumulative, backend="torch")
            assert torch.equal(times, expected_times) and torch.equal(value, expected_value)
    times, none = launch_first_spike_times(window, None, False)
    assert none is None and torch.equal(times, d["times"])
    empty, value = launch_first_spike_times(torch.zeros(0, 3), torch.zeros(0, 3), True)
    assert empty.tolist() == [math.inf] * 3 and value.tolist() == [0.0] * 3


def test_whole_training_step_through_the_kernels_equals_torch(digits):
    # the GPU path of a training step: conv kernel, winner walk, sequential kernel
    net, layers = digits
    d = layers[1]
    spec, lr_plus, lr_minus = d["spec"], *d["rates"]
    weights, expected = d["weight"].clone(), d["weight"].clone()
    times, potentials = launch_first_spike_conv(d["input"], weights, spec.threshold, spec.padding,
                                                net.config.time_steps)
    winners = launch_select_winners(times, potentials, wta_mode_bits(WTAMode.BOTH), spec.radius, spec.k_winners,
                                    True)
    launch_sequential_update(weights, d["input"], times, winners, net.config.stdp, lr_plus, lr_minus, 1,
                             spec.padding)
    first_spike_training_step_(expected, d["input"], spec.threshold, spec.padding, net.config.time_steps,
                               WTAMode.BOTH, spec.radius, spec.k_winners, net.config.stdp, lr_plus, lr_minus,
                               "sequential", "torch")
    assert torch.equal(weights, expected)


def test_mean_launch_plan_and_argument_names():
    config = STDPConfig.from_paper("kheradpisheh2018")
    grid, scalars = launch_plan((32, 2, 5, 5), (64, 2, 28, 28), (64, 32, 28, 28), config, 0.004, 0.003, 1, 2, True)
    assert grid == (32, 49)  # 64 * 28 * 28 positions per channel, 1024 per block
    assert scalars["rate_sum"] == 0.004 + 0.003 and scalars["lr_minus"] == 0.003
    assert (scalars["batch"], scalars["kernel_size"], scalars["padding"], scalars["multiplicative"]) == (64, 5, 2, True)
    grid, scalars = launch_plan((3, 1, 2, 2), (10**6, 1, 65, 65), (10**6, 3, 64, 64), config, None, None, 1, 0, False)
    assert grid == (3, 65535) and scalars["use_learning_rates"] and not scalars["use_mask"]
    pointers = {name: None for name, kind in KERNELS["fused_stdp_update"].parameters if kind == "pointer"}
    assert [kind for kind, _ in ordered_arguments(KERNELS["fused_stdp_update"], {**pointers, **scalars})] == [
        kind for _, kind in KERNELS["fused_stdp_update"].parameters]
    with pytest.raises(ValueError, match=r"missing \['batch'\], unknown \['batches'\]"):
        ordered_arguments(KERNELS["fused_stdp_update"], {**pointers, **{k: v for k, v in scalars.items()
                                                                      if k != "batch"}, "batches": 1})


SHIM_PROBE = r'''
#include "host_shim.h"
#include <cstdio>

// Warp ballot and shuffles, a block barrier after an early return of some threads, atomics.
extern "C" __global__ void probe(int* out, int* total) {
    const int lane = threadIdx.x & 31;
    __shared__ int staged[64];
    const unsigned int ballot = __ballot_sync(0xffffffffu, lane % 3 == 0);
    const int from_five = __shfl_sync(0xffffffffu, (int)threadIdx.x * 10, 5);
    const float down = __shfl_down_sync(0xffffffffu, (float)threadIdx.x, 4);
    staged[threadIdx.x] = (int)threadIdx.x;
    atomicAdd(total, 1);
    if (threadIdx.x >= 48) return;
    __syncthreads();
    out[threadIdx.x * 4 + 0] = (int)ballot;
    out[threadIdx.x * 4 + 1] = from_five;
    out[threadIdx.x * 4 + 2] = (int)down;
    out[threadIdx.x * 4 + 3] = staged[47 - threadIdx.x] + (int)blockIdx.x * 1000;
}

// Half of a warp at a block barrier, the other half at a ballot: can never complete.
extern "C" __global__ void deadlock(int* out) {
    if ((threadIdx.x & 31) < 16) __syncthreads();
    else out[0] = (int)__ballot_sync(0xffffffffu, 1);
}

HOST_LAUNCHER(probe, true)
HOST_LAUNCHER(deadlock, true)

int main() {
    int out[48 * 4] = {0}, total = 0, ignored = 0;
    int* out_pointer = out;
    int* total_pointer = &total;
    int* ignored_pointer = &ignored;
    void* probe_parameters[] = {&out_pointer, &total_pointer};
    void* deadlock_parameters[] = {&ignored_pointer};
    const unsigned int dims[6] = {2, 1, 1, 64, 1, 1};
    const int status = host_probe(dims, probe_parameters);
    const int stuck = host_deadlock(dims, deadlock_parameters);
    std::printf("%d %d %d\n", status, stuck, total);
    for (int t = 0; t < 48; ++t) std::printf("%d %d %d %d\n", out[t * 4], out[t * 4 + 1], out[t * 4 + 2], out[t * 4 + 3]);
    return 0;
}
'''


def test_shim_emulates_warp_collectives_barriers_and_atomics(tmp_path):
    source = tmp_path / "probe.cpp"
    source.write_text(SHIM_PROBE)
    binary = tmp_path / "probe"
    shim_folder = Path(str(resources.files("stdp_plugins.backends"))) / "cuda"
    subprocess.run(["g++", "-std=c++17", "-O2", f"-I{shim_folder}", str(source), "-o", str(binary)], check=True)
    lines = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout.splitlines()
    assert lines[0].split() == ["0", "-1", "128"]  # probe ran; the deadlock was detected; 2 x 64 atomics
    rows = [list(map(int, line.split())) for line in lines[1:]]
    for t, (ballot, from_five, down, staged) in enumerate(rows):
        warp = t // 32
        assert ballot == sum(1 << lane for lane in range(32) if lane % 3 == 0)
        assert from_five == (32 * warp + 5) * 10
        assert down == (t + 4 if t % 32 < 28 else t)  # past the warp's end: the own value
        assert staged == 47 - t + 1000  # block 1 ran last; every thread's write was visible


def test_results_do_not_depend_on_the_order_of_blocks_and_threads(digits):
    # the GPU runs blocks and threads in any order: reversed, every kernel gives the same
    net, layers = digits
    d = layers[1]
    spec, (lr_plus, lr_minus) = d["spec"], d["rates"]

    def run_all():
        times, potentials = launch_first_spike_conv(d["input"], d["weight"], spec.threshold, spec.padding,
                                                    net.config.time_steps)
        winners = launch_select_winners(times, potentials, wta_mode_bits(WTAMode.BOTH), spec.radius,
                                        spec.k_winners, True)
        window = times[None] <= torch.arange(net.config.time_steps, dtype=torch.float32).view(-1, 1, 1, 1, 1)
        first, _ = launch_first_spike_times(window, None, False)
        mean, sequential = d["weight"].clone(), d["weight"].clone()
        convergence = launch_fused_update(mean, d["input"], times, winners, net.config.stdp, lr_plus, lr_minus, 1,
                                          spec.padding)
        launch_sequential_update(sequential, d["input"], times, winners, net.config.stdp, lr_plus, lr_minus, 1,
                                 spec.padding)
        return times, potentials, winners, first, mean, sequential, convergence

    in_order = run_all()
    with reversed_order():
        reverse = run_all()
    assert all(torch.equal(a, b) for a, b in zip(in_order, reverse))
    assert torch.equal(in_order[2], d["winners"])
