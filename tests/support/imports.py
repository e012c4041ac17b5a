"""What a Python file imports, read with `ast` (nothing is executed): the tests that hold the
source tree to its layout rules read imports through here."""

from __future__ import annotations

import ast
from pathlib import Path


def import_statements(path: Path, root: Path) -> list[tuple[str, tuple[str, ...]]]:
    """`(module, names)` per import in `path` (a file under `root`, the directory that holds
    the top-level packages): `import a.b` gives `("a.b", ())`, `from a import b, c` gives
    `("a", ("b", "c"))`; relative imports are resolved to absolute names. Imports inside
    functions count too: they run as surely, only later."""
    package = path.relative_to(root).with_suffix("").parts[:-1]
    found: list[tuple[str, tuple[str, ...]]] = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.extend((alias.name, ()) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            module = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            found.append((module, tuple(alias.name for alias in node.names)))
    return found


def imported_modules(path: Path, root: Path) -> set[str]:
    """Absolute names `path` imports: each module, and `module.name` for each name taken from
    it (which is a module when `name` is a submodule)."""
    found = set()
    for module, names in import_statements(path, root):
        found.add(module)
        found.update(f"{module}.{name}" for name in names)
    return found
