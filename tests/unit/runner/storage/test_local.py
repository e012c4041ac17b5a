"""Storage on a directory: atomic, durable writes, and keys that cannot leave the root."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from runbook_operator.runner.interfaces import StorageError
from runbook_operator.runner.storage import LocalStorage


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    root = tmp_path / "backups"
    root.mkdir()
    return LocalStorage(root)


def put(storage: LocalStorage, key: str, data: bytes) -> None:
    with storage.writer(key) as out:
        out.write(data)


def get(storage: LocalStorage, key: str) -> bytes:
    with storage.reader(key) as handle:
        return handle.read()


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))


def test_write_then_read(storage: LocalStorage) -> None:
    put(storage, "db/20260102T030405Z/backup.dump", b"data")
    assert get(storage, "db/20260102T030405Z/backup.dump") == b"data"
    assert (storage.root / "db/20260102T030405Z/backup.dump").read_bytes() == b"data"


def test_object_appears_only_after_a_clean_exit(storage: LocalStorage) -> None:
    with storage.writer("db/x/obj") as out:
        out.write(b"half")
        assert list(storage.list()) == []
        with pytest.raises(StorageError):
            get(storage, "db/x/obj")
    assert list(storage.list()) == ["db/x/obj"]


def test_a_failed_write_leaves_nothing(storage: LocalStorage) -> None:
    with pytest.raises(RuntimeError), storage.writer("db/x/obj") as out:
        out.write(b"half")
        raise RuntimeError("the dump failed")
    assert files_under(storage.root) == []


def test_overwrite_is_atomic(storage: LocalStorage) -> None:
    put(storage, "a/manifest.json", b"old")
    with storage.writer("a/manifest.json") as out:
        out.write(b"new")
        assert get(storage, "a/manifest.json") == b"old"
    assert get(storage, "a/manifest.json") == b"new"


def test_writes_are_fsynced(storage: LocalStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd)))
    put(storage, "p/t/obj", b"x")
    assert len(synced) >= 4  # the file, then its directory and each parent up to the root


@pytest.mark.parametrize(
    "key",
    [
        "",
        "../outside",
        "a/../../outside",
        "/etc/passwd",
        "a//b",
        "a/./b",
        "a/",
        "a\\..\\b",
        "a/.partial-123-b",
        "nul\0byte",
    ],
)
def test_keys_cannot_escape_or_be_malformed(storage: LocalStorage, key: str) -> None:
    for operation in (
        lambda: put(storage, key, b"x"),
        lambda: get(storage, key),
        lambda: storage.delete([key]),
    ):
        with pytest.raises(StorageError) as caught:
            operation()
        assert caught.value.reason == "InvalidKey"
    assert not (storage.root.parent / "outside").exists()


def test_list_prefix_cannot_escape(storage: LocalStorage, tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("x")
    with pytest.raises(StorageError):
        list(storage.list("../"))
    assert list(storage.list("/")) == []


def test_symlinks_leading_outside_are_rejected(storage: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "file").write_text("secret")
    (storage.root / "link").symlink_to(outside)
    with pytest.raises(StorageError):
        get(storage, "link/file")
    with pytest.raises(StorageError):
        put(storage, "link/new", b"x")
    assert list(storage.list()) == []
    assert not (outside / "new").exists()


def test_list_is_sorted_scoped_and_hides_partial_writes(storage: LocalStorage) -> None:
    for key in ["db/2/b", "db/1/a", "dbx/1/a", "other/1/a"]:
        put(storage, key, b"x")
    (storage.root / "db/1/.partial-abc-a").write_bytes(b"in progress")
    assert list(storage.list()) == ["db/1/a", "db/2/b", "dbx/1/a", "other/1/a"]
    assert list(storage.list("db/")) == ["db/1/a", "db/2/b"]
    assert list(storage.list("db")) == ["db/1/a", "db/2/b", "dbx/1/a"]
    assert list(storage.list("db/2")) == ["db/2/b"]
    assert list(storage.list("missing/")) == []


def test_delete_removes_objects_and_empty_directories(storage: LocalStorage) -> None:
    put(storage, "db/1/a", b"x")
    put(storage, "db/1/b", b"x")
    put(storage, "db/2/a", b"x")
    storage.delete(["db/1/a", "db/1/b", "db/1/missing"])
    assert files_under(storage.root) == ["db", "db/2", "db/2/a"]
    storage.delete(["db/2/a"])
    assert files_under(storage.root) == []
    assert storage.root.is_dir()


def test_missing_object_is_not_found(storage: LocalStorage) -> None:
    with pytest.raises(StorageError) as caught:
        get(storage, "db/none")
    assert caught.value.reason == "NotFound"


def test_missing_root_is_an_error_not_a_new_directory(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        LocalStorage(tmp_path / "not-mounted")
    assert caught.value.reason == "StorageUnavailable"
    assert not (tmp_path / "not-mounted").exists()


def test_the_directory_inside_a_mounted_volume_is_created_when_missing(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, "team-a", directory="backups/db")
    assert not (tmp_path / "backups").exists()
    assert list(storage.list("db/")) == []
    put(storage, "db/1", b"dump")
    assert (tmp_path / "backups" / "db" / "team-a" / "db" / "1").read_bytes() == b"dump"
    with pytest.raises(StorageError) as caught:
        LocalStorage(tmp_path, directory="../escape")
    assert caught.value.reason == "InvalidKey"


def test_location_is_a_file_url(storage: LocalStorage) -> None:
    assert storage.location() == storage.root.as_uri()
    assert storage.location("db/1") == storage.root.as_uri() + "/db/1"


def test_exclusive_write_never_replaces(storage: LocalStorage) -> None:
    put(storage, "db/1/manifest.json", b"first")
    with pytest.raises(StorageError) as caught, storage.writer(
        "db/1/manifest.json", exclusive=True
    ) as out:
        out.write(b"second")
    assert caught.value.reason == "AlreadyExists"
    assert get(storage, "db/1/manifest.json") == b"first"
    assert files_under(storage.root) == ["db", "db/1", "db/1/manifest.json"]
    with storage.writer("db/2/manifest.json", exclusive=True) as out:
        out.write(b"new")
    assert get(storage, "db/2/manifest.json") == b"new"


def test_exclusive_write_without_hard_links(
    storage: LocalStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """File systems without link() (SMB shares) claim the name with O_EXCL instead."""

    def no_links(source: object, target: object) -> None:
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(os, "link", no_links)
    with storage.writer("db/1/data", exclusive=True) as out:
        out.write(b"first")
    with pytest.raises(StorageError) as caught, storage.writer("db/1/data", exclusive=True) as out:
        out.write(b"second")
    assert caught.value.reason == "AlreadyExists"
    assert get(storage, "db/1/data") == b"first"
    assert files_under(storage.root) == ["db", "db/1", "db/1/data"]


def test_of_two_open_exclusive_writers_the_first_to_commit_wins(storage: LocalStorage) -> None:
    with pytest.raises(StorageError) as caught, storage.writer(
        "db/1/data", exclusive=True
    ) as late:
        late.write(b"late")
        with storage.writer("db/1/data", exclusive=True) as early:
            early.write(b"early")
    assert caught.value.reason == "AlreadyExists"
    assert get(storage, "db/1/data") == b"early"
    assert files_under(storage.root) == ["db", "db/1", "db/1/data"]


def test_a_namespace_has_its_own_directory(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    root.mkdir()
    team_a, team_b = LocalStorage(root, "team-a"), LocalStorage(root, "team-b")
    put(team_a, "db/1/manifest.json", b"a")
    put(team_b, "db/1/manifest.json", b"b")
    assert (get(team_a, "db/1/manifest.json"), get(team_b, "db/1/manifest.json")) == (b"a", b"b")
    assert list(team_a.list()) == ["db/1/manifest.json"]
    assert team_a.location("db/1") == root.resolve().as_uri() + "/team-a/db/1"
    team_a.delete(["db/1/manifest.json"])
    assert files_under(root) == ["team-a", "team-b", "team-b/db", "team-b/db/1",
                                 "team-b/db/1/manifest.json"]
    with pytest.raises(StorageError) as caught:
        get(team_a, "../team-b/db/1/manifest.json")
    assert caught.value.reason == "InvalidKey"


def test_a_namespace_directory_that_is_a_symlink_is_refused(tmp_path: Path) -> None:
    root = tmp_path / "backups"
    (root / "team-b").mkdir(parents=True)
    (root / "team-a").symlink_to(root / "team-b")
    team_a = LocalStorage(root, "team-a")
    with pytest.raises(StorageError):
        put(team_a, "db/1/data", b"x")
    assert list(team_a.list()) == []
    assert files_under(root / "team-b") == []
