"""Rule/layer registry, entry points and attach() on real SpikingJelly and snnTorch models."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import snntorch as snn
import torch
from spikingjelly.activation_based import functional, layer, neuron
from torch import nn

import stdp_plugins.registry as registry
from stdp_plugins.learning import STDPConfig, WTAConfig, WTAMode
from stdp_plugins.registry import (
    attach,
    available_layers,
    available_rules,
    find_pairs,
    get_layer,
    get_rule,
    register_layer,
    register_rule,
)
from stdp_plugins import snntorch as snn_adapter
from stdp_plugins import spikingjelly as sj_adapter


@pytest.fixture
def clean_registry():
    """Restore the registries after a test that registers names."""
    rules, layers = dict(registry._RULES.factories), dict(registry._LAYERS.factories)
    yield
    registry._RULES.factories.clear()
    registry._RULES.factories.update(rules)
    registry._LAYERS.factories.clear()
    registry._LAYERS.factories.update(layers)


def _hooks(model: nn.Module):
    return [(dict(m._forward_hooks), dict(m._forward_pre_hooks)) for m in model.modules()]


def test_builtins_are_listed():
    assert "stdp" in available_rules()
    assert {"spikingjelly.wta", "spikingjelly.adaptive_threshold", "snntorch.wta"} <= set(available_layers())
    wta = get_layer("spikingjelly.wta")(WTAConfig(mode=WTAMode.LOCAL), step_mode="m")
    assert isinstance(wta, sj_adapter.WTALayer) and wta.step_mode == "m"
    assert isinstance(get_layer("snntorch.wta")(), snn_adapter.WTALayer)


def test_register_and_get(clean_registry):
    def factory(synapse, sn, **kwargs):
        return ("learner", synapse, sn, kwargs)

    register_rule("mine", factory)
    assert get_rule("mine") is factory and "mine" in available_rules()
    with pytest.raises(ValueError, match="already registered"):
        register_rule("mine", factory)
    register_rule("mine", len, overwrite=True)
    assert get_rule("mine") is len
    register_layer("identity", nn.Identity)
    assert isinstance(get_layer("identity")(), nn.Identity)
    with pytest.raises(ValueError, match="unknown rule 'nope'; available: .*stdp"):
        get_rule("nope")
    with pytest.raises(ValueError, match="unknown layer"):
        get_layer("nope")
    with pytest.raises(TypeError, match="callable"):
        register_rule("bad", 3)
    with pytest.raises(TypeError, match="non-empty str"):
        register_layer("", nn.Identity)


def test_entry_points_are_loaded_lazily(tmp_path, monkeypatch, clean_registry):
    (tmp_path / "third_party_rules.py").write_text(textwrap.dedent("""
        import torch
        def make(synapse, sn, **kwargs):
            return "third-party learner"
        class Layer(torch.nn.Identity):
            pass
    """))
    info = tmp_path / "third_party_rules-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: third-party-rules\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[stdp_plugins.rules]\nthird = third_party_rules:make\n\n"
        "[stdp_plugins.layers]\nthird_layer = third_party_rules:Layer\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert "third" in available_rules() and "third_layer" in available_layers()
    assert "third_party_rules" not in sys.modules  # listed, not imported
    assert get_rule("third")(None, None) == "third-party learner"
    assert type(get_layer("third_layer")()).__name__ == "Layer"
    monkeypatch.delitem(sys.modules, "third_party_rules")


class SJNet(nn.Module):
    """A SpikingJelly model with its own forward, nested containers and a read-out."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            layer.Conv2d(1, 4, 3, bias=False), layer.BatchNorm2d(4), neuron.IFNode(),
            sj_adapter.WTALayer(WTAConfig(mode=WTAMode.BOTH, k_winners=2)),
            layer.MaxPool2d(2),
            layer.Conv2d(4, 6, 3, bias=False), layer.MaxPool2d(2), neuron.LIFNode(),  # pooling breaks the pair
        )
        self.flat = layer.Flatten()
        self.fc = layer.Linear(6 * 2 * 2, 3, bias=False)
        self.lif = neuron.LIFNode()
        self.readout = layer.Linear(3, 2)

    def forward(self, x):
        return self.readout(self.lif(self.fc(self.flat(self.features(x)))))


