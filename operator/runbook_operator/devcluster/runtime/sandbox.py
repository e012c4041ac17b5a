"""The container's view of the filesystem, as a bubblewrap command line.

bubblewrap builds a fresh root on a tmpfs: the image's host paths bound read-only, a private
/proc and /dev, the pod's volumes bound at their mount paths, a per-container directory at
/tmp (the writable layer) and a per-container file at the termination message path. The
network is shared: the pod's processes see the addresses the harness sees, in the cluster's
own network namespace (:mod:`..network`), where each binds its own pod IP.

As root, bubblewrap sets up the mounts and ``setpriv`` then becomes the pod's user for real
(and sets no_new_privs); as anyone else, a user namespace maps the harness's uid to the pod's
uid, so a pod never gets more rights than the harness has.

An image that was built (:attr:`~.images.ImageConfig.rootfs`, an exported root filesystem) is
the container's whole root instead (:func:`image_root_argv`): its entries are bound read-only
at ``/``, mount paths resolved through its own symlinks as a container runtime resolves them
(``/var/run`` is ``/run`` in a Debian image). Such an image need not hold a setpriv of its own
(a distroless one has none): as root, the runtime passes its static helper as an open file
descriptor and the sandbox executes it as ``/proc/self/fd/N``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

from runbook_operator.devcluster.runtime.images import SYSTEM_LINKS
from runbook_operator.devcluster.runtime.spec import Identity


@dataclass(frozen=True)
class Bind:
    """``source`` (a host path) at ``target`` inside the sandbox."""

    source: str
    target: str
    read_only: bool


def _parents(paths: Sequence[str]) -> list[str]:
    """Every ancestor directory of `paths`, shallowest first: bubblewrap would create them
    0700, which a non-root pod user could not traverse."""
    seen: dict[str, None] = {}
    for path in paths:
        for parent in reversed(PurePosixPath(path).parents):
            if str(parent) != "/":
                seen.setdefault(str(parent), None)
    return list(seen)


#: A directory's entries: (name, symlink target or None).
Lister = Callable[[str], list[tuple[str, str | None]]]


def list_host_dir(path: str) -> list[tuple[str, str | None]]:
    with os.scandir(path) as entries:
        return sorted((e.name, os.readlink(e.path) if e.is_symlink() else None)
                      for e in entries)


def _under(path: str, root: str) -> bool:
    return path != root and path.startswith(root.rstrip("/") + "/")


def root_binds(root: str, targets: Sequence[str], entries: Lister) -> list[str]:
    """bubblewrap arguments binding the host's `root` read-only, with room for `targets`.

    A read-only bind cannot take new mount points, so a root holding a target is rebuilt as
    a directory of its own whose entries are bound one by one, recursively, leaving the
    target's own path free."""
    return mapped_binds(root, root, targets, entries)


def _join(parent: str, name: str) -> str:
    return f"{parent.rstrip('/')}/{name}"


def mapped_binds(source: str, target: str, targets: Sequence[str], entries: Lister) -> list[str]:
    """:func:`root_binds` for a host directory `source` that appears at `target`."""
    if not any(_under(t, target) for t in targets):
        return ["--ro-bind", source, target]
    args = [] if target == "/" else ["--perms", "0755", "--dir", target]
    for name, link in entries(source):
        path = _join(target, name)
        if path in targets:
            continue
        if link is not None:
            args += ["--symlink", link, path]
        else:
            args += mapped_binds(_join(source, name), path, targets, entries)
    return args


#: A path's symlink target inside an image root, None when it is no symlink.
Readlink = Callable[[str], str | None]
_MAX_SYMLINKS = 40


def host_readlink(rootfs: str) -> Readlink:
    """Symlinks of the image root `rootfs` on the host, by their path inside it."""
    def readlink(path: str) -> str | None:
        host = rootfs.rstrip("/") + path
        return os.readlink(host) if os.path.islink(host) else None
    return readlink


def resolve_in_root(path: str, readlink: Readlink) -> str:
    """`path` with every symlink along it followed inside the image root, never out of it
    (an absolute link restarts at the image's ``/``, ``..`` stops there), as runc's
    securejoin does; components that do not exist are kept as they are."""
    parts = list(PurePosixPath(path).parts[1:])
    resolved = PurePosixPath("/")
    hops = 0
    while parts:
        name = parts.pop(0)
        if name in ("", "."):
            continue
        if name == "..":
            resolved = resolved.parent
            continue
        link = readlink(str(resolved / name))
        if link is None:
            resolved = resolved / name
            continue
        hops += 1
        if hops > _MAX_SYMLINKS:
            raise ValueError(f"too many levels of symbolic links in {path}")
        target = PurePosixPath(link)
        if target.is_absolute():
            resolved = PurePosixPath("/")
        parts[:0] = list(target.parts[1:] if target.is_absolute() else target.parts)
    return str(resolved)


