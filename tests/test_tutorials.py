"""Every Python code block of the documentation and of the README runs.

The ```python blocks of each page are joined in order and executed in one fresh namespace,
in a temporary working directory, exactly as a reader would paste them, except for the
size parameters listed in ``SMALL`` (tiny data slices so that each page runs in seconds).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from stdp_plugins.models.kheradpisheh import KheradpishehNet

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"

FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.DOTALL | re.MULTILINE)
# Any other way of writing a Python block would escape this test.
OTHER_PYTHON_FENCE = re.compile(r"^(```|:::)\s*(py|python3|\{code-block\}\s+py\w*|\{code\}\s+py\w*|\{code-cell\}.*)\s*$",
                                re.MULTILINE)

# page -> {variable assigned at the start of a line: value used in the test}.
SMALL: dict[str, dict[str, str]] = {
    "docs/tutorials/spikingjelly.md": {"N_IMAGES": "20"},
    "docs/tutorials/snntorch.md": {"N_IMAGES": "20"},
    "docs/tutorials/kheradpisheh2018.md": {"N_TRAIN": "64", "N_TEST": "32"},
    "docs/tutorials/spikingjelly_kheradpisheh.md": {"N_TRAIN": "64", "N_TEST": "32", "EPOCHS": "(1, 1)"},
    "docs/tutorials/snntorch_kheradpisheh.md": {"N_TRAIN": "64", "N_TEST": "32", "EPOCHS": "(1, 1)"},
    "docs/tutorials/deploy_nir.md": {"N_TRAIN": "100", "N_TEST": "30"},
}



def _check_readme(ns: dict) -> None:
    assert ns["learner"].update_count == 1
    assert 0.0 <= float(ns["weights"].min()) and float(ns["weights"].max()) <= 1.0
    learner = ns["group"]["0"]                                       # "Your own model"
    assert learner.update_count == 1 and learner.reduction == "sequential"
    assert 0.0 < ns["group"].convergence()["0"] < 0.25


def _check_quickstart(ns: dict) -> None:
    assert ns["learner"].update_count == 5
    assert int(ns["winners"].sum(dim=(1, 2, 3)).max()) <= 5       # k_winners = 5 per image
    assert int(ns["in_spikes"].sum(dim=0).max()) == 1              # input events: once at most
    assert int(ns["out_spikes"].sum(dim=0).max()) == 1             # fire-once neurons


def _check_spikingjelly(ns: dict) -> None:
    from stdp_plugins import get_first_spike_times
    from stdp_plugins.spikingjelly import FireOnceIFNode, FirstSpikeMaxPool2d

    net = ns["net"]
    assert isinstance(net[1], FireOnceIFNode) and isinstance(net[3], FirstSpikeMaxPool2d)
    assert not net[0]._forward_hooks and not net[2]._forward_hooks  # close() removed the hooks
    events = ns["events"]                                            # each input fires once, at its time
    assert int(events.sum(dim=0).max()) == 1
    assert torch.equal(get_first_spike_times(events), ns["encoder"].spike_times(ns["images"][:4]))
    assert ns["group"]["0"].update_count == 2                        # 20 images, batches of 10
    assert ns["group"]["0"].reduction == "sequential"
    assert ns["learner"].reduction == "mean" and ns["learner"].update_count == 1
    assert tuple(ns["out"].shape) == (15, 10, 32, 14, 14)
    assert int(ns["out"].sum(dim=0).max()) == 1                      # pooled units fire once
    assert int(ns["spikes"].sum(dim=0).max()) == 1                   # neurons fire once
    weight = net[0].weight.detach()
    assert 0.0 <= float(weight.min()) and float(weight.max()) <= 1.0
    assert tuple(ns["features"].shape) == (16, 512)


def _check_snntorch(ns: dict) -> None:
    from stdp_plugins.snntorch import FireOnceIF

    assert isinstance(ns["net"].lif1, FireOnceIF) and isinstance(ns["conv_net"].lif1, FireOnceIF)
    assert ns["learner"].closed and ns["conv_learner"].closed
    assert ns["learner"].reduction == "sequential"
    assert int(ns["x"].sum(dim=0).max()) == 1                        # input events: once at most
    assert int(ns["spk1_rec"].sum(dim=0).max()) == 1                 # neurons fire once
    assert int(ns["conv_learner"].winner_mask.sum(dim=(1, 2, 3)).max()) <= 5
    assert int(ns["events"].sum(dim=0).max()) == 1
    assert tuple(ns["out"].shape) == (15, 8, 16, 12, 12)
    assert int(ns["out"].sum(dim=0).max()) == 1                      # pooled units fire once
    assert ns["threshold"].mean_threshold != 20.0                    # homeostasis moved it


def _check_custom_rule(ns: dict) -> None:
    assert type(ns["group"]["0"]).__name__ == "ZeroSumSTDP"
    assert float((ns["after"] - ns["before"]).abs().max()) < 1e-3   # kernel sums kept


def _check_kheradpisheh(ns: dict) -> None:
    assert set(ns["history"]) == {1, 2} and all(ns["history"].values())
    assert tuple(ns["test_features"].shape) == (32, 150, 9, 9)
    assert 0.0 <= ns["readout"].accuracy(ns["test_features"], ns["test_labels"]) <= 1.0
    assert ns["row_labels"].shape == (64 * 3,) and ns["predicted"].shape == (32,)


def _check_kheradpisheh_model(ns: dict, neurons: tuple) -> None:
    """A plain-framework Kheradpisheh page: both layers trained through closed learners, on
    the reference's initial weights, then read out."""
    net, group = ns["net"], ns["group"]
    assert all(learner.closed for learner in group)
    assert not net.conv1._forward_hooks and not net.conv2._forward_hooks
    initial = KheradpishehNet(seed=0)
    for name, neuron in zip(("conv1", "conv2"), neurons):
        assert type(group[name].sn).__name__ == neuron
        assert group[name].update_count == 2                       # 64 digits, batches of 32, 1 epoch
        weight = getattr(net, name).weight
        assert 0.0 <= float(weight.min()) and float(weight.max()) <= 1.0
        assert not torch.equal(weight, initial.weight(int(name[-1])))
    assert tuple(ns["layer2_times"].shape) == (64, 32, 15, 15)
    assert ns["row_labels"].shape == (64 * 3,) and ns["predicted"].shape == (32,)
    assert 0.2 < ns["accuracy"] <= 1.0                             # chance is 0.1


