"""The shape ARCHITECTURE.md promises: rooms import only downwards, and nothing grows too big.

The map is the table in ARCHITECTURE.md: one row per room (and folder) with its modules and
the rooms it may import. Imports are read from the source with ``ast``, so the checks see
every import, including those inside functions (which keep ``promptkit --help`` fast) and
under ``TYPE_CHECKING``. Each check is a function returning what is wrong, so the tests at
the bottom can show it fails on a scratch copy of the package or on made-up source.
"""

from __future__ import annotations

import ast
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).parent.parent
FACADE = "promptkit"  # promptkit/__init__.py: `import promptkit`, `from promptkit import X`

MODULE_LINES = 500
FUNCTION_LINES = 60
COMMAND_BODY_LINES = 15
# Allowed to be bigger, each with the reason. Keep this list short.
BIG_MODULES: dict[str, str] = {}
BIG_FUNCTIONS: dict[str, str] = {}


# -- the map --

@dataclass
class Map:
    """What ARCHITECTURE.md's table says, and what is wrong with the table itself."""

    rooms: list[str] = field(default_factory=list)  # top to bottom
    modules: dict[str, str] = field(default_factory=dict)  # dotted module name -> room
    allowed: dict[str, set[str]] = field(default_factory=dict)  # room -> rooms below it
    problems: list[str] = field(default_factory=list)


_ROW = re.compile(r"\|\s*(\w+)\s*\|\s*`([\w/]+)`\s*\|([^|]*)\|([^|]*)\|")
_BACKTICKED = re.compile(r"`([^`]*)`")
_IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def read_map(text: str) -> Map:
    """The map from the first table of ``text``: ``| room | `folder/` | modules | may import |``.

    A folder's ``__init__`` belongs to its first row unless a row names it.
    """
    table = _first_table(text)
    the_map = Map()
    folders: list[tuple[str, str]] = []
    for line in table[2:]:  # below the header and its separator
        row = _ROW.fullmatch(line.strip())
        if row is None:
            the_map.problems.append(f"not a row of the map: {line!r}")
            continue
        room, folder, modules, allowed = row.groups()
        if room not in the_map.rooms:
            the_map.rooms.append(room)
        elif the_map.rooms[-1] != room:
            the_map.problems.append(f"the rows of room {room} are not together")
        prefix = folder.strip("/").replace("/", ".")
        folders.append((prefix, room))
        for token in _BACKTICKED.findall(modules):
            if not _IDENTIFIER.fullmatch(token):
                the_map.problems.append(f"{folder}: `{token}` is not a module name")
                continue
            name = prefix if token == "__init__" else f"{prefix}.{token}"
            if name in the_map.modules:
                the_map.problems.append(f"{name} is on the map twice")
            the_map.modules[name] = room
        the_map.allowed.setdefault(room, set()).update(_BACKTICKED.findall(allowed))
    for prefix, room in folders:
        the_map.modules.setdefault(prefix, room)
    for room, below in the_map.allowed.items():
        for other in sorted(below):
            if other not in the_map.rooms:
                the_map.problems.append(f"{room} may import {other}, which is not a room")
            elif the_map.rooms.index(other) <= the_map.rooms.index(room):
                the_map.problems.append(f"{room} may import {other}, which is not below it")
    if not the_map.rooms:
        the_map.problems.append("no map: ARCHITECTURE.md has no table of rooms")
    return the_map


def _first_table(text: str) -> list[str]:
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if line.startswith("|")), len(lines))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")),
               len(lines))
    return lines[start:end]


def project_map(root: Path = REPO) -> Map:
    return read_map((root / "ARCHITECTURE.md").read_text())


def modules(root: Path = REPO) -> list[Path]:
    """The package's modules: .py files in folders with an ``__init__.py`` (others are data)."""
    package = root / "promptkit"
    return sorted(path for path in package.rglob("*.py")
                  if all((folder / "__init__.py").is_file() for folder in path.parents
                         if folder.is_relative_to(package)))


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def map_problems(the_map: Map, root: Path = REPO) -> list[str]:
    """Modules missing from the map, map entries with no module, rooms with no paragraph."""
    problems = list(the_map.problems)
    text = (root / "ARCHITECTURE.md").read_text()
    for room in the_map.rooms:
        if not re.search(rf"\*\*{room}\*\*", text):
            problems.append(f"room {room} has no paragraph (**{room}**) in ARCHITECTURE.md")
    found = {module_name(path, root): path for path in modules(root)}
    for name, path in found.items():
        if name not in the_map.modules:
            problems.append(f"{path.relative_to(root)} is not on the map: add it to its "
                            "room's row in ARCHITECTURE.md")
    for name in the_map.modules:
        if name not in found:
            problems.append(f"ARCHITECTURE.md names {name}, which does not exist")
    return problems


# -- imports --

def _ours(name: str) -> bool:
    return name == FACADE or name.startswith(FACADE + ".")


