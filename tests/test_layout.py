"""The house rules of the layout, read from the source itself (docs/architecture.md).

Imports run downward only (the doors api/, cli/, tasks/ -> workers/ -> core/ -> models/), no
name is imported under another, modules stay small, only the request dependency commits in
api/, and subscription statuses are spelled in one place. The envelope's shape is read from the
built application (tests/test_layout_envelope.py).
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("api", "core", "tasks", "workers", "models", "cli")
MAX_MODULE_LINES = 400
STATUSES_MODULE = Path("core/billing/statuses.py")
# Functions whose status words are another Stripe object's (a meter's), not a subscription's.
OTHER_STATUS_VOCABULARIES = {(Path("core/billing/gateway.py"), "find_meter")}
# Who may import whom (docs/architecture.md, "The layers"). The doors (api/, cli/, tasks/) never
# import each other: the CLI starts the API by its import path and any door sends a task by its
# name (workers/task_names.py). sdk/ is the instances' SDK: it imports nothing of the service.
MAY_IMPORT = {
    "api": {"api", "workers", "core", "models"},
    "cli": {"cli", "workers", "core", "models"},
    "tasks": {"tasks", "workers", "core", "models"},
    "workers": {"workers", "core", "models"},
    "core": {"core", "models"},
    "models": {"models"},
    "sdk": set(),
}
# Where no module or name is imported under another name (`import a as b`, `from a import b as
# c`): a name says what is inside. Re-exporting a name as itself (`b as b`) is not another name.
NAMED_AS_THEY_ARE = ("api", "cli", "core", "tasks", "workers", "models", "sdk", "bench", "tests")
# Where no module is over MAX_MODULE_LINES: all of the project's Python, its tests too.
KEPT_SMALL = NAMED_AS_THEY_ARE


def _modules(*packages: str) -> Iterator[Path]:
    for package in packages:
        for path in sorted((ROOT / package).rglob("*.py")):
            yield path.relative_to(ROOT)


def _tree(path: Path) -> ast.Module:
    return ast.parse((ROOT / path).read_text(), filename=str(path))


def _imported_modules(path: Path) -> Iterator[tuple[int, str]]:
    """Every module the file imports, at the top or inside a function, as a dotted name."""
    package_parts = list(path.with_suffix("").parts[:-1])
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package_parts[: len(package_parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def _top_package(module: str) -> str:
    return module.split(".", 1)[0]


@pytest.mark.parametrize("layer", MAY_IMPORT)
def test_imports_run_downward(layer: str) -> None:
    """Every import of every module of the layer, lazy ones inside functions too."""
    forbidden = set(MAY_IMPORT) - {"sdk"} - MAY_IMPORT[layer]
    found: dict[str, str] = {}
    for path in _modules(layer):
        for line, module in _imported_modules(path):
            if _top_package(module) in forbidden:
                found.setdefault(f"{path}:{line}", module)  # the module, then its names
    breaches = [f"{where} imports {module}" for where, module in sorted(found.items())]
    allowed = ", ".join(sorted(MAY_IMPORT[layer])) or "nothing of the service"
    assert not breaches, f"{layer}/ may import {allowed} only:\n" + "\n".join(breaches)


def test_nothing_is_imported_under_another_name() -> None:
    renamed = [
        f"{path}:{node.lineno} {alias.name} as {alias.asname}"
        for path in _modules(*NAMED_AS_THEY_ARE)
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
        if alias.asname is not None and alias.asname != alias.name
    ]
    assert not renamed, (
        "import the name as it is (rename it where it is defined if it is ambiguous, or import "
        "its module):\n" + "\n".join(renamed)
    )


def test_no_module_is_over_400_lines() -> None:
    too_long = [
        f"{path}: {lines} lines"
        for path in _modules(*KEPT_SMALL)
        if (lines := len((ROOT / path).read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not too_long, (
        f"split these by responsibility (limit {MAX_MODULE_LINES} lines):\n" + "\n".join(too_long)
    )


def test_only_the_request_dependency_commits_in_api() -> None:
    commits = [
        f"{path}:{node.lineno}"
        for path in _modules("api")
        if path != Path("api/deps.py")
        for node in ast.walk(_tree(path))
        if isinstance(node, ast.Attribute) and node.attr == "commit"
    ]
    assert not commits, (
        "endpoints never commit; api/deps.py get_db owns the transaction:\n" + "\n".join(commits)
    )


def _status_values() -> set[str]:
    from core.billing.statuses import SubscriptionStatus

    return {status.value for status in SubscriptionStatus}


def _names_a_status(node: ast.AST | None) -> bool:
    if isinstance(node, ast.Name):
        return "status" in node.id.lower()
    if isinstance(node, ast.Attribute):
        return "status" in node.attr.lower()
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return "status" in node.value.lower()
    return False


def _used_as_status(constant: ast.Constant, parents: dict[ast.AST, ast.AST]) -> bool:
    """A status literal compared, collected, or given to something named status; a dict key,
    a SQL label or a sentence that happens to be the word "active" is not one."""
    node: ast.AST = constant
    parent = parents.get(node)
    # Inside a literal collection (frozenset({...})) or a conditional expression, what matters
    # is how the collection or the expression is used.
    in_collection = False
    while isinstance(parent, ast.Set | ast.List | ast.Tuple | ast.IfExp) or _is_set_call(parent):
        in_collection = in_collection or not isinstance(parent, ast.IfExp)
        node, parent = parent, parents.get(parent)
    if isinstance(parent, ast.Compare):
        return True
    if isinstance(parent, ast.keyword):
        return parent.arg is not None and "status" in parent.arg.lower()
    if isinstance(parent, ast.Assign):
        # A module-level set of statuses is a status set of its own, whatever its name.
        return any(_names_a_status(target) for target in parent.targets) or in_collection
    if isinstance(parent, ast.AnnAssign):
        return _names_a_status(parent.target) or in_collection
    if isinstance(parent, ast.Dict) and node in parent.values:
        return _names_a_status(parent.keys[parent.values.index(node)])
    if isinstance(parent, ast.Return):
        return True
    return isinstance(parent, ast.Call) and any(_names_a_status(arg) for arg in parent.args)


def _is_set_call(node: ast.AST | None) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in {"frozenset", "set"}
    )


def test_no_raw_subscription_status_strings_in_core() -> None:
    statuses = _status_values()
    raw = []
    for path in _modules("core"):
        if path == STATUSES_MODULE:
            continue
        tree = _tree(path)
        parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
        exempt = {
            id(inner)
            for function in ast.walk(tree)
            if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef)
            and (path, function.name) in OTHER_STATUS_VOCABULARIES
            for inner in ast.walk(function)
        }
        raw.extend(
            f"{path}:{node.lineno} {node.value!r}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value in statuses
            and id(node) not in exempt
            and _used_as_status(node, parents)
        )
    assert not raw, (
        "spell statuses with core/billing/statuses.py (SubscriptionStatus or a named set):\n"
        + "\n".join(raw)
    )


SETTINGS_PROBE = """
import core.settings

