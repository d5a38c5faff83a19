"""qianwen_ops/__init__.py's docstring is a true map: every module in its layer, no import from a lower
layer, and the public surface it shows is the package's."""

from __future__ import annotations

import ast
import re

import qianwen_ops
from conftest import SCRIPTS

PACKAGE = SCRIPTS / "qianwen_ops"


def layers() -> dict:
    """{module: layer number} from the docstring's numbered list."""
    doc = qianwen_ops.__doc__
    found = {}
    for number, body in re.findall(r"^(\d)\. (.*?)(?=^\d\. |\Z)", doc[doc.index("The modules, in layers"):],
                                    re.M | re.S):
        for name in re.findall(r"``(\w+)``", body):
            if (PACKAGE / f"{name}.py").exists():
                found.setdefault(name, int(number))
    return found


def imports(name: str) -> set:
    tree = ast.parse((PACKAGE / f"{name}.py").read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            found.update([node.module.split(".")[0]] if node.module else [a.name for a in node.names])
    return found - {name}


def test_every_module_is_on_the_map():
    modules = {path.stem for path in PACKAGE.glob("*.py")} - {"__init__"}
    assert set(layers()) == modules


def test_no_module_imports_from_a_lower_layer():
    layer = layers()
    upward = [f"{name} (layer {layer[name]}) imports {dep} (layer {layer[dep]})"
              for name in layer for dep in imports(name) if dep in layer and layer[dep] > layer[name]]
    assert not upward


def test_the_docstring_shows_the_whole_public_surface():
    shown = qianwen_ops.__doc__.split("The modules, in layers")[0]
    assert all(re.search(rf"\b{name}\b", shown) for name in qianwen_ops.__all__), qianwen_ops.__all__
    assert all(getattr(qianwen_ops, name) is not None for name in qianwen_ops.__all__)
