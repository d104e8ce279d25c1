"""The dispatchers of stdp_plugins.backends: every implementation of first-spike times and of
winner selection equals the torch reference on real digits, backend= reaches each one, and
a machine without the native library is told once and gets the torch path."""

import math
import os
import shutil
import subprocess
import sys

import pytest
import torch

from stdp_plugins.backends import (
    BACKENDS,
    IMPLEMENTATIONS,
    available_backends,
    cupy_available,
    first_spike_conv,
    first_spike_times,
    native_available,
    resolve_backend,
    select_winners,
)
from stdp_plugins.datasets import embedded_mnist
from stdp_plugins.learning import WTAMode
from stdp_plugins.models import KheradpishehNet

INF = math.inf
CPU = torch.device("cpu")
needs_native = pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler for the native library")


def cpu_backends(operation):
    """The installed implementations of ``operation`` that run CPU tensors."""
    return tuple(backend for backend in available_backends(operation) if backend != "cupy")


def test_native_library_builds_where_a_compiler_exists():
    if shutil.which("cc") is not None:
        assert native_available()
        assert available_backends("select_winners")[:2] == ("torch", "native")
    assert ("cupy" in available_backends("select_winners")) == cupy_available()


@pytest.fixture(scope="module")
def layer1():
    """Layer 1 of the reference network on 16 real digits: input spike events [T, N, 2, H, W],
    output spikes [T, N, 32, H, W] (a neuron fires from its first step on) and the drive."""
    images, _ = embedded_mnist()
    net = KheradpishehNet(seed=0)
    in_times = net.encode(images[:16])
    out_times, potentials = first_spike_conv(in_times, net.conv1.weight, 10.0, 2, 15, backend="torch")
    steps = torch.arange(15, dtype=torch.float32).view(-1, 1, 1, 1, 1)
    events = (in_times[None] == steps).float()
    drive = torch.nn.functional.conv2d(events.flatten(0, 1), net.conv1.weight, padding=2).view(15, 16, 32, 28, 28)
    return events, out_times <= steps, drive, out_times, potentials


@needs_native
@pytest.mark.parametrize("cumulative", [False, True])
def test_first_spike_times_native_equals_torch_on_digits(layer1, cumulative):
    events, out_spikes, drive, out_times, _ = layer1
    for spikes in (events, out_spikes):
        expected, _ = first_spike_times(spikes, backend="torch")
        got, none = first_spike_times(spikes, backend="native")
        assert none is None and torch.equal(got, expected)
    assert torch.equal(first_spike_times(out_spikes, backend="native")[0], out_times)
    times, value = first_spike_times(out_spikes, drive, cumulative=cumulative, backend="torch")
    native_times, native_value = first_spike_times(out_spikes, drive, cumulative=cumulative, backend="native")
    assert torch.equal(native_times, times) and torch.equal(native_value, value)  # bit for bit, cumsum included
    fired = torch.isfinite(times)
    assert bool((value[~fired] == 0).all()) and float(value[fired].abs().min()) >= 0


def test_first_spike_times_hand_computed():
    spikes = torch.tensor([[0, 1, 0], [1, 1, 0], [1, 0, 0]], dtype=torch.bool)  # [T=3, 3 neurons]
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0], [7.0, 8.0, 9.0]])
    for backend in cpu_backends("first_spike_times"):
        times, at = first_spike_times(spikes, values, backend=backend)
        assert times.tolist() == [1.0, 0.0, INF] and at.tolist() == [4.0, 2.0, 0.0]
        _, summed = first_spike_times(spikes, values, cumulative=True, backend=backend)
        assert summed.tolist() == [5.0, 2.0, 0.0]
        empty, _ = first_spike_times(torch.zeros(0, 2), backend=backend)
        assert empty.tolist() == [INF, INF]


@needs_native
@pytest.mark.parametrize("mode", list(WTAMode))
@pytest.mark.parametrize("radius, k", [(0, None), (2, 5), (1, 8), (1, None)])
@pytest.mark.parametrize("pointwise", [False, True])
def test_select_winners_native_equals_torch_on_digits(layer1, mode, radius, k, pointwise):
    _, _, _, times, potentials = layer1
    expected = select_winners(times, potentials, mode, radius, k, pointwise=pointwise, backend="torch")
    got = select_winners(times, potentials, mode, radius, k, pointwise=pointwise, backend="native")
    assert torch.equal(got, expected) and expected.any()
    if k is not None:
        assert int(expected.sum(dim=(1, 2, 3)).max()) <= k
    assert torch.equal(select_winners(times, None, mode, radius, k, pointwise=pointwise, backend="native"),
                       select_winners(times, None, mode, radius, k, pointwise=pointwise, backend="torch"))


def test_select_winners_pointwise_hand_computed():
    # one position, three channels: channel 1 fires first; channel 0 and 2 tie later
    times = torch.tensor([2.0, 1.0, 2.0]).view(1, 3, 1, 1)
    for backend in cpu_backends("select_winners"):
        mask = select_winners(times, None, WTAMode.GLOBAL, 0, None, pointwise=True, backend=backend)
        assert mask.view(-1).tolist() == [False, True, False]
        mask = select_winners(times, None, WTAMode.GLOBAL, 0, None, backend=backend)
        assert mask.view(-1).tolist() == [True, True, True]  # global: one winner per map