def _is_module(name: str, root: Path) -> bool:
    path = root / name.replace(".", "/")
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported_modules(source: str, module: str, root: Path = REPO, *,
                     package: bool = False) -> set[str]:
    """The promptkit modules ``source`` (the module ``module``) imports.

    Relative imports are resolved; ``from package import name`` imports the module (or
    package) ``package.name`` when there is one, else ``package`` itself, so
    ``from promptkit import evaluate`` imports the facade and ``from .. import reporting``
    the reporting package. ``importlib.import_module("promptkit.x")`` counts too.
    """
    here = module if package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if _ours(alias.name)}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                target = ".".join([*parts, node.module] if node.module else parts)
            else:
                target = node.module or ""
            if not _ours(target):
                continue
            for alias in node.names:
                name = f"{target}.{alias.name}"
                found.add(name if _is_module(name, root) else target)
        elif isinstance(node, ast.Call) and _imports_by_name(node):
            found.add(node.args[0].value)
    return found


def _imports_by_name(call: ast.Call) -> bool:
    function = call.func
    name = function.attr if isinstance(function, ast.Attribute) else getattr(function, "id", "")
    return (name in ("import_module", "__import__") and bool(call.args)
            and isinstance(call.args[0], ast.Constant) and isinstance(call.args[0].value, str)
            and _ours(call.args[0].value))


def wrong_imports(module: str, source: str, the_map: Map, root: Path = REPO, *,
                  package: bool = False) -> list[str]:
    """The imports of ``module`` that reach a room it may not import (or no room at all)."""
    here = the_map.modules.get(module)
    if here is None:
        return []  # map_problems says so
    wrong = []
    for target in sorted(imported_modules(source, module, root, package=package)):
        there = the_map.modules.get(target)
        if there is None:
            wrong.append(f"{module} ({here}) imports {target}, which is not on the map")
        elif there != here and there not in the_map.allowed.get(here, set()):
            wrong.append(f"{module} ({here}) imports {target} ({there})")
    return wrong


def import_problems(the_map: Map, root: Path = REPO) -> list[str]:
    wrong = []
    for path in modules(root):
        wrong += wrong_imports(module_name(path, root), path.read_text(), the_map, root,
                               package=path.name == "__init__.py")
    return wrong


# -- sizes --

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


_CLICK = ("click", "rich_click", "typer")


