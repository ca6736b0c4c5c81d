"""Sphinx configuration. Built warnings-as-errors by ``tox -e docs``.

The reference tables (settings, error codes, routes) are generated from the code into
``_generated/`` on every build, so they cannot drift from it.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from reference import write_generated  # noqa: E402

write_generated(Path(__file__).parent / "_generated")

project = "flask-dualtoken"
author = "flask-dualtoken developers"
copyright = "2026, flask-dualtoken developers"
extensions = ["myst_parser", "sphinx.ext.autodoc"]
source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "_generated"]
myst_enable_extensions = ["colon_fence"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "description"
html_theme = "furo"
html_title = "flask-dualtoken"