original = core.settings.Settings.__init__


def refuse(self, *args, **kwargs):
    import traceback

    traceback.print_stack(limit=6)
    raise SystemExit("settings read at import time")


core.settings.Settings.__init__ = refuse
import {modules}
"""


def test_importing_the_entry_points_reads_no_settings() -> None:
    """Nothing is built at import time that needs settings: batchers, the Celery app, engines
    are made by factories when a process starts (so imports are cheap and tests can configure)."""
    modules = "api.app, cli.main, tasks.billing, tasks.licenses, tasks.usage"
    probe = subprocess.run(
        [sys.executable, "-c", SETTINGS_PROBE.format(modules=modules)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=120,
    )
    assert probe.returncode == 0, "a module reads the settings when imported:\n" + probe.stderr


def _core_import_graph() -> dict[str, set[str]]:
    """core/'s modules and the core/ modules each imports (at the top or inside a function)."""
    modules = {}
    for path in _modules("core"):
        name = ".".join(path.with_suffix("").parts).removesuffix(".__init__")
        modules[name] = path
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        imported = set()
        for _, module in _imported_modules(path):
            while module and module not in modules:
                module = module.rpartition(".")[0]
            if module and module != name:
                imported.add(module)
        graph[name] = imported
    return graph


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    circles.append(sorted(group))
    return circles


def test_no_import_circles_inside_core() -> None:
    circles = _circles(_core_import_graph())
    assert not circles, (
        "modules of core/ that import each other (move what both need one floor down):\n"
        + "\n".join(" <-> ".join(circle) for circle in circles)
    )


# Package imports that still close a circle between core/'s rooms, each against the direction
# the rooms should run in (usage < customers < billing < licensing). Strike one off when it
# is gone; add none.
PACKAGE_CIRCLE_DEBT = {
    # Creating a customer starts its trial and signs its first license.
    ("core.customers", "core.billing"),
    ("core.customers", "core.licensing"),
    # A subscription's change reissues the license.
    ("core.billing", "core.licensing"),
    # The report ingress checks the presented license.
    ("core.usage", "core.licensing"),
}


def _core_package_graph() -> dict[str, set[str]]:
    """core/'s rooms (its packages, with their sub-packages, and its top-level modules) and the
    rooms each imports, at the top or inside a function."""
    graph: dict[str, set[str]] = {}
    for module, imported in _core_import_graph().items():
        room = ".".join(module.split(".")[:2])
        graph.setdefault(room, set()).update(
            other for other in (".".join(m.split(".")[:2]) for m in imported) if other != room
        )
    return graph


def test_no_import_circles_between_core_packages() -> None:
    """A room of core/ imports another only if that one never imports it back, through any
    path (core.billing.metering reads core.usage's device-days; core/usage reads no billing)."""
    graph = _core_package_graph()
    gone = sorted(f"{a} -> {b}" for a, b in PACKAGE_CIRCLE_DEBT if b not in graph.get(a, set()))
    assert not gone, "no longer imported; strike off PACKAGE_CIRCLE_DEBT:\n" + "\n".join(gone)
    for importer, imported in PACKAGE_CIRCLE_DEBT:
        graph[importer].discard(imported)
    circles = _circles(graph)
    assert not circles, (
        "packages of core/ that import each other (move what both need one floor down, or pass "
        "it as an argument):\n" + "\n".join(" <-> ".join(circle) for circle in circles)
    )
