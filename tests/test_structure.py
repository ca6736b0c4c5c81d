"""The code's shape as docs/design.md draws it: one job a module, imports one way."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "flask_dualtoken"


def module_map() -> list[str]:
    design = (ROOT / "docs" / "design.md").read_text()
    section = design[design.index("**The module map**") :]
    return re.findall(r"^\| `(\w+)` \|", section, re.M)


def runtime_imports(path: Path) -> set[str]:
    """The package's modules ``path`` imports when it runs (not for type checking)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and getattr(child.test, "id", None) == "TYPE_CHECKING":
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.ImportFrom) and child.level == 1:
                if child.module:
                    found.add(child.module.split(".")[0])
                else:
                    found.update(alias.name for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text()))
    return found


def test_the_module_map_lists_every_module_once() -> None:
    listed = module_map()
    assert len(listed) == len(set(listed))
    assert set(listed) == {path.stem for path in PACKAGE.glob("*.py")}


def test_each_module_imports_only_modules_above_it_in_the_map() -> None:
    order = {name: i for i, name in enumerate(module_map())}
    for name, position in order.items():
        for imported in runtime_imports(PACKAGE / f"{name}.py"):
            assert order[imported] < position, f"{name} imports {imported}, listed below it"


def test_every_module_says_its_one_job_on_its_first_line() -> None:
    for path in PACKAGE.glob("*.py"):
        docstring = ast.get_docstring(ast.parse(path.read_text()))
        assert docstring, path.name
        assert path.read_text().startswith('"""'), path.name
