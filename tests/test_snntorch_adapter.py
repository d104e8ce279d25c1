"""snnTorch adapter against the real snnTorch 1.x (no mocks)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import snntorch as snn
import torch
from snntorch import utils
from torch import nn

from stdp_plugins.learning import (
    AdaptiveThreshold,
    STDPConfig,
    WTAConfig,
    WTAMode,
    get_first_spike_times,
    select_winners,
)
from stdp_plugins.snntorch import AdaptiveThresholdBinding, STDPLearner, WTALayer, make_learner
from stdp_reference import expected_delta

ROOT = Path(__file__).resolve().parents[1]
T, N = 6, 3


@pytest.fixture
def one_thread():
    """Run heavy loops on one thread (much faster on a shared CPU)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _synapse(kind: str) -> nn.Module:
    if kind == "conv":
        return nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
    return nn.Linear(10, 5, bias=False)


def _input(kind: str, generator: torch.Generator) -> torch.Tensor:
    shape = (T, N, 2, 7, 7) if kind == "conv" else (T, N, 10)
    return (torch.rand(shape, generator=generator) > 0.6).float()


def _wta(kind: str) -> WTAConfig:
    if kind == "conv":
        return WTAConfig(mode=WTAMode.BOTH, local_radius=1, k_winners=3)
    return WTAConfig(mode=WTAMode.GLOBAL, k_winners=2)


def _maps(x: torch.Tensor) -> torch.Tensor:
    return x if x.dim() == 4 else x[:, :, None, None]


def _run(synapse: nn.Module, lif: snn.Leaky, x: torch.Tensor, init_hidden: bool):
    """The tutorials' loop over time steps; output spikes and membranes [T, N, ...]."""
    spikes, membranes = [], []
    with torch.no_grad():
        if init_hidden:
            utils.reset(nn.Sequential(synapse, lif))
        else:
            mem = lif.reset_mem()
        for x_t in x:
            if init_hidden:
                spk = lif(synapse(x_t))
                mem = lif.mem
            else:
                spk, mem = lif(synapse(x_t), mem)
            spikes.append(spk)
            membranes.append(mem.clone())
    return torch.stack(spikes), torch.stack(membranes)


@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("init_hidden", [False, True])
def test_update_equals_core_on_the_same_spikes(kind, init_hidden):
    gen = torch.Generator().manual_seed(7)
    synapse = _synapse(kind)
    lif = snn.Leaky(beta=0.9, threshold=1.0, init_hidden=init_hidden)
    config = STDPConfig(lr_plus=0.05, lr_minus=0.03)
    learner = STDPLearner(synapse, lif, config=config, wta=_wta(kind))
    learner.initialize_weights(gen)
    x = _input(kind, gen)
    post, mem = _run(synapse, lif, x, init_hidden)
    post_times = get_first_spike_times(post)
    step = post_times.nan_to_num(posinf=0).long().clamp(max=T - 1)
    tie = mem.gather(0, step[None])[0]  # snn.Leaky returns the membrane before its reset
    wta = _wta(kind)
    mask = select_winners(_maps(post_times), _maps(tie), wta.mode, wta.local_radius, wta.k_winners)
    assert 0 < mask.sum() < torch.isfinite(post_times).sum()
    weight = synapse.weight.detach()
    stride, padding = (2, 1) if kind == "conv" else (1, 0)
    expected = expected_delta(weight, _maps(get_first_spike_times(x)), _maps(post_times), mask, config,
                              stride, padding)
    delta = learner.step(on_grad=False)
    assert torch.equal(learner.winner_mask, mask)
    torch.testing.assert_close(delta, expected, rtol=0, atol=0)


def test_on_grad_matches_delta_and_sgd_applies_it():
    gen = torch.Generator().manual_seed(3)
    synapse, lif = _synapse("linear"), snn.Leaky(beta=0.9)
    learner = STDPLearner(synapse, lif, wta=_wta("linear"))
    learner.initialize_weights(gen)
    x = _input("linear", gen)
    _run(synapse, lif, x, False)
    delta = learner.step(on_grad=False, scale=2.0)
    _run(synapse, lif, x, False)
    before = synapse.weight.detach().clone()
    learner.step(on_grad=True, scale=2.0)
    torch.testing.assert_close(synapse.weight.grad, -delta, rtol=0, atol=0)
    torch.optim.SGD([synapse.weight], lr=1.0, momentum=0.0).step()
    learner.clamp_weights()
    torch.testing.assert_close(synapse.weight.detach(), (before + delta).clamp(0.0, 1.0))


