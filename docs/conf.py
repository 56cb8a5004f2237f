"""Sphinx configuration of the documentation site (`make docs`: warnings are errors)."""
import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("."))

project = "augpipe"
author = "the augpipe authors"
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated", "benchmarks_page.py", "tables.py"]
myst_heading_anchors = 4
autodoc_default_options = {"members": True, "undoc-members": True, "show-inheritance": False}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_ivar = True
html_theme = "furo"
html_title = "augpipe"
suppress_warnings = ["myst.xref_missing"] if os.environ.get("DOCS_LENIENT") else []


def setup(app):
    import benchmarks_page
    import tables
    app.connect("builder-inited", benchmarks_page.write)
    app.connect("builder-inited", tables.write)