class SnnNet(nn.Module):
    """The snnTorch tutorials' shape: layers as attributes, a loop in forward."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 5)
        self.lif1 = snn.Leaky(beta=0.9)
        self.fc1 = nn.Linear(4 * 4 * 4, 10)
        self.lif2 = snn.Leaky(beta=0.9)

    def forward(self, x):
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        out = []
        for x_t in x:
            spk1, mem1 = self.lif1(self.conv1(x_t), mem1)
            spk2, mem2 = self.lif2(self.fc1(spk1.flatten(1)), mem2)
            out.append(spk2)
        return torch.stack(out)


def test_find_pairs_in_custom_modules():
    sj = SJNet()
    assert [(a, b) for a, _, b, _ in find_pairs(sj)] == [("features.0", "features.3"), ("fc", "lif")]
    assert [(a, b) for a, _, b, _ in find_pairs(SnnNet())] == [("conv1", "lif1"), ("fc1", "lif2")]


def test_find_pairs_in_sequential():
    seq = nn.Sequential(
        nn.Linear(8, 6), snn.Leaky(beta=0.9, init_hidden=True), snn_adapter.WTALayer(),
        nn.Dropout(0.1), nn.Linear(6, 4), nn.Dropout(0.1), snn.Leaky(beta=0.9, init_hidden=True),
        nn.Linear(4, 2),
    )
    pairs = find_pairs(seq)
    assert [(a, b) for a, _, b, _ in pairs] == [("0", "2"), ("4", "6")]
    assert pairs[0][1] is seq[0] and pairs[0][3] is seq[2]


@pytest.mark.parametrize(
    "synapse, problem",
    [(nn.Conv2d(2, 4, 3, groups=2), "grouped"), (nn.Conv2d(2, 4, 3, dilation=2), "dilated"),
     (nn.Conv1d(2, 4, 3), "Conv1d")],
)
def test_attach_rejects_unsupported_synapses_by_name(synapse, problem):
    model = nn.Sequential(nn.Identity(), nn.Sequential(synapse, neuron.IFNode()))
    with pytest.raises(NotImplementedError, match=problem) as info:
        attach(model)
    assert "'1.0'" in str(info.value)
    assert _hooks(model) == [({}, {})] * len(list(model.modules()))


def test_failed_attach_leaves_no_hooks(clean_registry):
    def rule(synapse, sn, **kwargs):
        if kwargs["name"] == "fc1":
            raise ValueError("fc1 refused")
        return get_rule("stdp")(synapse, sn, **kwargs)

    register_rule("picky", rule)
    model = SnnNet()
    with pytest.raises(ValueError, match="fc1 refused"):
        attach(model, rule="picky")
    assert _hooks(model) == [({}, {})] * len(list(model.modules()))


def test_attach_needs_a_pair():
    with pytest.raises(ValueError, match="no nn.Conv2d/nn.Linear followed by"):
        attach(nn.Sequential(nn.Linear(3, 2), nn.ReLU()))
    with pytest.raises(ValueError, match="unknown rule"):
        attach(SnnNet(), rule="nope")


def test_attach_spikingjelly_group_learns_and_closes_cleanly():
    torch.manual_seed(0)
    model = SJNet()
    functional.set_step_mode(model, "m")
    before = _hooks(model)
    group = attach(model, config=STDPConfig(lr_plus=0.1, lr_minus=0.05), initialize_weights=True)
    assert group.names() == ["features.0", "fc"]
    assert group.pairs() == [(model.features[0], model.features[3]), (model.fc, model.lif)]
    assert group["features.0"].wta is model.features[3].config  # the WTA layer's config
    assert group[1].wta == WTAConfig() and group[1].step_mode == "m"
    x = (torch.rand(8, 2, 1, 14, 14) > 0.5).float()
    with torch.no_grad():
        model(x)
    start = group.convergence()
    deltas = group.apply()
    assert set(deltas) == {"features.0", "fc"}
    assert deltas["features.0"].abs().sum() > 0
    assert group.convergence()["features.0"] != start["features.0"]
    functional.reset_net(model)
    with torch.no_grad():
        model(x)
    group.step(on_grad=True)
    assert model.features[0].weight.grad is not None
    group.close()
    assert _hooks(model) == before


def test_attach_takes_per_layer_configs_reduction_and_backend():
    model = SJNet()
    functional.set_step_mode(model, "m")
    fast = STDPConfig(lr_plus=0.2, lr_minus=0.1)
    wta_fc = WTAConfig(mode=WTAMode.LOCAL, local_radius=0, k_winners=2)
    group = attach(model, config={"fc": fast}, wta={"fc": wta_fc}, reduction="mean", backend="torch")
    assert group["fc"].config is fast and group["features.0"].config == STDPConfig()
    assert group["fc"].wta is wta_fc and group["features.0"].wta is model.features[3].config
    assert all(learner.reduction == "mean" and learner.backend == "torch" for learner in group)
    group["fc"].set_learning_rates(0.3, 0.2)
    assert (group["fc"].config.lr_plus, group["fc"].config.lr_minus) == (0.3, 0.2)
    with pytest.raises(ValueError, match="lr_minus"):
        group["fc"].set_learning_rates(0.3, -1.0)
    group.close()
    with pytest.raises(ValueError, match=r"config names no paired synapse: \['conv9'\]"):
        attach(model, config={"conv9": fast})
    with pytest.raises(ValueError, match="reduction must be one of 'mean', 'sequential', got 'sum'"):
        attach(model, reduction="sum")
    assert _hooks(model) == _hooks(SJNet())


def test_attach_snntorch_group_and_rule_kwargs(clean_registry):
    calls = []

    def rule(synapse, sn, **kwargs):
        calls.append(kwargs)
        return get_rule("stdp")(synapse, sn, **{k: v for k, v in kwargs.items() if k != "tag"})

    register_rule("tagged", rule)
    model = SnnNet()
    before = _hooks(model)
    wta = WTAConfig(mode=WTAMode.LOCAL, local_radius=0)
    group = attach(model, rule="tagged", wta=wta, tag=1, initialize_weights=True)
    assert [c["name"] for c in calls] == ["conv1", "fc1"] and all(c["tag"] == 1 for c in calls)
    assert all(isinstance(learner, snn_adapter.STDPLearner) and learner.wta is wta for learner in group)
    with torch.no_grad():
        model((torch.rand(5, 2, 1, 8, 8) > 0.5).float())
    assert all(delta is not None for delta in group.step(on_grad=False).values())
    group.reset()
    assert group.apply() == {"conv1": None, "fc1": None}
    group.close()
    assert _hooks(model) == before


def test_import_without_frameworks():
    code = textwrap.dedent("""
        import sys
        sys.modules["spikingjelly"] = None
        sys.modules["snntorch"] = None
        import torch
        import stdp_plugins
        from stdp_plugins.registry import attach, available_rules, find_pairs
        assert "stdp" in available_rules()
        assert find_pairs(torch.nn.Sequential(torch.nn.Linear(2, 2))) == []
        print("ok")
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
