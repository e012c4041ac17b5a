"""Storage on a directory, typically a PersistentVolumeClaim mounted into the backup Job.

Writes go to a hidden temporary name in the target directory and are renamed into place only
after a clean, fsync'd close, so a crash or a failed dump never leaves a half-written object
under a real key; an exclusive write is hard-linked into place instead, which fails if the
name exists. Keys are confined to the storage's base (the root, or the namespace's directory
in it): `..`, absolute paths and symlinks that lead outside are rejected, which keeps retention
from ever touching another namespace's or policy's files."""

from __future__ import annotations

import builtins
import errno
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO
from urllib.parse import quote

from runbook_operator.runner.interfaces import ALREADY_EXISTS, StorageError

PARTIAL_PREFIX = ".partial-"
#: link() errors of file systems without hard links (e.g. SMB shares), where an exclusive write
#: claims its name with O_EXCL and then renames over the claim.
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EMLINK}


def _split_key(key: str) -> list[str]:
    """Validate a `/`-separated key and return its parts."""
    if not key:
        raise StorageError("an object key must not be empty", reason="InvalidKey")
    if key.startswith("/") or "\\" in key or "\0" in key:
        raise StorageError(f"invalid object key {key!r}: must be relative", reason="InvalidKey")
    parts = key.split("/")
    if any(part in ("", ".", "..") or part.startswith(PARTIAL_PREFIX) for part in parts):
        raise StorageError(
            f"invalid object key {key!r}: empty, '.', '..' or reserved parts", reason="InvalidKey"
        )
    return parts


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class LocalStorage:
    """The `Storage` contract on a directory that must already exist (a mount, not a guess:
    creating a missing mount point would put backups on the container's throwaway disk).
    Every key lives under `<root>/<directory>/<namespace>/`, created when needed: the directory
    a policy names inside its volume does not exist on a fresh claim."""

    def __init__(self, root: str | os.PathLike[str], namespace: str = "",
                 directory: str = "") -> None:
        path = Path(root)
        if not path.is_dir():
            raise StorageError(
                f"the backup directory {path} does not exist or is not a directory",
                reason="StorageUnavailable",
            )
        self.root = path.resolve()
        parts = [*(_split_key(directory) if directory else []),
                 *(_split_key(namespace) if namespace else [])]
        self.base = self.root.joinpath(*parts)

    def _path(self, key: str) -> Path:
        path = self.base.joinpath(*_split_key(key))
        resolved = path.resolve()
        if resolved != self.base and not resolved.is_relative_to(self.base):
            raise StorageError(
                f"object key {key!r} leads outside the storage root", reason="InvalidKey"
            )
        return path

    @contextmanager
    def writer(self, key: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            temp = path.with_name(f"{PARTIAL_PREFIX}{secrets.token_hex(6)}-{path.name}")
            handle = open(temp, "xb")  # noqa: SIM115 - closed on every path below
        except OSError as exc:
            raise StorageError(f"cannot create {self.location(key)}: {exc.strerror}") from None
        try:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
            handle.close()
            if exclusive:
                self._place_new(temp, path, key)
            else:
                os.replace(temp, path)
            self._fsync_parents(path)
        except BaseException as exc:
            handle.close()
            temp.unlink(missing_ok=True)
            self._remove_empty_dirs(path.parent)
            if isinstance(exc, OSError):
                raise StorageError(
                    f"writing {self.location(key)} failed: {exc.strerror or exc}"
                ) from None
            raise

    def _place_new(self, temp: Path, path: Path, key: str) -> None:
        """Move `temp` to `path` unless `path` exists, atomically: link() never replaces."""
        try:
            os.link(temp, path)
        except FileExistsError:
            raise self._exists(key) from None
        except OSError as exc:
            if exc.errno not in _NO_HARD_LINKS:
                raise
            try:
                os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            except FileExistsError:
                raise self._exists(key) from None
            os.replace(temp, path)
            return
        temp.unlink()

    def _exists(self, key: str) -> StorageError:
        return StorageError(f"{self.location(key)} already exists", reason=ALREADY_EXISTS)

    def _fsync_parents(self, path: Path) -> None:
        """Make the rename and any directories created for it durable."""
        directory = path.parent
        while True:
            _fsync_dir(directory)
            if directory == self.root:
                return
            directory = directory.parent

    @contextmanager
    def reader(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed by the with below
        except FileNotFoundError:
            raise StorageError(f"no object at {self.location(key)}", reason="NotFound") from None
        except OSError as exc:
            raise StorageError(f"cannot read {self.location(key)}: {exc.strerror}") from None
        with handle:
            yield handle

    def list(self, prefix: str = "") -> Iterator[str]:
        """Keys under `prefix` in sorted order; temporary and symlinked entries are skipped."""
        directory_part, _, _ = prefix.rpartition("/")
        start = self._path(directory_part) if directory_part else self.base
        if not start.is_dir() or start.is_symlink():
            return
        yield from (key for key in self._walk(start) if key.startswith(prefix))

    def _walk(self, directory: Path) -> Iterator[str]:
        try:
            entries = sorted(os.scandir(directory), key=lambda entry: entry.name)
        except FileNotFoundError:
            return
        for entry in entries:
            if entry.name.startswith(PARTIAL_PREFIX) or entry.is_symlink():
                continue
            if entry.is_dir():
                yield from self._walk(Path(entry.path))
            elif entry.is_file():
                yield Path(entry.path).relative_to(self.base).as_posix()

    def delete(self, keys: builtins.list[str]) -> None:
        """Remove objects (missing ones are fine) and the directories they leave empty."""
        for key in keys:
            path = self._path(key)
            try:
                path.unlink(missing_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot delete {self.location(key)}: {exc.strerror}") from None
            self._remove_empty_dirs(path.parent)

    def _remove_empty_dirs(self, directory: Path) -> None:
        """Tidy up directories left empty, up to (not including) the base."""
        while directory != self.base and directory.is_relative_to(self.base):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    def location(self, key: str = "") -> str:
        return self.base.as_uri() + ("/" + quote(key) if key else "")
