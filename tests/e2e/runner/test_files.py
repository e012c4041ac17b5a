"""Files source (tar with excludes) and the safe extractor."""

from __future__ import annotations

import io
import os
import stat
import tarfile
from pathlib import Path

import pytest
from runbook_operator.runner.interfaces import RestoreError, SourceError, VerificationError
from runbook_operator.runner.sources import build_restore_target, build_source, build_verifier

from tests.support.streams import feed, pump, read_dump

EXCLUDES = ["*.log", "cache", "tmp/*", "./data/skip-me/"]


def make_tree(root: Path) -> None:
    (root / "data" / "nested" / "deeper").mkdir(parents=True)
    (root / "data" / "skip-me").mkdir()
    (root / "data" / "skip-me" / "secret.bin").write_bytes(b"excluded by path")
    (root / "data" / "nested" / "deeper" / "blob.bin").write_bytes(os.urandom(3 * 1024 * 1024))
    (root / "data" / "nested" / "notes.txt").write_text("héllo\n" * 1000)
    (root / "data" / "script.sh").write_text("#!/bin/sh\necho hi\n")
    (root / "data" / "script.sh").chmod(0o750)
    (root / "empty-dir").mkdir()
    (root / "cache").mkdir()
    (root / "cache" / "big.bin").write_bytes(b"x" * 1000)
    (root / "data" / "nested" / "cache").mkdir()  # a name pattern excludes it at any depth
    (root / "data" / "nested" / "cache" / "c.txt").write_text("cached")
    (root / "tmp").mkdir()
    (root / "tmp" / "scratch.txt").write_text("temporary")
    (root / "app.log").write_text("log line\n")
    (root / "data" / "nested" / "deeper" / "trace.log").write_text("log line\n")
    (root / "link-to-notes").symlink_to("data/nested/notes.txt")
    os.link(root / "data" / "script.sh", root / "hardlink.sh")


def snapshot(root: Path) -> dict[str, tuple[str, int, bytes]]:
    """Every entry: its type, permission bits and content (or symlink target)."""
    entries: dict[str, tuple[str, int, bytes]] = {}
    for path in sorted(root.rglob("*")):
        info = path.lstat()
        relative = path.relative_to(root).as_posix()
        if stat.S_ISLNK(info.st_mode):
            entries[relative] = ("link", 0, os.readlink(path).encode())
        elif stat.S_ISDIR(info.st_mode):
            entries[relative] = ("dir", stat.S_IMODE(info.st_mode), b"")
        else:
            entries[relative] = ("file", stat.S_IMODE(info.st_mode), path.read_bytes())
    return entries


def test_round_trip_with_excludes(tmp_path: Path) -> None:
    source_dir, target_dir = tmp_path / "src", tmp_path / "restored"
    source_dir.mkdir()
    make_tree(source_dir)

    pump(
        build_source("files", {"path": str(source_dir), "exclude": EXCLUDES}).start(),
        build_restore_target("files", {"path": str(target_dir)}).start(),
    )

    expected = {
        k: v
        for k, v in snapshot(source_dir).items()
        if not k.endswith(".log")
        and not k.startswith(("cache", "data/skip-me"))
        and "/cache" not in k
        and not k.startswith("tmp/")
    }
    assert snapshot(target_dir) == expected
    assert "tmp" in expected and "empty-dir" in expected  # tmp/* spares tmp itself
    assert (
        os.stat(target_dir / "hardlink.sh").st_ino == os.stat(target_dir / "data/script.sh").st_ino
    )
    mtime = (source_dir / "data/nested/notes.txt").stat().st_mtime
    assert (target_dir / "data/nested/notes.txt").stat().st_mtime == pytest.approx(mtime, abs=1e-3)


