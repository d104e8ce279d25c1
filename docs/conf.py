"""Sphinx configuration of the stdp-plugins documentation.

Build with ``python -m sphinx -W -b html docs docs/_build/html`` (warnings are errors).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from docutils import nodes
from sphinx.util.docutils import SphinxDirective

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import stdp_plugins  # noqa: E402

project = "stdp-plugins"
author = "stdp-plugins developers"
copyright = "2026, stdp-plugins developers"
release = stdp_plugins.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
    "sphinx.ext.mathjax",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "figures"]

# MyST: $...$ / $$...$$ maths, ::: fences, and heading anchors for cross-page links.
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

# NumPy-style docstrings.
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
napoleon_preprocess_types = True

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_typehints_format = "short"
autodoc_class_signature = "mixed"
# ``extra_repr`` is a torch printing hook, not API.
autodoc_default_options = {"exclude-members": "extra_repr"}

html_theme = "furo"
html_title = f"stdp-plugins {release}"
html_static_path = ["_static"]


def _top_level_exports() -> set[int]:
    return {id(getattr(stdp_plugins, name)) for name in stdp_plugins.__all__}


_TOP_LEVEL = _top_level_exports()


def _skip_top_level_reexports(app, what, name, obj, skip, options):
    """Document every object once: names re-exported by ``stdp_plugins`` itself are
    documented on the topical pages as ``stdp_plugins.<name>``, so a submodule's
    ``automodule`` listing leaves them out."""
    if what == "module" and id(obj) in _TOP_LEVEL:
        return True
    return None


def _drop_type_docstring(app, what, name, obj, options, lines):
    """A constant without a doc comment would show its type's docstring (``str(object='')
    -> str ...``); show nothing instead."""
    type_doc = (type(obj).__doc__ or "").strip()
    if what in ("data", "attribute") and lines and type_doc and lines[0].strip() == type_doc.splitlines()[0]:
        lines.clear()


def _unindexed_attribute_sections(app, what, name, obj, options, lines):
    """Napoleon turns an "Attributes" section into ``.. attribute::`` entries. Keep them out
    of the index: a property documented by autodoc may also be listed there (a duplicate
    description), and an entry such as ``lr_plus, lr_minus`` is not an object name."""
    for index in range(len(lines) - 1, -1, -1):
        stripped = lines[index].lstrip()
        if stripped.startswith(".. attribute::"):
            indent = lines[index][: len(lines[index]) - len(stripped)]
            lines.insert(index + 1, f"{indent}   :no-index:")


def _resolve_top_level_alias(app, env, node, contnode):
    """Resolve ``stdp_plugins.learning.X`` (or ``stdp_plugins.learning.stdp.X``) and a bare
    ``X`` in a docstring to ``stdp_plugins.X``, where the re-exported object is documented."""
    target = node.get("reftarget", "")
    if node.get("refdomain") != "py":
        return None
    parts = target.split(".")
    if parts[0] != "stdp_plugins":
        parts = ["stdp_plugins", "", *parts]
    for start in range(2, len(parts)):
        if parts[start] in stdp_plugins.__all__:
            alias = ".".join(["stdp_plugins", *parts[start:]])
            return env.get_domain("py").resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], alias, node, contnode
            )
    return None


class CliHelp(SphinxDirective):
    """``.. cli-help:: [SUBCOMMAND]``: the ``--help`` text of ``stdp-plugins`` (or of one
    subcommand), rendered from the real parser at build time so that it cannot go stale."""

    optional_arguments = 1

    def run(self):
        from stdp_plugins.cli import build_parser

        parser = build_parser()
        if self.arguments:
            subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
            parser = subparsers.choices[self.arguments[0]]
        previous = os.environ.get("COLUMNS")
        os.environ["COLUMNS"] = "88"
        try:
            text = parser.format_help()
        finally:
            if previous is None:
                del os.environ["COLUMNS"]
            else:
                os.environ["COLUMNS"] = previous
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app):
    app.add_directive("cli-help", CliHelp)
    app.connect("autodoc-skip-member", _skip_top_level_reexports)
    app.connect("autodoc-process-docstring", _drop_type_docstring)
    # after napoleon (priority 500), which writes the ``.. attribute::`` entries
    app.connect("autodoc-process-docstring", _unindexed_attribute_sections, priority=600)
    app.connect("missing-reference", _resolve_top_level_alias)
