"""SpikingJelly adapter against the real SpikingJelly 2.x (no mocks)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

from stdp_plugins.learning import (
    AdaptiveThreshold,
    STDPConfig,
    STDPVariant,
    WTAConfig,
    WTAMode,
    get_first_spike_times,
    select_winners,
)
from stdp_plugins.spikingjelly import AdaptiveThresholdNode, STDPLearner, WTALayer
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
        return layer.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
    return layer.Linear(10, 5, bias=False)


def _input(kind: str, generator: torch.Generator) -> torch.Tensor:
    shape = (T, N, 2, 7, 7) if kind == "conv" else (T, N, 10)
    return (torch.rand(shape, generator=generator) > 0.6).float()


def _wta(kind: str) -> WTAConfig:
    if kind == "conv":
        return WTAConfig(mode=WTAMode.BOTH, local_radius=1, k_winners=3)
    return WTAConfig(mode=WTAMode.GLOBAL, k_winners=2)


def _net(step_mode: str, *modules: nn.Module) -> nn.Sequential:
    net = nn.Sequential(*modules)
    functional.set_step_mode(net, step_mode)
    return net


def _maps(x: torch.Tensor) -> torch.Tensor:
    return x if x.dim() == 4 else x[:, :, None, None]


def _run(net: nn.Module, x: torch.Tensor, step_mode: str) -> torch.Tensor:
    """Forward a [T, N, ...] window in the given step mode; output spikes [T, N, ...]."""
    with torch.no_grad():
        if step_mode == "m":
            return net(x)
        return torch.stack([net(x_t) for x_t in x])


def _expected_delta(synapse, x, post, config, wta, stride=1, padding=0, reduction="sequential"):
    """Core update on the given spikes; ties by the integrated drive (IF membrane)."""
    weight = synapse.weight.detach()
    drive = F.conv2d(x.flatten(0, 1), weight, stride=stride, padding=padding) if weight.dim() == 4 \
        else x.flatten(0, 1) @ weight.T
    drive = drive.view(*post.shape).cumsum(0)
    post_times = get_first_spike_times(post)
    step = post_times.nan_to_num(posinf=0).long().clamp(max=post.shape[0] - 1)
    tie = drive.gather(0, step[None])[0]
    mask = select_winners(_maps(post_times), _maps(tie), wta.mode, wta.local_radius, wta.k_winners,
                          pointwise=wta.pointwise_inhibition)
    delta = expected_delta(weight, _maps(get_first_spike_times(x)), _maps(post_times), mask, config, stride,
                           padding, reduction)
    return delta, mask


@pytest.mark.parametrize("reduction", ["sequential", "mean"])
@pytest.mark.parametrize("kind", ["conv", "linear"])
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("node", [neuron.IFNode, neuron.LIFNode])
def test_update_equals_core_on_the_same_spikes(kind, step_mode, node, reduction):
    """Through the adapter (native backend on the CPU) the update equals the torch core's,
    for both reductions: the sequential one is the core's sequential_stdp_update_."""
    gen = torch.Generator().manual_seed(7)
    net = _net(step_mode, _synapse(kind), node(v_threshold=1.0))
    config = STDPConfig(lr_plus=0.05, lr_minus=0.03)
    learner = STDPLearner(step_mode, net[0], net[1], config=config, wta=_wta(kind), reduction=reduction)
    learner.initialize_weights(gen)
    x = _input(kind, gen)
    post = _run(net, x, step_mode)
    assert post.sum() > 0
    geometry = (2, 1) if kind == "conv" else (1, 0)
    expected, mask = _expected_delta(net[0], x, post, config, _wta(kind), *geometry, reduction=reduction)
    delta = learner.step(on_grad=False)
    assert torch.equal(learner.winner_mask, mask)
    assert mask.sum() > 0
    torch.testing.assert_close(delta, expected, rtol=0, atol=0)
    assert learner.step(on_grad=False) is None  # the records were consumed


