"""Sphinx configuration of the asr documentation: ``python -m sphinx -W -b html docs site``.

The pages are Markdown (MyST); the API reference is generated from the docstrings (autodoc).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the asr in this tree, installed or not

project = "asr"
author = "the asr authors"
copyright = "the asr authors, Apache-2.0"
from asr import __version__ as release  # noqa: E402

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
myst_heading_anchors = 3  # [text](page.md#a-heading) links are checked
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = "asr"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "undoc-members": False}
