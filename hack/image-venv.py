"""Builds one image's virtualenv at /opt/venv, in the Dockerfile's build stages.

    python3 image-venv.py dependencies IMAGE       the dependencies IMAGE needs
    python3 image-venv.py project IMAGE WHEEL_DIR  the project's wheel, then slimmed
    /opt/venv/bin/python3 image-venv.py check IMAGE  import what IMAGE's command can reach
                                                     (in the final stage: its own libraries)

pyproject.toml stays the one place dependencies and their versions are declared; this file
says only which of them an image leaves out, and what its command must be able to import.
Left out everywhere: pip and setuptools (nothing installs at run time), the packages' own test
suites, the Kubernetes client's asyncio copy (``kubernetes.aio``: the operator uses the
synchronous client, kopf its own aiohttp calls) and byte-code (Python compiles what it
imports at start-up). Runs on the build stage's Python, standard library only.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

VENV = Path("/opt/venv")
PYPROJECT = Path("pyproject.toml")

#: What each image leaves out of pyproject.toml's dependencies (names as PEP 503 normalises
#: them). The operator never talks to S3 (the runner does); the runner needs none of the
#: operator's Kubernetes, HTTP, scheduling or anomaly-detection packages.
LEAVE_OUT = {
    "operator": frozenset({"boto3"}),
    "runner": frozenset({"scikit-learn", "kopf", "kubernetes", "aiohttp", "httpx", "croniter",
                         "prometheus-client", "pyyaml"}),
}
#: Packages whose modules the image's command imports (every module in them), and single
#: modules imported lazily inside functions.
CHECKED = {
    "operator": (("runbook_operator.api", "runbook_operator.controllers",
                  "runbook_operator.core", "runbook_operator.integrations",
                  "runbook_operator.cli"), ("sklearn.ensemble",)),
    "runner": (("runbook_operator.runner",), ("runbook_operator.cli.main",
                                              "runbook_operator.cli.logs",
                                              "cryptography.hazmat.primitives.ciphers.aead")),
}
_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirements(pyproject: str, image: str) -> list[str]:
    """pyproject's dependency specifiers that `image` keeps, as written there."""
    declared = tomllib.loads(pyproject)["project"]["dependencies"]
    names = {}
    for spec in declared:
        match = _NAME.match(spec)
        if match is None:
            raise ValueError(f"cannot read a package name from {spec!r}")
        names[normalise(match.group(1))] = spec
    unknown = LEAVE_OUT[image] - names.keys()
    if unknown:
        raise ValueError(f"{image} leaves out {sorted(unknown)}, which pyproject.toml does "
                         "not declare")
    return [spec for name, spec in names.items() if name not in LEAVE_OUT[image]]


def check_program(image: str) -> str:
    """Python source that imports every module `image`'s command can reach (not the
    ``__main__`` modules, which would run)."""
    packages, modules = CHECKED[image]
    return (
        "import importlib, pkgutil\n"
        f"for name in {list(packages)!r}:\n"
        "    package = importlib.import_module(name)\n"
        "    for found in pkgutil.walk_packages(package.__path__, name + '.'):\n"
        "        if not found.name.endswith('.__main__'):\n"
        "            importlib.import_module(found.name)\n"
        f"for name in {list(modules)!r}:\n"
        "    importlib.import_module(name)\n"
    )


def _pip(*args: str) -> None:
    subprocess.run([str(VENV / "bin" / "pip"), *args], check=True)


def dependencies(image: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    listed = Path("requirements.txt")
    listed.write_text("\n".join(requirements(PYPROJECT.read_text(), image)) + "\n")
    _pip("install", "--no-compile", "--requirement", str(listed))


def project(image: str, wheels: Path) -> None:
    _pip("install", "--no-compile", "--no-deps", *map(str, sorted(wheels.glob("*.whl"))))
    _pip("uninstall", "--yes", "pip", "setuptools")
    [site] = VENV.glob("lib/python3*/site-packages")
    for tests in sorted(site.rglob("tests"), reverse=True):
        if tests.is_dir():
            shutil.rmtree(tests)
    shutil.rmtree(site / "kubernetes" / "aio", ignore_errors=True)
    for cache in list(VENV.rglob("__pycache__")):
        shutil.rmtree(cache)


def check(image: str) -> None:
    """Run on the final image's root, where a shared library its base lacks (numpy's
    libstdc++) fails the import, and so the build."""
    exec(compile(check_program(image), "<image check>", "exec"), {})


def main(argv: list[str]) -> int:
    commands = ("dependencies", "project", "check")
    if len(argv) < 2 or argv[0] not in commands or argv[1] not in LEAVE_OUT:
        print(__doc__, file=sys.stderr)
        return 2
    if argv[0] == "dependencies":
        dependencies(argv[1])
    elif argv[0] == "check":
        check(argv[1])
    else:
        project(argv[1], Path(argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
