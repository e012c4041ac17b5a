"""Which images the runtime runs, and how each maps onto this checkout's environment.

An image here is the image's config (entrypoint, cmd, env, user) plus either the host paths
standing in for its root filesystem, bound read-only into the sandbox, or, for an image that
was built (``hack/build-image.sh``), its exported root filesystem as the container's whole root.
The project's images (the operator/runner and the demo app) run from the interpreter and
virtualenv running this code, i.e. from the checkout, unless a manifest names the exact
reference of a built image; the gateway's image (Traefik) runs the binary
``hack/build-traefik.sh`` built, whatever tag a manifest names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

import runbook_operator

#: Repositories of the project's images (any tag).
OPERATOR_REPOSITORY = "runbook-operator"
RUNNER_REPOSITORY = "runbook-runner"
DEMO_APP_REPOSITORY = "runbook-demo-app"
PROJECT_REPOSITORIES = (OPERATOR_REPOSITORY, RUNNER_REPOSITORY, DEMO_APP_REPOSITORY)
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
    #: A built image's exported root filesystem: the container's whole root (no root_paths).
    rootfs: str | None = None


#: How a container runtime names a reference without a registry (``x:1`` is ``localhost/x:1``
#: to buildah and podman).
LOCAL_REGISTRY = "localhost/"


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


def _numeric_user(user: str) -> tuple[int, int]:
    uid, _, gid = user.partition(":")
    if not uid.isdigit() or not (gid or uid).isdigit():
        raise ValueError(f"image user {user!r}: only numeric uid[:gid] can run here (the "
                         "runtime does not read the image's /etc/passwd)")
    return int(uid), int(gid or 0)


def built_image(config: Mapping[str, object], rootfs: str) -> ImageConfig:
    """An OCI image config (its ``config`` object: Entrypoint, Cmd, Env, User, WorkingDir)
    with its exported root filesystem."""
    env = tuple(tuple(entry.split("=", 1)) for entry in config.get("Env") or [])
    uid, gid = _numeric_user(str(config.get("User") or "0"))
    return ImageConfig(
        entrypoint=tuple(config.get("Entrypoint") or ()), cmd=tuple(config.get("Cmd") or ()),
        env=env, uid=uid, gid=gid, working_dir=str(config.get("WorkingDir") or "/"),
        root_paths=(), rootfs=rootfs)


def built_images(directory: Path) -> dict[str, ImageConfig]:
    """The images ``hack/build-image.sh`` exported to `directory`, by their exact reference
    (``images.json``: target → reference; ``TARGET/config.json`` and ``TARGET/rootfs``)."""
    listed = json.loads((directory / "images.json").read_text())
    return {
        entry["reference"]: built_image(
            json.loads((directory / target / "config.json").read_text()),
            str(directory / target / "rootfs"))
        for target, entry in listed.items()
    }


def find_image(images: Mapping[str, ImageConfig], image: str) -> ImageConfig | None:
    """The config a container's `image` runs with: a built image by its exact reference
    (with or without ``localhost/``), else the checkout's stand-in for its repository."""
    reference = image.removeprefix(LOCAL_REGISTRY)
    return images.get(reference) or images.get(image_repository(reference))


def demo_app_image() -> ImageConfig:
    """The demo app (:mod:`runbook_operator.demoapp`) from the same environment."""
    python = str(Path(sys.prefix) / "bin" / "python")
    return replace(operator_image(), entrypoint=(python, "-m", "runbook_operator.demoapp"),
                   cmd=("serve",))


def gateway_image(binary: Path) -> ImageConfig:
    """Traefik's official image runs its static binary as its entrypoint."""
    return ImageConfig(entrypoint=(str(binary),), root_paths=(*SYSTEM_PATHS, str(binary.parent)))


def runtime_images(gateway_binary: Path | None,
                   built: Mapping[str, ImageConfig] | None = None) -> dict[str, ImageConfig]:
    """Image config by repository for every image the runtime runs (the gateway's only when
    its binary is given), and by exact reference for the `built` ones. The runner's
    repository runs from the checkout as the operator's does (one environment holds both)."""
    images = {OPERATOR_REPOSITORY: operator_image(), RUNNER_REPOSITORY: operator_image(),
              DEMO_APP_REPOSITORY: demo_app_image()}
    if gateway_binary is not None:
        images[GATEWAY_REPOSITORY] = gateway_image(gateway_binary)
    return {**images, **(built or {})}
