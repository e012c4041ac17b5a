"""Files from a directory (a mounted PVC): a tar stream written by Python's tarfile in streaming
mode into a pipe, restored by an extractor that never writes outside its target directory.

Why not `tarfile.extractall(filter="data")`: its path checks have had bypasses (CVE-2025-4517
and siblings, fixed only in later 3.11 patch releases); this extractor instead never follows a
symlink while writing (parents must be real directories, files open with O_NOFOLLOW), rejects
absolute names and `..`, and rejects symlinks whose target leaves the directory.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import logging
import os
import posixpath
import shutil
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from runbook_operator.runner.interfaces import (
    RestoreError,
    RunnerError,
    SourceError,
    VerificationError,
)
from runbook_operator.runner.sources import FilesRestoreSettings, FilesSettings
from runbook_operator.runner.sources.command import PIPE_SIZE, GuardedWriter

log = logging.getLogger(__name__)

_COPY_BUFFER = 1 << 20


def _pipe() -> tuple[int, int]:
    read_fd, write_fd = os.pipe()
    with contextlib.suppress(OSError):  # over the per-user pipe budget: the default still works
        fcntl.fcntl(write_fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    return read_fd, write_fd


class ThreadDump:
    """`produce(out)` runs in a thread writing into a pipe; `stream` is the pipe's read end."""

    def __init__(self, produce: Callable[[BinaryIO], None], what: str) -> None:
        self.what = what
        read_fd, write_fd = _pipe()
        self.stream: BinaryIO = os.fdopen(read_fd, "rb", buffering=_COPY_BUFFER)
        self._out: BinaryIO = os.fdopen(write_fd, "wb", buffering=_COPY_BUFFER)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(produce,), name=what, daemon=True)
        self._thread.start()

    def _run(self, produce: Callable[[BinaryIO], None]) -> None:
        try:
            with self._out:
                produce(self._out)
        except BaseException as error:  # noqa: BLE001 - reported by finish()
            self._error = error

    def finish(self) -> None:
        # Closing first: a reader that stopped early makes the writer fail (EPIPE), not hang.
        self.stream.close()
        self._thread.join()
        if isinstance(self._error, BrokenPipeError):
            raise SourceError(f"{self.what} failed: the reader stopped before the end")
        if self._error is not None:
            raise SourceError(f"{self.what} failed: {self._error}")


class ThreadSink:
    """`consume(stream)` runs in a thread reading a pipe; `stream` is the pipe's write end.

    `consume` raises a RunnerError to fail; it must read to EOF on success, so the writer never
    sees EPIPE for a stream the consumer accepted."""

    def __init__(
        self, consume: Callable[[BinaryIO], None], what: str, error: type[RunnerError]
    ) -> None:
        self.what = what
        self._error_type = error
        read_fd, write_fd = _pipe()
        self._in: BinaryIO = os.fdopen(read_fd, "rb", buffering=_COPY_BUFFER)
        self._writer = GuardedWriter(
            os.fdopen(write_fd, "wb", buffering=_COPY_BUFFER), self._broken
        )
        self.stream: BinaryIO = self._writer  # type: ignore[assignment]
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(consume,), name=what, daemon=True)
        self._thread.start()

    def _run(self, consume: Callable[[BinaryIO], None]) -> None:
        try:
            with self._in:
                consume(self._in)
        except BaseException as error:  # noqa: BLE001 - reported by finish() or the writer
            self._error = error

    def _raise(self) -> None:
        error = self._error
        if isinstance(error, RunnerError):
            raise error
        if error is not None:
            raise self._error_type(f"{self.what} failed: {error}") from error

    def _broken(self) -> bool:
        self._thread.join()
        self._raise()
        raise self._error_type(f"{self.what} stopped reading before the end of the stream")

    def finish(self) -> None:
        self._writer.close()
        self._thread.join()
        self._raise()


def _normalize_pattern(pattern: str) -> str:
    while pattern.startswith("./"):
        pattern = pattern[2:]
    return pattern.rstrip("/")


def excluded(relative: str, patterns: list[str]) -> bool:
    """Glob match on the relative path; a pattern without '/' also matches the entry's name."""
    name = relative.rsplit("/", 1)[-1]
    return any(
        fnmatch.fnmatchcase(relative, p) or ("/" not in p and fnmatch.fnmatchcase(name, p))
        for p in patterns
    )


def walk(root: Path, patterns: list[str]) -> Iterator[tuple[str, str]]:
    """(absolute path, relative path) of every entry not excluded, depth first in name order,
    never following symlinks; an excluded directory is not entered."""
    stack = [_children(str(root), "", patterns)]
    while stack:
        for path, relative, is_dir in stack[-1]:
            yield path, relative
            if is_dir:
                stack.append(_children(path, relative, patterns))
                break
        else:
            stack.pop()


def _children(
    directory: str, relative_dir: str, patterns: list[str]
) -> Iterator[tuple[str, str, bool]]:
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:  # removed while we walked
        return
    for entry in entries:
        relative = f"{relative_dir}/{entry.name}" if relative_dir else entry.name
        if not excluded(relative, patterns):
            yield entry.path, relative, entry.is_dir(follow_symlinks=False)


def write_tar(root: Path, patterns: list[str], out: BinaryIO) -> None:
    with tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, bufsize=_COPY_BUFFER
    ) as tar:
        for path, relative in walk(root, patterns):
            try:
                info = tar.gettarinfo(path, arcname=relative)
                if info is None:  # a socket: nothing to archive
                    continue
                if info.isreg():
                    with open(path, "rb") as data:
                        tar.addfile(info, data)
                else:
                    tar.addfile(info)
            except FileNotFoundError:
                log.warning("%s vanished while archiving; skipped", relative)


