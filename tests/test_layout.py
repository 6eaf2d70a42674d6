"""The test suite's own layout: helpers live in ``tests/support/``, never in a conftest."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).parent


def conftest_imports(source: str) -> list[tuple[int, str]]:
    """Every import of a conftest module in ``source``: (line, module)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            modules = [node.module] if node.module else [alias.name for alias in node.names]
        elif isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        else:
            continue
        found += [(node.lineno, m) for m in modules if m.split(".")[-1] == "conftest"]
    return found


def test_no_module_imports_a_conftest() -> None:
    """pytest finds fixtures by name; plain helpers and constants belong in tests/support/."""
    offenders = [
        f"{path.relative_to(TESTS)}:{line} imports {module}"
        for path in sorted(TESTS.rglob("*.py"))
        for line, module in conftest_imports(path.read_text())
    ]
    assert offenders == [], "move these helpers to tests/support/:\n" + "\n".join(offenders)


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from tests.chat.conftest import new_chat", "tests.chat.conftest"),
        ("from .conftest import new_chat", "conftest"),
        ("from . import conftest", "conftest"),
        ("import tests.conftest", "tests.conftest"),
        ("def f():\n    from tests.conftest import running", "tests.conftest"),
    ],
)
def test_the_check_finds_every_form_of_conftest_import(source: str, module: str) -> None:
    assert [found for _, found in conftest_imports(source)] == [module]


def test_the_check_ignores_other_imports() -> None:
    source = "from tests.support.chat import new_chat\nimport conftests_of_mine\n"
    assert conftest_imports(source) == []