def test_hand_computed_linear_case():
    net = nn.Sequential(nn.Linear(2, 1, bias=False), neuron.IFNode(v_threshold=0.9, step_mode="m"))
    with torch.no_grad():
        net[0].weight.fill_(0.5)
    learner = STDPLearner("m", net[0], net[1])
    # input 0 fires at t = 0, 1, 2, input 1 at t = 3; the IF neuron reaches 1.0 >= 0.9 at t = 1
    x = torch.tensor([[1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])[:, None, :]
    net(x)
    delta = learner.step(on_grad=False)
    # potentiation 0.004 * 0.5 * 0.5, depression -0.003 * 0.5 * 0.5
    torch.testing.assert_close(delta, torch.tensor([[0.001, -0.00075]]))


def test_on_grad_feeds_sgd_and_clamp_hook_keeps_bounds():
    gen = torch.Generator().manual_seed(1)
    net = _net("m", _synapse("conv"), neuron.IFNode(v_threshold=0.5))
    config = STDPConfig(lr_plus=0.6, lr_minus=0.6, variant=STDPVariant.ADDITIVE)
    learner = STDPLearner("m", net[0], net[1], config=config, wta=_wta("conv"))
    learner.initialize_weights(gen)
    x = _input("conv", gen)
    net(x)
    before = net[0].weight.detach().clone()
    half = learner.step(on_grad=False, scale=0.5)  # scale multiplies both rates
    net(x)
    full = learner.step(on_grad=False)
    assert not torch.equal(half, full)
    net(x)
    learner.step(on_grad=True, scale=0.5)
    torch.testing.assert_close(net[0].weight.grad, -half, rtol=0, atol=0)
    net(x)
    learner.step()  # accumulates onto the existing gradient
    torch.testing.assert_close(net[0].weight.grad, -half - full)
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.0)
    learner.clamp_on_step(optimizer)
    optimizer.step()
    torch.testing.assert_close(net[0].weight.detach(), (before + half + full).clamp(0.0, 1.0))
    assert (before + half + full).max() > 1.0  # the clamp really acted
    learner.close()
    assert not optimizer._optimizer_step_post_hooks


def test_weights_move_and_stay_in_bounds():
    gen = torch.Generator().manual_seed(3)
    net = _net("m", _synapse("conv"), neuron.IFNode(v_threshold=0.8))
    config = STDPConfig(lr_plus=0.3, lr_minus=0.2, variant=STDPVariant.ADDITIVE)
    learner = STDPLearner("m", net[0], net[1], config=config, wta=_wta("conv"))
    learner.initialize_weights(gen)
    start = net[0].weight.detach().clone()
    for _ in range(10):
        net(_input("conv", gen))
        learner.apply()
        functional.reset_net(net)
    weight = net[0].weight.detach()
    assert (weight - start).abs().max() > 0.2
    assert weight.min() >= 0.0 and weight.max() <= 1.0
    assert learner.update_count == 10
    assert learner.convergence_history[-1] == pytest.approx(learner.convergence())


def test_reset_net_starts_a_new_window():
    gen = torch.Generator().manual_seed(5)
    net = nn.Sequential(_synapse("conv"), neuron.IFNode(v_threshold=1.0))
    learner = STDPLearner("s", net[0], net[1], wta=_wta("conv"))
    learner.initialize_weights(gen)
    first, second = _input("conv", gen), _input("conv", gen)
    _run(net, first, "s")  # never stepped: dropped when reset_net starts the next window
    functional.reset_net(net)
    post = _run(net, second, "s")
    expected, _ = _expected_delta(net[0], second, post, learner.config, _wta("conv"), 2, 1)
    torch.testing.assert_close(learner.step(on_grad=False), expected, rtol=0, atol=0)


def test_seq_to_ann_container_synapse():
    gen = torch.Generator().manual_seed(11)
    conv = nn.Conv2d(2, 4, 3, stride=2, padding=1, bias=False)
    net = nn.Sequential(layer.SeqToANNContainer(conv), neuron.IFNode(v_threshold=1.0, step_mode="m"))
    learner = STDPLearner("m", conv, net[1], wta=_wta("conv"))
    learner.initialize_weights(gen)
    x = _input("conv", gen)
    post = net(x)
    expected, _ = _expected_delta(conv, x, post, learner.config, _wta("conv"), 2, 1)
    torch.testing.assert_close(learner.step(on_grad=False), expected, rtol=0, atol=0)


