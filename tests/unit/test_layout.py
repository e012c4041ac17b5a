"""The test tree's own rules: shared helpers live in tests/support, never in a test module, so
no test module imports another (a helper that moves cannot break a distant test)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def imported_modules(path: Path, root: Path = TESTS.parent) -> set[str]:
    """Absolute names of the modules `path` (under `root`) imports, relative ones resolved."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def test_no_test_module_imports_another() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        imports = {m for m in imported_modules(path)
                   if m.startswith("tests.") and m.rsplit(".", 1)[-1].startswith("test_")}
        if imports:
            offenders[str(path.relative_to(TESTS))] = sorted(imports)
    assert offenders == {}


def test_imported_modules_resolves_relative_imports(tmp_path: Path) -> None:
    probe = tmp_path / "tests" / "e2e" / "runner" / "test_probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("from . import test_mysql\nfrom .test_postgres import SCHEMA\n")
    assert {"tests.e2e.runner.test_mysql", "tests.e2e.runner.test_postgres"} <= (
        imported_modules(probe, tmp_path))