def test_sequential_with_wta_layer_and_output_tuple():
    gen = torch.Generator().manual_seed(5)
    wta = _wta("conv")
    net = nn.Sequential(_synapse("conv"), snn.Leaky(beta=0.9, init_hidden=True, output=True), WTALayer(wta))
    learner = STDPLearner(net[0], net[2], wta=wta)
    learner.initialize_weights(gen)
    x = _input("conv", gen)
    utils.reset(net)
    net[2].reset()
    with torch.no_grad():
        out = torch.stack([net(x_t)[0] for x_t in x])
    mask = net[2].winner_mask
    assert torch.equal(get_first_spike_times(out) < float("inf"), mask)
    expected = expected_delta(net[0].weight, get_first_spike_times(x), get_first_spike_times(out), mask,
                              learner.config, stride=2, padding=1)
    torch.testing.assert_close(learner.step(on_grad=False), expected, rtol=0, atol=0)


def test_wta_layer_breaks_ties_by_membrane_and_keeps_winners_spikes():
    layer = WTALayer(WTAConfig(mode=WTAMode.LOCAL, local_radius=0))
    spk = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    mem = torch.tensor([[1.2, 1.5, 1.1, 0.3]])
    assert torch.equal(layer(spk, mem), torch.tensor([[0.0, 1.0, 0.0, 0.0]]))
    # later steps: the winner keeps firing, the earlier losers and a newcomer stay silent
    out, mem_out = layer((torch.tensor([[1.0, 1.0, 0.0, 1.0]]), mem))
    assert torch.equal(out, torch.tensor([[0.0, 1.0, 0.0, 0.0]])) and mem_out is mem
    layer.reset()
    assert torch.equal(layer(torch.tensor([[0.0, 0.0, 1.0, 1.0]])), torch.tensor([[0.0, 0.0, 1.0, 0.0]]))


def test_binding_drives_leaky_threshold_per_neuron():
    gen = torch.Generator().manual_seed(6)
    adaptive = AdaptiveThreshold(3, (4, 4), initial_threshold=2.0, learning_rate=0.5, target_rate=0.2)
    with torch.no_grad():
        adaptive.thresholds.copy_(torch.rand(3, 4, 4, generator=gen) * 2 + 1)
    lif = snn.Leaky(beta=0.8)
    original = lif.threshold
    binding = AdaptiveThresholdBinding(lif, adaptive)
    x = torch.rand(8, 2, 3, 4, 4, generator=gen) * 1.5
    theta = adaptive.thresholds.clone()
    mem = lif.reset_mem()
    spikes = []
    for x_t in x:
        spk, mem = lif(x_t, mem)
        spikes.append(spk)
    spikes = torch.stack(spikes)
    # snnTorch's Leaky: reset from the previous step's membrane, subtract the threshold
    ref_mem, ref_spikes = torch.zeros_like(x[0]), []
    for x_t in x:
        reset = (ref_mem > theta).float()
        ref_mem = 0.8 * ref_mem + x_t - reset * theta
        ref_spikes.append((ref_mem > theta).float())
    assert torch.equal(spikes, torch.stack(ref_spikes))
    assert 0 < spikes.sum() < spikes.numel()
    reference = AdaptiveThreshold(3, (4, 4), initial_threshold=2.0, learning_rate=0.5, target_rate=0.2)
    with torch.no_grad():
        reference.thresholds.copy_(theta)
    reference.update(spikes)
    assert binding.update_threshold()
    torch.testing.assert_close(adaptive.thresholds, reference.thresholds)
    assert not binding.update_threshold()  # the window was consumed
    binding.close()
    assert lif.threshold is original
    assert not lif._forward_hooks and not lif._forward_pre_hooks


def test_binding_rejects_learnable_threshold():
    with pytest.raises(ValueError, match="buffer"):
        AdaptiveThresholdBinding(snn.Leaky(beta=0.9, learn_threshold=True), AdaptiveThreshold(4, ()))
    with pytest.raises(TypeError, match="SpikingNeuron"):
        AdaptiveThresholdBinding(nn.ReLU(), AdaptiveThreshold(4, ()))


def test_close_leaves_no_hooks_and_step_mode_is_single():
    synapse, lif = _synapse("conv"), snn.Leaky(beta=0.9)
    before = [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in (synapse, lif)]
    learner = make_learner(synapse, lif)
    assert synapse._forward_hooks and lif._forward_hooks
    learner.close()
    assert [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in (synapse, lif)] == before
    with pytest.raises(ValueError, match="step_mode"):
        make_learner(synapse, lif, step_mode="m")
    with pytest.raises(NotImplementedError, match="dilated"):
        STDPLearner(nn.Conv2d(2, 4, 3, dilation=2), lif, name="conv9")


def _load_example():
    spec = importlib.util.spec_from_file_location("snntorch_stdp", ROOT / "examples" / "snntorch_stdp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convergence_falls_over_a_few_hundred_digits(one_thread):
    history = _load_example().train(150)
    assert len(history) == 31
    assert history[-1] < history[0] - 0.02
    assert history[-1] < min(history[:15])


def test_example_runs_on_a_small_slice():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "snntorch_stdp.py"), "--images", "40"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(0, 45, 5))
    assert float(rows[-1][1]) < float(rows[0][1])  # risen as the weights leave 0.8, then fallen below
