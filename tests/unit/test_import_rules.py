"""No cycle between core and the backup runner: core may import from the runner only its
light contract modules (its config and result models), never the pipeline or anything else;
and nothing the contract modules import, directly or through others, comes from core. The
operator then never loads the runner's machinery, and the runner may use core (retention)."""

from __future__ import annotations

from pathlib import Path

import runbook_operator
from tests.support.imports import import_statements

PACKAGE = Path(runbook_operator.__file__).resolve().parent
TOP = "runbook_operator"
CORE = f"{TOP}.core"
RUNNER = f"{TOP}.runner"
CONTRACT = (f"{RUNNER}.config", f"{RUNNER}.results")


def module_file(package_dir: Path, name: str) -> Path | None:
    """The file of module `name` under `package_dir` (the top package's directory)."""
    parts = name.split(".")
    if parts[0] != package_dir.name:
        return None
    base = package_dir.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def module_name(package_dir: Path, path: Path) -> str:
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(package_dir: Path, path: Path) -> list[tuple[str, set[str]]]:
    """The modules of the package `path` imports, each with the names it takes from it
    (`from runbook_operator.runner import config` imports the module `...runner.config`)."""
    found = []
    for module, names in import_statements(path, package_dir.parent):
        if module_file(package_dir, module) is None:
            continue
        submodules = {n for n in names if module_file(package_dir, f"{module}.{n}")}
        found.extend((f"{module}.{n}", set()) for n in sorted(submodules))
        if not names or set(names) - submodules:
            found.append((module, set(names) - submodules))
    return found


def runner_imports_of_core(package_dir: Path) -> dict[str, list[str]]:
    """Each core module's imports from the runner beyond the contract modules."""
    offenders: dict[str, list[str]] = {}
    for path in sorted((package_dir / "core").rglob("*.py")):
        importer = module_name(package_dir, path)
        for module, names in imported(package_dir, path):
            if not module.startswith(f"{RUNNER}.") or module in CONTRACT:
                continue
            offenders.setdefault(importer, []).append(module)
    return offenders


def reachable_from_contract(package_dir: Path) -> set[str]:
    """Every module of the package loaded by importing the contract modules: what they
    import, what that imports, and the packages on the way."""
    seen: set[str] = set()
    todo = [m for m in CONTRACT if module_file(package_dir, m) is not None]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        parents = [".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)]
        path = module_file(package_dir, name)
        assert path is not None
        todo.extend(parents + [module for module, _ in imported(package_dir, path)])
    return seen


def test_core_imports_only_the_runners_contract() -> None:
    assert runner_imports_of_core(PACKAGE) == {}


def test_the_runners_contract_loads_nothing_from_core() -> None:
    reached = reachable_from_contract(PACKAGE)
    assert f"{RUNNER}.config" in reached
    assert sorted(m for m in reached if m == CORE or m.startswith(f"{CORE}.")) == []


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / TOP / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root / TOP


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    package = tree(tmp_path, {
        "__init__.py": "", "core/__init__.py": "", "runner/__init__.py": "",
        "core/retention.py": "",
        "core/backuppolicy/__init__.py": "",
        "core/backuppolicy/job_outcome.py":
            f"from {RUNNER}.pipeline import BackupResult, run_backup\n",
        "core/decide.py": f"from {RUNNER} import config, pipeline\nfrom ..runner import crypto\n",
        "core/fine.py": f"from {RUNNER}.config import RunnerConfig\n",
        "runner/config.py": "from . import crypto\n",
        "runner/crypto.py": "def later():\n    from runbook_operator.core import retention\n",
        "runner/pipeline.py": "", "runner/prune.py": f"from {CORE}.retention import plan\n",
    })
    assert runner_imports_of_core(package) == {
        f"{CORE}.backuppolicy.job_outcome": [f"{RUNNER}.pipeline"],  # more than the results
        f"{CORE}.decide": [f"{RUNNER}.pipeline", f"{RUNNER}.crypto"],
    }
    assert f"{CORE}.retention" in reachable_from_contract(package)
    assert f"{RUNNER}.prune" not in reachable_from_contract(package)
