"""Which images the runtime runs, and how each maps onto this checkout's environment.

An image here is not a filesystem: it is the image's config (entrypoint, cmd, env, user) plus
the host paths its root filesystem is made of, bound read-only into the sandbox. The project's
images (the operator/runner and the demo app) run from the interpreter and virtualenv running
this code, i.e. from the checkout; the gateway's image (Traefik) runs the binary
``hack/build-traefik.sh`` built, whatever tag a manifest names.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import runbook_operator

#: Repositories of the project's images (any tag).
OPERATOR_REPOSITORY = "runbook-operator"
DEMO_APP_REPOSITORY = "runbook-demo-app"
PROJECT_REPOSITORIES = (OPERATOR_REPOSITORY, DEMO_APP_REPOSITORY)
#: The gateway controller's image, run from the binary built from its Go module.
GATEWAY_REPOSITORY = "traefik"
#: Every repository the runtime runs for real; kwok fakes pods of any other image.
RUNTIME_REPOSITORIES = (*PROJECT_REPOSITORIES, GATEWAY_REPOSITORY)
#: The system part of every image's root filesystem (the dump clients live in /usr).
SYSTEM_PATHS = ("/usr", "/etc")
SYSTEM_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib", "/lib64": "usr/lib64"}
_NONROOT = 65532


@dataclass(frozen=True)
class ImageConfig:
    """What an OCI image config says (Entrypoint, Cmd, Env, User, WorkingDir), and the host
    paths standing in for its layers."""

    entrypoint: tuple[str, ...]
    cmd: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    uid: int = 0
    gid: int = 0
    working_dir: str = "/"
    root_paths: tuple[str, ...] = field(default=SYSTEM_PATHS)


def image_repository(image: str) -> str:
    """The image reference without its tag or digest: ``a/b:1.0`` → ``a/b``.

    A colon only starts a tag after the last slash (``localhost:5000/x`` has a port)."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    return name[:colon] if colon > slash else name


def is_runtime_image(image: str) -> bool:
    """Whether pods of `image` run for real (else kwok fakes them)."""
    return image_repository(image) in RUNTIME_REPOSITORIES


def kwok_exclusion() -> dict[str, object]:
    """A kwok Stage selector requirement matching pods none of whose containers has an image
    the runtime runs: kwok's NotIn is true when no value of the query is in the set. The jq
    query strips tags exactly as :func:`image_repository` does."""
    query = ('.spec.containers.[].image | split("@")[0] '
             '| if test(":[^:/]*$") then sub(":[^:/]*$"; "") else . end')
    return {"key": query, "operator": "NotIn", "values": list(RUNTIME_REPOSITORIES)}


def operator_image() -> ImageConfig:
    """The operator/runner image as the Dockerfile builds it, from this checkout's venv."""
    venv = Path(sys.prefix)
    package_root = Path(runbook_operator.__file__).resolve().parents[1]
    roots = {str(venv), str(Path(sys.base_prefix).resolve()), str(package_root)}
    path = f"{venv / 'bin'}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return ImageConfig(
        entrypoint=("runbook-operator",),
        cmd=("run",),
        env=(("PATH", path), ("PYTHONDONTWRITEBYTECODE", "1"), ("PYTHONUNBUFFERED", "1"),
             ("PIP_NO_CACHE_DIR", "1"), ("HOME", "/nonexistent")),
        uid=_NONROOT,
        gid=_NONROOT,
        root_paths=(*SYSTEM_PATHS, *sorted(r for r in roots if not r.startswith("/usr/"))),
    )


def demo_app_image() -> ImageConfig:
    """The demo app (:mod:`runbook_operator.demoapp`) from the same environment."""
    python = str(Path(sys.prefix) / "bin" / "python")
    return replace(operator_image(), entrypoint=(python, "-m", "runbook_operator.demoapp"),
                   cmd=("serve",))


def gateway_image(binary: Path) -> ImageConfig:
    """Traefik's official image runs its static binary as its entrypoint."""
    return ImageConfig(entrypoint=(str(binary),), root_paths=(*SYSTEM_PATHS, str(binary.parent)))


def runtime_images(gateway_binary: Path | None) -> dict[str, ImageConfig]:
    """Image config by repository for every image the runtime runs (the gateway's only when
    its binary is given)."""
    images = {OPERATOR_REPOSITORY: operator_image(), DEMO_APP_REPOSITORY: demo_app_image()}
    if gateway_binary is not None:
        images[GATEWAY_REPOSITORY] = gateway_image(gateway_binary)
    return images