def test_every_operation_lists_torch_and_auto_resolves_on_cpu():
    assert BACKENDS == ("auto", "torch", "native", "cupy")
    for operation, implementations in IMPLEMENTATIONS.items():
        assert implementations[0] == "torch"
        chosen = resolve_backend(operation, "auto", CPU)
        assert chosen == ("native" if native_available() else "torch")
        assert resolve_backend(operation, "torch", CPU) == "torch"
        with pytest.raises(ValueError, match=r"backend='cupy' runs on cuda tensors|does not implement"):
            resolve_backend(operation, "cupy", CPU)
    with pytest.raises(ValueError, match="operation must be one of"):
        available_backends("pool")


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: first_spike_times(torch.zeros(3, 2), torch.zeros(3, 3)), "values must have the shape of spikes"),
        (lambda: first_spike_times(torch.zeros(3, 2), torch.zeros(3, 2, dtype=torch.int64)), "values must be a floating"),
        (lambda: first_spike_times(torch.tensor(1.0)), "spikes must have a time dimension"),
        (lambda: first_spike_times(torch.zeros(3, 2), cumulative=1), "cumulative must be a bool"),
        (lambda: first_spike_times(torch.zeros(3, 2), backend="gpu"), "backend must be one of"),
        (lambda: select_winners(torch.zeros(1, 2, 3, 3), pointwise="yes"), "pointwise must be a bool"),
        (lambda: select_winners(torch.zeros(1, 2, 3, 3), k_winners=0), "k_winners"),
        (lambda: select_winners(torch.zeros(2, 3, 3)), "spike_times"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises((TypeError, ValueError), match=message):
        call()


SCRIPT = """
import warnings, torch
from stdp_plugins.backends import first_spike_times, native_status, select_winners
warnings.simplefilter("always")
with warnings.catch_warnings(record=True) as caught:
    times, _ = first_spike_times(torch.ones(2, 3))
    select_winners(times.view(1, 3, 1, 1))
print(len(caught), "torch reference" in (str(caught[0].message) if caught else ""), "|", native_status())
try:
    first_spike_times(torch.ones(2, 3), backend="native")
except RuntimeError as error:
    print("RuntimeError:", error)
"""


def test_without_a_compiler_auto_warns_once_and_native_says_why(tmp_path):
    """A machine without a C compiler (an empty PATH and cache) gets the torch path, one
    warning naming the reason and the cost, and a clear error when it asks for 'native'."""
    env = {k: v for k, v in os.environ.items() if k not in ("CC", "STDP_PLUGINS_NO_NATIVE")}
    env.update(PATH=str(tmp_path), STDP_PLUGINS_CACHE=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "1 True | no C compiler was found (set CC, or install gcc or clang)"
    assert lines[1].startswith("RuntimeError: backend='native' is unavailable: the native CPU library is "
                               "unavailable: no C compiler was found")


def test_no_native_variable_chooses_torch_silently():
    env = {**os.environ, "STDP_PLUGINS_NO_NATIVE": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, env=env, check=True)
    lines = out.stdout.splitlines()
    assert lines[0] == "0 False | disabled by STDP_PLUGINS_NO_NATIVE"
    assert "STDP_PLUGINS_NO_NATIVE" in lines[1]


@needs_native
@pytest.mark.parametrize("with_state", [False, True])
def test_fire_once_and_first_spike_only_native_equal_torch_on_digits(layer1, with_state):
    """The paper's neuron over layer 1's real input currents (the drive of 16 digits), and
    first-spike pooling of its spikes: native equals torch bit for bit, state included."""
    from stdp_plugins.backends import fire_once, first_spike_only

    _, _, drive, _, _ = layer1
    g = torch.Generator().manual_seed(1)
    v = torch.rand(drive.shape[1:], generator=g) * 5 if with_state else None
    fired = torch.rand(drive.shape[1:], generator=g) < 0.2 if with_state else None
    expected = fire_once(drive, 10.0, v, fired, return_v_seq=True, backend="torch")
    got = fire_once(drive, 10.0, v, fired, return_v_seq=True, backend="native")
    assert all(torch.equal(a, b) for a, b in zip(got, expected))
    assert 0 < float(expected[0].sum()) and int(expected[0].sum(dim=0).max()) == 1
    assert torch.equal(fire_once(drive, torch.tensor(10.0), v, fired, backend="native")[0], expected[0])
    pooled = torch.nn.functional.max_pool2d(expected[0].flatten(0, 1), 2, 2, 1).unflatten(0, drive.shape[:2])
    first = first_spike_only(pooled, backend="torch")
    assert all(torch.equal(a, b) for a, b in zip(first_spike_only(pooled, backend="native"), first))
    assert int(first[0].sum(dim=0).max()) == 1 and float(first[0].sum()) < float(pooled.sum())
    with pytest.raises(ValueError, match=r"backend='native' cannot run fire_once here: it needs float32"):
        fire_once(drive.double(), 10.0, backend="native")
