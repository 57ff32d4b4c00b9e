"""Tests go through public entry points: none imports or touches a ``dvm`` name starting with ``_``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
NOT_DVM = {"sys"}  # ``sys._getframe``: the standard library's, not ours


def private_uses(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    own = {  # names the test file defines itself may be private to it
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dvm"):
            parts = (node.module or "").split(".")
            names = [alias.name for alias in node.names]
            found += [f"from {node.module} import {n}" for n in names if n.startswith("_")]
            found += [f"import of {node.module}" for p in parts if p.startswith("_")]
        elif isinstance(node, ast.Attribute) and _private(node.attr) and node.attr not in own:
            stdlib = isinstance(node.value, ast.Name) and node.value.id in NOT_DVM
            found += [] if stdlib else [f"line {node.lineno}: .{node.attr}"]
    return found


def _private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


@pytest.mark.parametrize("path", sorted(TESTS.rglob("*.py")), ids=lambda p: str(p.relative_to(TESTS)))
def test_no_test_imports_or_touches_a_private_dvm_name(path):
    assert private_uses(path) == []