class FilesSource:
    kind = "files"

    def __init__(self, settings: FilesSettings) -> None:
        self.settings = settings

    def start(self) -> ThreadDump:
        root = Path(self.settings.path)
        if not root.is_dir():
            raise SourceError(f"{root} is not a directory")
        patterns = [_normalize_pattern(p) for p in self.settings.exclude]
        return ThreadDump(lambda out: write_tar(root, patterns, out), what=f"archiving {root}")


def safe_member_name(name: str) -> str | None:
    """The member's path relative to the target, or None for the archive's root entry."""
    if name.startswith("/"):
        raise RestoreError(f"refusing absolute path {name!r} in the archive")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise RestoreError(f"refusing path {name!r} with '..' in the archive")
    return "/".join(parts) or None


def _check_symlink(relative: str, target: str) -> None:
    if target.startswith("/"):
        raise RestoreError(f"refusing symlink {relative!r} to absolute path {target!r}")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(relative), target))
    if resolved == ".." or resolved.startswith("../"):
        raise RestoreError(
            f"refusing symlink {relative!r} pointing outside the target ({target!r})"
        )


class _Extractor:
    def __init__(self, root: Path, preserve_ownership: bool) -> None:
        self.root = root
        self.preserve_ownership = preserve_ownership and os.geteuid() == 0
        self.directories: list[tuple[Path, tarfile.TarInfo]] = []

    def parents(self, relative: str, create: bool) -> None:
        """Every parent of `relative` must be a real directory inside root (never a symlink)."""
        current = self.root
        for part in relative.split("/")[:-1]:
            current = current / part
            try:
                mode = os.lstat(current).st_mode
            except FileNotFoundError:
                if not create:
                    raise RestoreError(f"{relative!r} refers to a missing directory") from None
                os.mkdir(current, 0o755)
                continue
            if not stat.S_ISDIR(mode):
                raise RestoreError(f"refusing {relative!r}: {part!r} is not a directory")

    def clear(self, path: Path, relative: str) -> None:
        """Remove a non-directory at `path` so the new entry replaces (never follows) it."""
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return
        if stat.S_ISDIR(mode):
            raise RestoreError(f"refusing to replace directory {relative!r} with a non-directory")
        os.unlink(path)

    def extract(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        relative = safe_member_name(member.name)
        if relative is None:
            return
        path = self.root / relative
        self.parents(relative, create=True)
        if member.isdir():
            try:
                os.mkdir(path, 0o700)
            except FileExistsError:
                if not stat.S_ISDIR(os.lstat(path).st_mode):
                    raise RestoreError(
                        f"refusing {relative!r}: exists and is not a directory"
                    ) from None
            self.directories.append((path, member))
            return
        if member.isreg():
            self.clear(path, relative)
            fd = os.open(
                path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600
            )
            source = tar.extractfile(member)
            assert source is not None
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(source, out, _COPY_BUFFER)
        elif member.issym():
            _check_symlink(relative, member.linkname)
            self.clear(path, relative)
            os.symlink(member.linkname, path)
        elif member.islnk():
            source_relative = safe_member_name(member.linkname)
            if source_relative is None:
                raise RestoreError(f"refusing hard link {relative!r} to the archive root")
            self.parents(source_relative, create=False)
            self.clear(path, relative)
            os.link(self.root / source_relative, path, follow_symlinks=False)
        else:
            log.warning("skipping %s: unsupported entry type %r", relative, member.type)
            return
        self.metadata(path, member)

    def metadata(self, path: Path, member: tarfile.TarInfo) -> None:
        if self.preserve_ownership:
            os.chown(path, member.uid, member.gid, follow_symlinks=False)
        if not member.issym():
            os.chmod(path, member.mode & 0o777, follow_symlinks=False)
        try:
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
        except OSError as error:  # some filesystems refuse symlink times
            if error.errno != errno.EOPNOTSUPP:
                raise

    def finish_directories(self) -> None:
        """Directory modes and times last: adding entries would change them again."""
        for path, member in reversed(self.directories):
            self.metadata(path, member)


def extract_tar(stream: BinaryIO, root: Path, preserve_ownership: bool) -> None:
    extractor = _Extractor(root, preserve_ownership)
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_COPY_BUFFER) as tar:
            for member in tar:
                extractor.extract(tar, member)
    except tarfile.TarError as error:
        raise RestoreError(f"the archive is damaged: {error}") from None
    extractor.finish_directories()
    drain(stream)


def drain(stream: BinaryIO) -> None:
    """Read past the archive's end (tar's trailing zero blocks) so the writer never sees EPIPE."""
    while stream.read(_COPY_BUFFER):
        pass


class FilesRestoreTarget:
    kind = "files"

    def __init__(self, settings: FilesRestoreSettings) -> None:
        self.settings = settings

    def start(self) -> ThreadSink:
        root = Path(self.settings.path)
        root.mkdir(parents=True, exist_ok=True)
        root = root.resolve()
        if not self.settings.overwrite and any(root.iterdir()):
            raise RestoreError(f"{root} is not empty (set overwrite to restore into it)")
        preserve = self.settings.preserve_ownership
        return ThreadSink(
            lambda stream: extract_tar(stream, root, preserve),
            what=f"extracting into {root}",
            error=RestoreError,
        )


def list_tar(stream: BinaryIO) -> None:
    """Read every member header and body: a damaged or truncated archive fails."""
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=_COPY_BUFFER) as tar:
            for member in tar:
                safe_member_name(member.name)
    except (tarfile.TarError, RestoreError) as error:
        raise VerificationError(f"the archive is damaged: {error}") from None
    drain(stream)


class TarVerifier:
    kind = "files"

    def start(self) -> ThreadSink:
        return ThreadSink(list_tar, what="tar listing", error=VerificationError)
