"""Every name and signature on the user's API page exists in the package.

The page (a copy of ``shared/seed/api-learning.md``) is parsed, not transcribed, so a
change to the page shows up here.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import re
from pathlib import Path

import pytest
import torch

import stdp_plugins
from stdp_plugins import STDPVariant, WTAMode

PAGE = Path(__file__).parent / "data" / "api-learning.md"


def _code_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def _parse_page():
    """Yield (owner, name, kind, params) for every def / field / property on the page."""
    entries = []
    for block in _code_blocks(PAGE.read_text()):
        owner = None
        lines = block.splitlines()
        i = 0
        while i < len(lines):
            line = lines[i]
            stripped = line.strip()
            match = re.match(r"class (\w+)", stripped)
            if match:
                owner = match.group(1)
                entries.append((None, owner, "class", None))
            elif stripped.startswith("def "):
                text = stripped
                while text.count("(") > text.count(")"):
                    i += 1
                    text += " " + lines[i].strip()
                name = re.match(r"def (\w+)", text).group(1)
                params = text[text.index("(") + 1 : text.rindex(")")]
                indent = line.startswith(" ")
                entries.append((owner if indent else None, name, "def", params))
            elif stripped == "@property":
                i += 1
                name = re.match(r"def (\w+)", lines[i].strip()).group(1)
                entries.append((owner, name, "property", None))
            elif owner and line.startswith("    ") and re.match(r"(\w+): [\w\[\], .]+ = ", stripped):
                name, default = re.match(r"(\w+): [^=]+= ([^#]+)", stripped).groups()
                entries.append((owner, name, "field", default.strip()))
            i += 1
    return entries


ENTRIES = _parse_page()


def _evaluate_default(text: str):
    namespace = {"torch": torch, "STDPVariant": STDPVariant, "WTAMode": WTAMode, "inf": float("inf")}
    return eval(text, namespace)  # the page is trusted project documentation


def _split_params(params: str) -> list[tuple[str, str | None]]:
    """'a, b=1, c: int = 2' -> [('a', None), ('b', '1'), ('c', '2')] (self, cls dropped)."""
    tree = ast.parse(f"def f({params}): pass")
    args = tree.body[0].args
    positional = args.args
    defaults = [None] * (len(positional) - len(args.defaults)) + [ast.unparse(d) for d in args.defaults]
    out = [(a.arg, d) for a, d in zip(positional, defaults)]
    return [(n, d) for n, d in out if n not in ("self", "cls")]


def test_page_was_parsed():
    kinds = {k for _, _, k, _ in ENTRIES}
    assert {"class", "def", "property", "field"} <= kinds
    assert len(ENTRIES) >= 59


@pytest.mark.parametrize("owner,name,kind,params", ENTRIES, ids=[f"{o}.{n}" if o else n for o, n, _, _ in ENTRIES])
def test_page_entry_exists_with_signature(owner, name, kind, params):
    if kind == "class":
        assert inspect.isclass(getattr(stdp_plugins, name))
        return
    target = getattr(stdp_plugins, owner) if owner else stdp_plugins
    assert hasattr(target, name), f"{owner}.{name} is missing"
    member = getattr(target, name) if kind != "property" else inspect.getattr_static(target, name)
    if kind == "property":
        assert isinstance(member, property)
        return
    if kind == "field":
        field = {f.name: f for f in dataclasses.fields(target)}[name]
        assert field.default == _evaluate_default(params)
        return
    signature = inspect.signature(member)
    real = [p for p in signature.parameters.values() if p.name not in ("self", "cls")]
    wanted = _split_params(params)
    assert [p.name for p in real[: len(wanted)]] == [n for n, _ in wanted]
    for param, (_, default) in zip(real, wanted):
        if default is None:
            assert param.default is inspect.Parameter.empty, param.name
        elif default != "...":
            assert param.default == _evaluate_default(default), param.name
    for extra in real[len(wanted):]:
        assert extra.default is not inspect.Parameter.empty or extra.kind is inspect.Parameter.VAR_KEYWORD


def test_k_winners_is_a_wta_config_field():
    assert stdp_plugins.WTAConfig().k_winners is None


def test_every_page_name_is_in_all():
    page_names = {n for o, n, k, _ in ENTRIES if o is None}
    assert page_names <= set(stdp_plugins.__all__)