def test_enable_disable_reset_and_record_mismatch():
    gen = torch.Generator().manual_seed(2)
    net = nn.Sequential(_synapse("linear"), neuron.IFNode(v_threshold=1.0, step_mode="m"))
    learner = STDPLearner("m", net[0], net[1])
    learner.initialize_weights(gen)
    learner.disable()
    net(_input("linear", gen))
    assert learner.step() is None
    learner.enable()
    net(_input("linear", gen))
    learner.reset()
    assert learner.step(on_grad=False) is None
    net[0](_input("linear", gen))  # the synapse ran without its neuron
    with pytest.raises(RuntimeError, match="1 synapse inputs but 0 neuron outputs"):
        learner.step()


def test_close_leaves_no_hooks():
    net = nn.Sequential(_synapse("conv"), neuron.IFNode(), WTALayer(_wta("conv")))
    before = [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in net.modules()]
    learners = [STDPLearner("s", net[0], net[1]), STDPLearner("s", net[0], net[2])]
    assert all(len(net[i]._forward_hooks) > 0 for i in range(3))
    for learner in learners:
        learner.close()
        learner.close()  # idempotent
    assert [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in net.modules()] == before
    with pytest.raises(RuntimeError, match="closed"):
        learners[0].step()
    with pytest.raises(RuntimeError, match="closed"):
        learners[0].enable()


@pytest.mark.parametrize(
    "synapse, problem",
    [
        (nn.Conv2d(4, 4, 3, groups=2), "grouped"),
        (layer.Conv2d(4, 4, 3, dilation=2), "dilated"),
        (nn.Conv1d(4, 4, 3), "Conv2d and nn.Linear"),
        (nn.Conv2d(4, 4, (3, 5)), "same along both axes"),
        (nn.Conv2d(4, 4, 3, padding=1, padding_mode="reflect"), "padding_mode"),
    ],
)
def test_unsupported_synapses_raise(synapse, problem):
    with pytest.raises(NotImplementedError, match=problem) as info:
        STDPLearner("s", synapse, neuron.IFNode(), name="features.3")
    assert "features.3" in str(info.value)


def test_bad_arguments():
    net = nn.Sequential(_synapse("linear"), neuron.IFNode())
    with pytest.raises(ValueError, match="step_mode"):
        STDPLearner("x", net[0], net[1])
    with pytest.raises(TypeError, match="wta"):
        STDPLearner("s", net[0], net[1], wta="global")
    with pytest.raises(TypeError, match="config"):
        STDPLearner("s", net[0], net[1], config={"lr_plus": 1.0})
    learner = STDPLearner("s", net[0], net[1])
    with pytest.raises(TypeError, match="on_grad"):
        learner.step(on_grad=1)


def test_out_of_bounds_weights_warn_once():
    net = nn.Sequential(_synapse("linear"), neuron.IFNode(step_mode="m"))
    with torch.no_grad():
        net[0].weight.fill_(-0.5)
    learner = STDPLearner("m", net[0], net[1])
    net(torch.ones(2, 1, 10))
    with pytest.warns(UserWarning, match="initialize_weights"):
        learner.step(on_grad=False)


@pytest.mark.parametrize("kind", ["conv", "linear"])
def test_wta_layer_single_and_multi_step_agree_with_core(kind):
    gen = torch.Generator().manual_seed(4)
    spikes = _input(kind, gen)
    wta = _wta(kind)
    multi = WTALayer(wta, step_mode="m")(spikes)
    single_layer = WTALayer(wta)
    single = torch.stack([single_layer(s) for s in spikes])
    mask = select_winners(_maps(get_first_spike_times(spikes)), None, wta.mode, wta.local_radius, wta.k_winners)
    expected = spikes * mask.view(spikes.shape[1:])
    assert torch.equal(multi, expected)
    assert torch.equal(single, expected)
    assert torch.equal(single_layer.winner_mask, mask)
    functional.reset_net(nn.Sequential(single_layer))
    assert single_layer.winners.steps == 0 and single_layer.winner_mask is None


def test_learner_after_wta_layer_learns_from_its_winners():
    gen = torch.Generator().manual_seed(9)
    wta = _wta("conv")
    net = _net("m", _synapse("conv"), neuron.IFNode(v_threshold=1.0), WTALayer(wta))
    learner = STDPLearner("m", net[0], net[2], wta=wta)
    learner.initialize_weights(gen)
    x = _input("conv", gen)
    out = net(x)
    mask = net[2].winner_mask
    expected = expected_delta(net[0].weight, get_first_spike_times(x), get_first_spike_times(out), mask,
                              learner.config, stride=2, padding=1)
    torch.testing.assert_close(learner.step(on_grad=False), expected, rtol=0, atol=0)
    assert torch.equal(learner.winner_mask, mask)


