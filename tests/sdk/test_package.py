"""The SDK stands alone: PyJWT, httpx (and cryptography through pyjwt[crypto]) only."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from tests.helpers.processes import PROJECT_ROOT

SDK = PROJECT_ROOT / "sdk" / "python"
ALLOWED = {"jwt", "httpx", "cryptography", "zemfyre_license"}
MAX_LINES = 400


def _imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def test_the_sdk_imports_nothing_of_the_service_and_stays_small() -> None:
    modules = sorted((SDK / "zemfyre_license").glob("*.py"))
    assert modules
    for path in modules:
        foreign = _imported(path) - ALLOWED - set(sys.stdlib_module_names)
        assert not foreign, f"{path.name} imports {foreign}"
        assert len(path.read_text().splitlines()) <= MAX_LINES, path.name


def test_the_distribution_declares_only_its_two_dependencies() -> None:
    import tomllib

    project = tomllib.loads((SDK / "pyproject.toml").read_text())["project"]
    assert project["name"] == "zemfyre-license"
    assert sorted(project["dependencies"]) == ["httpx>=0.27", "pyjwt[crypto]>=2.8"]
    assert project["scripts"] == {"zemfyre-license": "zemfyre_license.cli:main"}
