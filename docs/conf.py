"""Sphinx configuration of the optaxsched documentation (``make docs``; warnings are errors)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))  # the checkout, whether or not it is pip-installed

import optaxsched  # noqa: E402

project = "optaxsched"
author = "optaxsched developers"
copyright = "2026, optaxsched developers"  # noqa: A001 - Sphinx's own name
release = optaxsched.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",  # Google-style docstrings
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_parser",  # the Markdown pages
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
templates_path = ["_templates"]

autosummary_generate = True
autosummary_imported_members = True
autodoc_default_options = {"members": False, "show-inheritance": False}
autodoc_typehints = "signature"
# Show optax's aliases by name rather than expanded into the Callable/Union they stand for.
autodoc_type_aliases = {name: name for name in (
    "optax.Schedule", "optax.ScalarOrSchedule", "optax.GradientTransformation",
    "optax.GradientTransformationExtraArgs", "optax.Params", "optax.Updates",
    "optax.OptState")}
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

myst_enable_extensions = ["dollarmath", "colon_fence"]
myst_heading_anchors = 3

# The spike modules' docstrings write |g| outside literals, which reStructuredText
# reads as a substitution: define it as the literal text (drop once those docstrings use ``|g|``).
rst_prolog = ".. |g| unicode:: U+007C U+0067 U+007C\n"

html_theme = "furo"
html_title = f"optaxsched {release}"
html_static_path: list[str] = []