def _reference_if(x: torch.Tensor, theta: torch.Tensor):
    """Plain IF with per-neuron thresholds and reset to 0: spikes and membranes [T, ...]."""
    v = torch.zeros_like(x[0])
    spikes, membranes = [], []
    for x_t in x:
        v = v + x_t
        s = (v >= theta).float()
        v = v * (1 - s)
        spikes.append(s)
        membranes.append(v)
    return torch.stack(spikes), torch.stack(membranes)


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_adaptive_threshold_node_fires_at_per_neuron_thresholds(step_mode):
    gen = torch.Generator().manual_seed(6)
    adaptive = AdaptiveThreshold(3, (4, 4), initial_threshold=2.0, learning_rate=0.5, target_rate=0.2)
    with torch.no_grad():
        adaptive.thresholds.copy_(torch.rand(3, 4, 4, generator=gen) * 3 + 1)
    node = AdaptiveThresholdNode(neuron.IFNode(v_threshold=1.0), adaptive)
    functional.set_step_mode(nn.Sequential(node), step_mode)
    assert node.node.step_mode == step_mode
    x = torch.rand(8, 2, 3, 4, 4, generator=gen)
    expected, membranes = _reference_if(x, adaptive.thresholds.clone())
    spikes = _run(node, x, step_mode)
    assert torch.equal(spikes, expected)
    torch.testing.assert_close(node.v, membranes[-1])
    reference = AdaptiveThreshold(3, (4, 4), initial_threshold=2.0, learning_rate=0.5, target_rate=0.2)
    with torch.no_grad():
        reference.thresholds.copy_(adaptive.thresholds)
    reference.update(expected)
    before = adaptive.thresholds.clone()
    functional.reset_net(nn.Sequential(node))
    torch.testing.assert_close(adaptive.thresholds, reference.thresholds)
    assert not torch.equal(adaptive.thresholds, before)
    assert isinstance(node.node.v, float)  # the node was reset too


def test_adaptive_threshold_node_in_eval_mode_does_not_adapt():
    adaptive = AdaptiveThreshold(5, (), initial_threshold=1.5, learning_rate=0.5)
    node = AdaptiveThresholdNode(neuron.LIFNode(v_reset=None, step_mode="m"), adaptive).eval()
    node(torch.ones(4, 2, 5) * 2)
    node.reset()
    assert torch.equal(adaptive.thresholds, torch.full((5,), 1.5))


def test_adaptive_threshold_node_rejects_nonlinear_nodes():
    adaptive = AdaptiveThreshold(2, (3, 3))
    with pytest.raises(TypeError, match="IFNode"):
        AdaptiveThresholdNode(neuron.QIFNode(), adaptive)
    with pytest.raises(ValueError, match="v_reset"):
        AdaptiveThresholdNode(neuron.IFNode(v_reset=-1.0), adaptive)
    with pytest.raises(TypeError, match="AdaptiveThreshold"):
        AdaptiveThresholdNode(neuron.IFNode(), torch.ones(2, 3, 3))
    node = AdaptiveThresholdNode(neuron.IFNode(), adaptive)
    with pytest.raises(ValueError, match="threshold shape"):
        node(torch.ones(1, 2, 4, 4))


def _load_example():
    spec = importlib.util.spec_from_file_location("spikingjelly_stdp", ROOT / "examples" / "spikingjelly_stdp.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_convergence_falls_over_a_few_hundred_digits(one_thread):
    history = _load_example().train(200)
    assert len(history) == 41
    assert history[-1] < history[0] - 0.01
    assert history[-1] < min(history[:20])


def test_example_runs_on_a_small_slice():
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "spikingjelly_stdp.py"), "--images", "40"],
        capture_output=True, text=True, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [int(r[0]) for r in rows] == list(range(0, 45, 5))
    assert float(rows[-1][1]) < float(rows[0][1])  # risen as the weights leave 0.8, then fallen below
