"""The shape ARCHITECTURE.md promises: rooms import only downwards, and nothing grows too big.

Read from the source with ``ast``, so the checks see every import, including those inside
functions (which keep ``promptkit --help`` fast) and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
PACKAGE = REPO / "promptkit"

BASE = {"errors", "config", "files", "redact", "terminal", "tokens", "datasets", "results"}
# room -> rooms it may import (itself always allowed)
ALLOWED = {
    "base": set(),
    "testing": set(),
    "scoring": {"base"},
    "builders": {"base", "scoring"},
    "templates": {"base", "builders"},
    "running": {"base", "scoring", "builders", "templates"},
    "comparing": {"base", "running"},
    "reporting": {"base", "running", "comparing"},
    "app": {"base", "testing", "scoring", "builders", "templates", "running", "comparing",
            "reporting"},
}

MODULE_LINES = 500
FUNCTION_LINES = 60
COMMAND_BODY_LINES = 15
# Allowed to be bigger, each with the reason. Keep this list short.
BIG_MODULES: dict[str, str] = {}
BIG_FUNCTIONS: dict[str, str] = {}


def modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def room(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "app"  # promptkit/__init__.py: the public facade
    if parts[1] in BASE:
        return "base"
    if parts[1] in ALLOWED:
        return parts[1]
    return "app"  # api, cli, pytest_plugin


def imported_modules(path: Path) -> set[str]:
    """The promptkit modules a file imports (relative imports resolved)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("promptkit")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            if not target.startswith("promptkit"):
                continue
            found.add(target)
            if node.module is None or node.level:  # `from . import x`: x may be a module
                found |= {f"{target}.{alias.name}" for alias in node.names
                          if (PACKAGE.parent / f"{target}.{alias.name}".replace(".", "/")
                              ).with_suffix(".py").exists()}
    return found


def test_rooms_import_only_the_rooms_below_them() -> None:
    wrong = []
    for path in modules():
        here = room(module_name(path))
        for target in imported_modules(path):
            there = room(target)
            if there != here and there not in ALLOWED[here] and target != "promptkit":
                wrong.append(f"{module_name(path)} ({here}) imports {target} ({there})")
    assert not wrong, "\n".join(wrong)


def test_the_map_names_every_room() -> None:
    text = (REPO / "ARCHITECTURE.md").read_text()
    for name in ALLOWED:
        assert re.search(rf"\*\*{name}\*\*", text), name
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    assert folders - {"cli"} <= set(ALLOWED), folders - set(ALLOWED)
    unnamed = [module_name(p) for p in modules()
               if p.stem not in ("__init__", "__main__") and not re.search(
                   rf"\b{p.stem}\b", text)]
    assert not unnamed, f"modules missing from ARCHITECTURE.md: {unnamed}"


def _functions(tree: ast.AST) -> list[ast.FunctionDef | ast.AsyncFunctionDef]:
    return [node for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)]


def _body_lines(function: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    body = function.body
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        body = body[1:]  # the docstring is the command's --help: not code
    if not body:
        return 0
    return body[-1].end_lineno - body[0].lineno + 1


def _is_command(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    for decorator in function.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Attribute) and call.attr in ("command", "group"):
            return True
    return False


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    name = str(path.relative_to(REPO))
    lines = len(path.read_text().splitlines())
    assert lines <= MODULE_LINES or name in BIG_MODULES, f"{name}: {lines} lines"
    for function in _functions(ast.parse(path.read_text())):
        where = f"{name}::{function.name}"
        length = _body_lines(function)  # code, not the docstring
        assert length <= FUNCTION_LINES or where in BIG_FUNCTIONS, f"{where}: {length} lines"
        if _is_command(function):
            body = _body_lines(function)
            assert body <= COMMAND_BODY_LINES, f"{where}: a command body of {body} lines"


def test_the_checks_can_fail() -> None:
    wrong = ast.parse("def f():\n" + "    x = 1\n" * (FUNCTION_LINES + 1))
    assert _body_lines(_functions(wrong)[0]) > FUNCTION_LINES
    assert room("promptkit.scoring.engine") == "scoring"
    assert "running" not in ALLOWED["scoring"]
    command = ast.parse("@cli.command()\ndef c():\n    '''help'''\n" + "    x = 1\n" * 20)
    function = _functions(command)[0]
    assert _is_command(function) and _body_lines(function) == 20