def _check_spikingjelly_kheradpisheh(ns: dict) -> None:
    _check_kheradpisheh_model(ns, ("FireOnceIFNode", "FireOnceIFNode"))


def _check_snntorch_kheradpisheh(ns: dict) -> None:
    _check_kheradpisheh_model(ns, ("FireOnceIF", "FireOnceIF"))


def _check_deploy_nir(ns: dict) -> None:
    """Both imported graphs give the network's features and output first-spike times."""
    features = ns["features"]
    assert features.any() and tuple(features.shape) == (30, 150, 9, 9)
    assert set(ns["results"]) == {"SpikingJelly", "snnTorch"}
    for first_spikes, imported_features in ns["results"].values():
        assert torch.equal(imported_features, features)
        assert torch.equal(first_spikes, ns["network_first_spikes"])


def _check_networks(ns: dict) -> None:
    """The Caltech preset's three layers, a JSON network, the weights_only file and load_weights."""
    assert ns["net"].num_layers == 3 and tuple(ns["net"].weight(2).shape) == (20, 4, 16, 16)
    assert ns["small"].num_layers == 2 and tuple(ns["features"].shape) == (16, 16, 1, 1)
    assert ns["record"]["kind"] == "model" and ns["record"]["format"] == "stdp-plugins"
    for index, name in ((0, "conv1"), (2, "conv2")):
        assert torch.equal(ns["model"][index].weight, ns["record"]["weights"][name])


# page -> what its code must have demonstrated (checked on the namespace it leaves).
CHECKS = {
    "README.md": _check_readme,
    "docs/quickstart.md": _check_quickstart,
    "docs/tutorials/spikingjelly.md": _check_spikingjelly,
    "docs/tutorials/snntorch.md": _check_snntorch,
    "docs/tutorials/custom_rule.md": _check_custom_rule,
    "docs/tutorials/kheradpisheh2018.md": _check_kheradpisheh,
    "docs/tutorials/spikingjelly_kheradpisheh.md": _check_spikingjelly_kheradpisheh,
    "docs/tutorials/snntorch_kheradpisheh.md": _check_snntorch_kheradpisheh,
    "docs/tutorials/deploy_nir.md": _check_deploy_nir,
    "docs/tutorials/networks.md": _check_networks,
}


def pages() -> list[Path]:
    return [ROOT / "README.md"] + sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def code_of(page: Path) -> str:
    """The page's ```python blocks, joined, with the ``SMALL`` overrides applied."""
    source = "\n".join(FENCE.findall(page.read_text()))
    for name, value in SMALL.get(page_id(page), {}).items():
        source, count = re.subn(rf"^{name} = .*$", f"{name} = {value}", source, flags=re.MULTILINE)
        assert count == 1, f"{page_id(page)}: expected one line '{name} = ...' to shrink, found {count}"
    return source


def test_pages_hold_python_code():
    with_code = {page_id(p) for p in pages() if FENCE.search(p.read_text())}
    assert {"README.md", "docs/quickstart.md"} <= with_code
    assert set(SMALL) <= with_code, "SMALL names a page without Python code"
    assert set(CHECKS) == with_code, "every page with code needs a check of what it shows"


@pytest.mark.parametrize("page", pages(), ids=page_id)
def test_python_blocks_are_plain_python_fences(page):
    assert not OTHER_PYTHON_FENCE.search(page.read_text()), (
        f"{page_id(page)}: write Python blocks as ```python so that this test runs them"
    )


@pytest.mark.parametrize(
    "page", [p for p in pages() if FENCE.search(p.read_text())], ids=page_id
)
def test_page_code_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MPLBACKEND", "Agg")
    torch.manual_seed(0)
    namespace = {"__name__": "__main__", "__file__": str(tmp_path / "tutorial.py")}
    exec(compile(code_of(page), page_id(page), "exec"), namespace)
    CHECKS[page_id(page)](namespace)
