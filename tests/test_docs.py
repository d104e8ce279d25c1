"""The documentation builds without a warning and documents every public symbol.

Builds ``docs/`` once per test session with ``sphinx-build -W`` (warnings are errors) in a
subprocess, then reads the object inventory (``objects.inv``) of the build to check that
every public symbol of the package appears in the API reference.
"""

from __future__ import annotations

import html as html_module
import importlib
import inspect
import pkgutil
import re
import subprocess
import sys
from enum import Enum
from pathlib import Path
from types import ModuleType

import pytest
from sphinx.util.inventory import InventoryFile

import stdp_plugins

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
TORCH_HOOKS = {"extra_repr"}  # nn.Module printing hook, excluded from the docs (docs/conf.py)


def public_modules() -> list[ModuleType]:
    """``stdp_plugins`` and every submodule whose dotted path has no ``_``-prefixed part."""
    modules = [stdp_plugins]
    for info in pkgutil.walk_packages(stdp_plugins.__path__, prefix="stdp_plugins."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            modules.append(importlib.import_module(info.name))
    return modules


def public_names(module: ModuleType, problems: list[str]) -> list[str]:
    """A module's ``__all__``; a public module without one is recorded as a problem."""
    if not hasattr(module, "__all__"):
        problems.append(f"{module.__name__} (no __all__)")
        return []
    return list(module.__all__)


def resolve(path: str) -> object:
    """The object behind a dotted path such as ``stdp_plugins.STDPLearner.forward``."""
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for attr in parts[split:]:
            obj = getattr(obj, attr)
        return obj
    raise ImportError(path)


@pytest.fixture(scope="module")
def html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(DOCS), str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"sphinx-build -W failed:\n{result.stdout}\n{result.stderr}"
    return out


@pytest.fixture(scope="module")
def inventory(html) -> dict[str, str]:
    """Documented Python objects: dotted name -> role (``py:class``, ``py:function`` ...)."""
    with open(html / "objects.inv", "rb") as stream:
        inv = InventoryFile.load(stream, "", lambda base, uri: base + uri)
    return {name: role for role, entries in inv.items() if role.startswith("py:") for name in entries}


def test_build_is_warning_free_and_renders_every_page(html):
    pages = sorted(p.relative_to(DOCS).with_suffix(".html") for p in DOCS.rglob("*")
                   if p.suffix in (".md", ".rst") and "_build" not in p.parts)
    missing = [str(page) for page in pages if not (html / page).is_file()]
    assert not missing, f"pages not rendered: {missing}"
    assert (html / "_images" / "concepts.png").is_file()


def test_changelog_page_includes_changelog(html):
    text = html_module.unescape(re.sub(r"<[^>]+>", "", (html / "changelog.html").read_text()))
    entries = [line[2:] for line in (ROOT / "CHANGELOG.md").read_text().splitlines() if line.startswith("- ")]
    assert entries
    for entry in entries:  # each entry's first words, Markdown code marks dropped
        assert " ".join(entry.replace("`", "").split()[:4]) in " ".join(text.split())


def test_every_top_level_export_is_documented_as_stdp_plugins_name(inventory):
    missing = [name for name in stdp_plugins.__all__ if f"stdp_plugins.{name}" not in inventory]
    assert not missing, f"stdp_plugins.__all__ names missing from the API reference: {missing}"
    assert inventory["stdp_plugins.STDPLearner"] == "py:class"
    assert inventory["stdp_plugins.get_first_spike_times"] == "py:function"


def test_every_public_module_and_its_all_is_documented(inventory):
    """Each name of each public module's ``__all__`` is documented under a dotted path with
    that last name that resolves to the very same object (``stdp_plugins.X`` for re-exports,
    ``stdp_plugins.kernels.X`` for ``stdp_plugins.kernels.dispatch.X``)."""
    documented: dict[str, list[object]] = {}
    for path in inventory:
        try:
            documented.setdefault(path.rsplit(".", 1)[-1], []).append(resolve(path))
        except (ImportError, AttributeError):
            pass
    missing: list[str] = []
    for module in public_modules():
        if module.__name__.count(".") == 1 and inventory.get(module.__name__) != "py:module":
            missing.append(f"{module.__name__} (no API page)")  # stdp_plugins.<sub>: each has one
        missing += [f"{module.__name__}.{name}" for name in public_names(module, missing)
                    if not any(obj is getattr(module, name) for obj in documented.get(name, []))]
    assert not missing, f"public symbols missing from the API reference: {missing}"


def _undocumented(owner: str, obj: object) -> list[str]:
    """Public symbols without a docstring of their own: a class or function and, for a
    class, its own public methods and properties (constants are checked by the inventory)."""
    if not (inspect.isclass(obj) or inspect.isroutine(obj)):
        return []
    doc = obj.__doc__
    # A dataclass without a docstring gets its signature as __doc__.
    blank = not doc or (inspect.isclass(obj) and doc.startswith(f"{obj.__name__}("))
    found = [owner] if blank else []
    if inspect.isclass(obj) and not issubclass(obj, Enum):
        for attr, value in vars(obj).items():
            if attr.startswith("_") or attr in TORCH_HOOKS:
                continue
            if isinstance(value, (staticmethod, classmethod)):
                value = value.__func__
            if (inspect.isfunction(value) or isinstance(value, property)) and not value.__doc__:
                found.append(f"{owner}.{attr}")
    return found


def test_every_public_symbol_has_a_docstring():
    missing: list[str] = []
    for module in public_modules():
        if not module.__doc__:
            missing.append(module.__name__)
        for name in public_names(module, missing):
            missing += _undocumented(f"{module.__name__}.{name}", getattr(module, name))
    assert not missing, f"public symbols without a docstring: {sorted(set(missing))}"


def test_concepts_figure_script_draws_the_figure(tmp_path):
    """The script behind docs/_static/concepts.png runs (here on 8 digits)."""
    sys.path.insert(0, str(DOCS / "figures"))
    try:
        figure = importlib.import_module("concepts_figure")
    finally:
        sys.path.remove(str(DOCS / "figures"))
    out = figure.main([str(tmp_path / "concepts.png"), "--images", "8"])
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (DOCS / "_static" / "concepts.png").is_file()