def test_verifier_reads_the_whole_archive(tmp_path: Path) -> None:
    make_tree(tmp_path)
    data = read_dump(build_source("files", {"path": str(tmp_path)}))
    verifier = build_verifier("files", {"path": str(tmp_path)})
    assert verifier is not None
    feed(verifier, data)
    with pytest.raises(VerificationError, match="damaged"):
        feed(verifier, data[: len(data) // 2])


def test_truncated_archive_fails_the_restore(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    make_tree(tmp_path / "src")
    data = read_dump(build_source("files", {"path": str(tmp_path / "src")}))
    target = build_restore_target("files", {"path": str(tmp_path / "out")})
    with pytest.raises(RestoreError, match="damaged"):
        feed(target, data[: len(data) // 2])


def test_missing_directory_fails(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is not a directory"):
        build_source("files", {"path": str(tmp_path / "absent")}).start()


def test_reader_that_stops_early_fails_the_dump(tmp_path: Path) -> None:
    (tmp_path / "big").write_bytes(os.urandom(4 * 1024 * 1024))
    dump = build_source("files", {"path": str(tmp_path)}).start()
    dump.stream.read(1024)
    with pytest.raises(SourceError, match="stopped before the end"):
        dump.finish()


def test_non_empty_target_needs_overwrite(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "a.txt").write_text("new")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "a.txt").write_text("old")
    (tmp_path / "out" / "keep.txt").write_text("kept")
    data = read_dump(build_source("files", {"path": str(tmp_path / "src")}))
    with pytest.raises(RestoreError, match="not empty"):
        build_restore_target("files", {"path": str(tmp_path / "out")}).start()
    feed(build_restore_target("files", {"path": str(tmp_path / "out"), "overwrite": True}), data)
    assert (tmp_path / "out" / "a.txt").read_text() == "new"
    assert (tmp_path / "out" / "keep.txt").read_text() == "kept"


def archive(*members: tuple[tarfile.TarInfo, bytes | None]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def member(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = 0o644
    return info


@pytest.mark.parametrize(
    ("members", "reason"),
    [
        ([(member("../evil.txt"), b"x")], "'\\.\\.'"),
        ([(member("ok/../../evil.txt"), b"x")], "'\\.\\.'"),
        ([(member("/tmp/evil.txt"), b"x")], "absolute path"),
        ([(member("abs-link", tarfile.SYMTYPE, "/etc/passwd"), None)], "absolute path"),
        ([(member("up-link", tarfile.SYMTYPE, "../.."), None)], "outside the target"),
        (
            [
                (member("sub", tarfile.DIRTYPE), None),
                (member("sub/link", tarfile.SYMTYPE, "../../x"), None),
            ],
            "outside the target",
        ),
        # A symlink pointing inside is fine, but nothing is ever written through one.
        (
            [
                (member("dir", tarfile.DIRTYPE), None),
                (member("through", tarfile.SYMTYPE, "dir"), None),
                (member("through/evil.txt"), b"x"),
            ],
            "not a directory",
        ),
        ([(member("hard", tarfile.LNKTYPE, "../outside"), None)], "'\\.\\.'"),
        ([(member("hard", tarfile.LNKTYPE, "/etc/passwd"), None)], "absolute path"),
    ],
    ids=[
        "dotdot",
        "nested-dotdot",
        "absolute",
        "symlink-absolute",
        "symlink-up",
        "symlink-up-nested",
        "write-through-symlink",
        "hardlink-dotdot",
        "hardlink-absolute",
    ],
)
def test_extraction_never_escapes_the_target(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], reason: str
) -> None:
    target = tmp_path / "deep" / "target"
    with pytest.raises(RestoreError, match=reason):
        feed(build_restore_target("files", {"path": str(target)}), archive(*members))
    outside = [p for p in tmp_path.rglob("*") if not p.is_relative_to(target) and p.name != "deep"]
    assert outside == []
    assert not any(p.name == "evil.txt" for p in tmp_path.rglob("*"))


def test_special_bits_are_dropped(tmp_path: Path) -> None:
    info = member("suid")
    info.mode = 0o4755
    feed(build_restore_target("files", {"path": str(tmp_path)}), archive((info, b"#!/bin/sh\n")))
    assert stat.S_IMODE((tmp_path / "suid").stat().st_mode) == 0o755
