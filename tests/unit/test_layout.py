"""The test tree's own rules: shared helpers live in tests/support, never in a test module, so
no test module imports another (a helper that moves cannot break a distant test)."""

from __future__ import annotations

from pathlib import Path

from tests.support.imports import imported_modules

TESTS = Path(__file__).resolve().parents[1]


def test_no_test_module_imports_another() -> None:
    offenders = {}
    for path in sorted(TESTS.rglob("*.py")):
        imports = {m for m in imported_modules(path, TESTS.parent)
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