def shadowed_roots(root_paths: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Mount paths that are one of the image's own paths (a volume at ``/usr``): the volume or
    the image would have to hide the other."""
    return sorted({t for t in targets if t in root_paths})


def roots_under_mounts(root_paths: Sequence[str], targets: Sequence[str]) -> list[str]:
    """Image paths inside a mount (the checkout's venv under a checkout in ``/tmp``, where
    every pod mounts its writable layer): bound again over the mount, so the image stays
    whole whatever directory the checkout lives in."""
    return sorted({r for r in root_paths for t in targets if _under(r, t)})


def bwrap_argv(
    *, bwrap: str, setpriv: str, root_paths: Sequence[str], binds: Sequence[Bind],
    working_dir: str, identity: Identity, as_root: bool, argv: Sequence[str],
    entries: Lister = list_host_dir,
) -> list[str]:
    """The full command line that runs `argv` in the sandbox as `identity`."""
    targets = [b.target for b in binds]
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-uts",
           "--hostname", "pod"]
    def in_root(path: str) -> bool:
        return any(_under(path, r) or path == r for r in root_paths)

    parents = _parents([*root_paths, *targets, working_dir])
    for parent in parents:
        if parent not in SYSTEM_LINKS and not in_root(parent):
            cmd += ["--perms", "0755", "--dir", parent]
    under_mounts = roots_under_mounts(root_paths, targets)
    for path in root_paths:
        if path not in under_mounts:
            cmd += root_binds(path, targets, entries)
    for link, target in SYSTEM_LINKS.items():
        cmd += ["--symlink", target, link]
    for parent in parents:  # inside a rebuilt root: missing mount points' parents
        if in_root(parent):
            cmd += ["--perms", "0755", "--dir", parent]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    for bind in binds:
        cmd += ["--ro-bind" if bind.read_only else "--bind", bind.source, bind.target]
    for path in under_mounts:  # over the mount, in traversable directories of their own
        for parent in _parents([path]):
            if any(_under(parent, t) for t in targets):
                cmd += ["--perms", "0755", "--dir", parent]
        cmd += root_binds(path, targets, entries)
    inside_root = any(_under(working_dir, r) or working_dir == r for r in root_paths)
    if working_dir != "/" and working_dir not in targets and not inside_root:
        cmd += ["--perms", "0755", "--dir", working_dir]
    cmd += ["--chdir", working_dir]
    if as_root:
        groups = ",".join(str(g) for g in identity.groups)
        cmd += ["--", setpriv, f"--reuid={identity.uid}", f"--regid={identity.gid}",
                f"--groups={groups}", "--no-new-privs", "--"]
    else:
        cmd += ["--unshare-user", f"--uid={identity.uid}", f"--gid={identity.gid}", "--"]
    return [*cmd, *argv]


def _identity_tail(identity: Identity, as_root: bool, helper_fd: int | None) -> list[str]:
    if not as_root:
        return ["--unshare-user", f"--uid={identity.uid}", f"--gid={identity.gid}", "--"]
    if helper_fd is None:
        raise ValueError("as root, an image root needs the runtime's setpriv helper")
    groups = ",".join(str(g) for g in identity.groups)
    return ["--", f"/proc/self/fd/{helper_fd}", str(identity.uid), str(identity.gid), groups]


def image_root_argv(
    *, bwrap: str, rootfs: str, binds: Sequence[Bind], working_dir: str, identity: Identity,
    as_root: bool, helper_fd: int | None, argv: Sequence[str],
    entries: Lister = list_host_dir, readlink: Readlink | None = None,
) -> list[str]:
    """The command line that runs `argv` as `identity` with the built image `rootfs` as the
    container's root: its entries bound read-only (directories holding a mount point rebuilt),
    missing mount points' parents made, then /proc, /dev and the binds."""
    readlink = readlink or host_readlink(rootfs)
    resolved = [Bind(b.source, resolve_in_root(b.target, readlink), b.read_only)
                for b in binds]
    targets = [b.target for b in resolved]
    cmd = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-uts",
           "--hostname", "pod"]
    cmd += mapped_binds(rootfs, "/", [*targets, "/proc", "/dev"], entries)
    for parent in _parents(targets):
        cmd += ["--perms", "0755", "--dir", parent]
    cmd += ["--proc", "/proc", "--dev", "/dev"]
    for bind in resolved:
        cmd += ["--ro-bind" if bind.read_only else "--bind", bind.source, bind.target]
    cmd += ["--chdir", resolve_in_root(working_dir, readlink)]
    return [*cmd, *_identity_tail(identity, as_root, helper_fd), *argv]