def _command_decorators(tree: ast.AST) -> set[str]:
    """Names that make a command: ``command`` and ``group``, and what click's are imported as
    (``from click import command as cmd``)."""
    names = {"command", "group"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in _CLICK:
            names |= {alias.asname or alias.name for alias in node.names
                      if alias.name in ("command", "group")}
    return names


def _is_command(function: ast.FunctionDef | ast.AsyncFunctionDef, names: set[str]) -> bool:
    """``@cli.command()``, ``@click.command``, ``@command()``, ``@cmd(...)`` and the like."""
    for decorator in function.decorator_list:
        call = decorator.func if isinstance(decorator, ast.Call) else decorator
        if isinstance(call, ast.Attribute) and call.attr in ("command", "group"):
            return True
        if isinstance(call, ast.Name) and call.id in names:
            return True
    return False


def size_problems(source: str, name: str) -> list[str]:
    """A module over MODULE_LINES, a function over FUNCTION_LINES, a command over
    COMMAND_BODY_LINES (docstrings left out)."""
    problems = []
    lines = len(source.splitlines())
    if lines > MODULE_LINES and name not in BIG_MODULES:
        problems.append(f"{name}: {lines} lines")
    tree = ast.parse(source)
    commands = _command_decorators(tree)
    for function in _functions(tree):
        where = f"{name}::{function.name}"
        length = _body_lines(function)
        if length > FUNCTION_LINES and where not in BIG_FUNCTIONS:
            problems.append(f"{where}: {length} lines")
        if _is_command(function, commands) and length > COMMAND_BODY_LINES:
            problems.append(f"{where}: a command body of {length} lines")
    return problems


# -- the project keeps to its map --

def test_the_map_reads_and_names_every_module() -> None:
    problems = map_problems(project_map())
    assert not problems, "\n".join(problems)


def test_rooms_import_only_the_rooms_below_them() -> None:
    wrong = import_problems(project_map())
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("path", modules(), ids=lambda p: str(p.relative_to(REPO)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    problems = size_problems(path.read_text(), str(path.relative_to(REPO)))
    assert not problems, "\n".join(problems)


# -- each check can fail --

SNEAKY = """\
from promptkit import evaluate
from promptkit import api


def later():
    from .. import reporting
    from . import verdicts
    import promptkit.running.spec
    import importlib
    return importlib.import_module("promptkit.comparing")
"""


def test_upward_imports_through_the_facade_and_packages_are_caught() -> None:
    the_map = project_map()
    assert the_map.modules[FACADE] == "app"
    assert imported_modules(SNEAKY, "promptkit.scoring.sneaky") == {
        "promptkit", "promptkit.api", "promptkit.reporting", "promptkit.scoring.verdicts",
        "promptkit.running.spec", "promptkit.comparing"}
    the_map.modules["promptkit.scoring.sneaky"] = "scoring"
    assert wrong_imports("promptkit.scoring.sneaky", SNEAKY, the_map) == [
        "promptkit.scoring.sneaky (scoring) imports promptkit (app)",
        "promptkit.scoring.sneaky (scoring) imports promptkit.api (app)",
        "promptkit.scoring.sneaky (scoring) imports promptkit.comparing (comparing)",
        "promptkit.scoring.sneaky (scoring) imports promptkit.reporting (reporting)",
        "promptkit.scoring.sneaky (scoring) imports promptkit.running.spec (running)",
    ]


def test_from_package_import_reads_modules_and_names_apart() -> None:
    # a name from a package's __init__ is the package; a module of it is that module
    source = "from promptkit.scoring import GradingResult, verdicts\nfrom . import fake\n"
    assert imported_modules(source, "promptkit.testing", package=True) == {
        "promptkit.scoring", "promptkit.scoring.verdicts", "promptkit.testing.fake"}
    assert imported_modules("import promptkit_extra\nfrom promptkitx import y\n",
                            "promptkit.errors") == set()


def _scratch_copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "promptkit", tmp_path / "promptkit",
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "ARCHITECTURE.md", tmp_path / "ARCHITECTURE.md")
    return tmp_path


def test_a_module_missing_from_the_map_fails(tmp_path: Path) -> None:
    root = _scratch_copy(tmp_path)
    before = set(map_problems(project_map(root), root))  # what the tree has already
    (root / "promptkit" / "scoring" / "sneaky.py").write_text(SNEAKY)
    (root / "promptkit" / "helpers.py").write_text('"""A new top-level module."""\n')
    # "data" is a word of the prose, yet no row lists it
    (root / "promptkit" / "running" / "data.py").write_text('"""Not on the map."""\n')
    (root / "promptkit" / "extras").mkdir()
    (root / "promptkit" / "extras" / "__init__.py").write_text("")
    problems = set(map_problems(project_map(root), root)) - before
    assert problems == {
        f"{path} is not on the map: add it to its room's row in ARCHITECTURE.md"
        for path in ("promptkit/extras/__init__.py", "promptkit/helpers.py",
                     "promptkit/running/data.py", "promptkit/scoring/sneaky.py")}
    assert "data" in (root / "ARCHITECTURE.md").read_text()


def test_a_scratch_module_on_the_map_is_checked_for_imports(tmp_path: Path) -> None:
    root = _scratch_copy(tmp_path)
    the_map = project_map(root)
    before = set(map_problems(the_map, root)), set(import_problems(the_map, root))
    (root / "promptkit" / "scoring" / "sneaky.py").write_text(SNEAKY)
    text = (root / "ARCHITECTURE.md").read_text()
    text = text.replace("`verdicts`, ", "`verdicts`, `sneaky`, ", 1)
    (root / "ARCHITECTURE.md").write_text(text.replace("`errors`, ", "`errors`, `ghost`, ", 1))
    the_map = project_map(root)
    assert set(map_problems(the_map, root)) - before[0] == {
        "ARCHITECTURE.md names promptkit.ghost, which does not exist"}
    wrong = set(import_problems(the_map, root)) - before[1]
    assert wrong == {f"promptkit.scoring.sneaky (scoring) imports {target}"
                     for target in ("promptkit (app)", "promptkit.api (app)",
                                    "promptkit.comparing (comparing)",
                                    "promptkit.reporting (reporting)",
                                    "promptkit.running.spec (running)")}


def test_a_broken_map_fails() -> None:
    text = """\
intro

| room | folder | modules | may import |
| --- | --- | --- | --- |
| app | `promptkit/` | `api`, `cli/`, `api` | `base` `plugins` |
| base | `promptkit/` | `errors` | `app` |
| app | `promptkit/cli/` | `app` | |
| room without a folder |
"""
    assert read_map(text).problems == [
        "promptkit/: `cli/` is not a module name",
        "promptkit.api is on the map twice",
        "the rows of room app are not together",
        "not a row of the map: '| room without a folder |'",
        "app may import plugins, which is not a room",
        "base may import app, which is not below it",
    ]
    assert read_map("no table here").problems == [
        "no map: ARCHITECTURE.md has no table of rooms"]


def test_long_modules_functions_and_commands_fail() -> None:
    long_function = "def f():\n" + "    x = 1\n" * (FUNCTION_LINES + 1)
    assert size_problems(long_function, "m.py") == [f"m.py::f: {FUNCTION_LINES + 1} lines"]
    assert size_problems("x = 1\n" * (MODULE_LINES + 1), "m.py") == [
        f"m.py: {MODULE_LINES + 1} lines"]
    body = "    '''The --help text.'''\n" + "    x = 1\n" * (COMMAND_BODY_LINES + 1)
    too_long = f"a command body of {COMMAND_BODY_LINES + 1} lines"
    for header in ("@cli.command()\n", "@click.command\n", "@app.group(name='g')\n",
                   "from click import command\n\n@command()\n",
                   "from click import command\n\n@command\n",
                   "from click import group as grp\n\n@grp(invoke_without_command=True)\n"):
        assert size_problems(f"{header}def c():\n{body}", "cli.py") == [
            f"cli.py::c: {too_long}"], header
    assert size_problems(f"@functools.cache\ndef c():\n{body}", "m.py") == []
