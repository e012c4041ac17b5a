"""The backup pipeline end to end on a directory: stream, verify, commit, list, restore, and
every failure reported as a failed result that leaves no committed backup behind."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO

import pytest

from runbook_operator.runner import pipeline
from runbook_operator.runner.catalog import list_backups
from runbook_operator.runner.compression import Compression, Passthrough
from runbook_operator.runner.crypto import Key
from runbook_operator.runner.interfaces import RestoreError
from runbook_operator.runner.main import main
from runbook_operator.runner.pipeline import (
    BackupSettings,
    run_backup,
    run_restore,
    verify_backup,
)
from runbook_operator.runner.results import TERMINATION_MESSAGE_LIMIT, RunResult
from runbook_operator.runner.storage import LocalStorage
from tests.support.streams import KEY, START, Clock, ShellSource, settings

OTHER_KEY = Key(bytes(range(5, 37)))


class MemorySink:
    def __init__(self) -> None:
        self.data = bytearray()
        self.closed = False
        self.finished = False
        self.stream = self

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)

    def close(self) -> None:
        self.closed = True

    def finish(self) -> None:
        self.finished = True


class MemoryTarget:
    kind = "memory"

    def __init__(self) -> None:
        self.sinks: list[MemorySink] = []

    def start(self) -> MemorySink:
        self.sinks.append(MemorySink())
        return self.sinks[-1]


class ProcessSink:
    def __init__(self, script: str) -> None:
        self._process = subprocess.Popen(["sh", "-c", script], stdin=subprocess.PIPE)
        self.stream: BinaryIO = self._process.stdin  # type: ignore[assignment]

    def finish(self) -> None:
        if self._process.wait():
            raise RestoreError(f"the checker exited with {self._process.returncode}")


class ProcessTarget:
    """A checker or target fed on stdin, like `pg_restore --list`."""

    kind = "process"

    def __init__(self, script: str) -> None:
        self.script = script

    def start(self) -> ProcessSink:
        return ProcessSink(self.script)


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    """The namespace's part of a volume, as the runner opens it for team-a's policies."""
    root = tmp_path / "backups"
    root.mkdir()
    return LocalStorage(root, "team-a")


@pytest.fixture
def data_file(tmp_path: Path) -> Path:
    """Incompressible and compressible parts, several chunks long."""
    path = tmp_path / "dump.bin"
    with open("/dev/urandom", "rb") as random:
        path.write_bytes(random.read(1_500_000) + b"COPY public.t (id) FROM stdin;\n" * 40_000)
    return path


def files_under(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def backup(storage: LocalStorage, source: ShellSource, **extra: object) -> RunResult:
    return run_backup(source, storage, settings(**extra), Clock())  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["zstd", "gzip", "none"])
@pytest.mark.parametrize("encrypted", [True, False], ids=["aes", "plain"])
def test_round_trip_is_byte_for_byte(
    storage: LocalStorage,
    data_file: Path,
    tmp_path: Path,
    compression: Compression,
    encrypted: bool,
) -> None:
    key = KEY if encrypted else None
    source = ShellSource(f"cat {data_file}", tmp_path)
    result = run_backup(source, storage, settings(compression, key), Clock())
    assert result.ok, result.message
    assert (result.reason, result.verified, result.key) == (
        "Succeeded",
        True,
        "db/20260102T030405Z",
    )
    assert result.raw_size_bytes == data_file.stat().st_size

    suffix = {"zstd": ".zst", "gzip": ".gz", "none": ""}[compression] + (".enc" if key else "")
    data_name = f"db/20260102T030405Z/backup.dump{suffix}"
    assert files_under(storage.base) == sorted([data_name, "db/20260102T030405Z/manifest.json"])
    stored = (storage.base / data_name).read_bytes()
    assert result.sha256 == hashlib.sha256(stored).hexdigest()
    assert result.size_bytes == len(stored)

    target = MemoryTarget()
    restored = run_restore(storage, result.key, target, key, now=Clock(step=4))  # type: ignore[arg-type]
    assert restored.ok, restored.message
    assert bytes(target.sinks[0].data) == data_file.read_bytes()
    assert target.sinks[0].closed and target.sinks[0].finished
    assert restored.duration_seconds == 4.0  # the measured RTO


def test_manifest_describes_the_backup(
    storage: LocalStorage, data_file: Path, tmp_path: Path
) -> None:
    result = backup(storage, ShellSource(f"cat {data_file}", tmp_path))
    manifest = json.loads((storage.base / "db/20260102T030405Z/manifest.json").read_text())
    assert manifest == {
        "formatVersion": 1,
        "policy": "db",
        "namespace": "team-a",
        "sourceKind": "command",
        "startedAt": "2026-01-02T03:04:05Z",
        "finishedAt": manifest["finishedAt"],
        "dataObject": "backup.dump.zst.enc",
        "compression": "zstd",
        "encryption": {"algorithm": "aes-256-gcm", "keyId": KEY.id, "chunkSize": 65536},
        "sha256": result.sha256,
        "sizeBytes": result.size_bytes,
        "rawSizeBytes": data_file.stat().st_size,
        "runnerVersion": result.runner_version,
        "verification": {"verifiedAt": manifest["finishedAt"]},
    }
    assert manifest["finishedAt"].endswith("Z") and manifest["finishedAt"] > manifest["startedAt"]
    assert KEY.material.hex() not in json.dumps(manifest)
    assert result.key_id == KEY.id  # reported, so the operator's status names the key


class RecordingStorage(LocalStorage):
    """Records the order in which objects are committed, and whether exclusively."""

    committed: list[tuple[str, bool]]

    @contextmanager
    def writer(self, key: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        with super().writer(key, exclusive=exclusive) as out:
            yield out
        self.committed.append((key.rsplit("/", 1)[1], exclusive))


def test_manifest_is_written_last_and_nothing_is_replaced(
    storage: LocalStorage, tmp_path: Path
) -> None:
    recording = RecordingStorage(storage.root, "team-a")
    recording.committed = []
    assert backup(recording, ShellSource("echo data", tmp_path)).ok  # type: ignore[arg-type]
    assert recording.committed == [("backup.dump.zst.enc", True), ("manifest.json", True)]


def test_list_ignores_incomplete_backups_and_other_namespaces(
    storage: LocalStorage, tmp_path: Path
) -> None:
    source = ShellSource("echo data", tmp_path)
    first = run_backup(source, storage, settings(), Clock(START))
    second = run_backup(source, storage, settings(), Clock(START + timedelta(hours=1)))
    other = run_backup(
        source,
        storage,
        BackupSettings(policy="db", namespace="team-b", encryption="none"),
        Clock(START + timedelta(hours=2)),
    )
    assert first.ok and second.ok and other.ok
    (storage.base / "db/20260103T000000Z").mkdir()
    (storage.base / "db/20260103T000000Z/backup.dump.zst.enc").write_bytes(b"no manifest")
    (storage.base / "db/20260104T000000Z").mkdir()
    (storage.base / "db/20260104T000000Z/manifest.json").write_text("{not json")

    listed = list_backups(storage, "db", "team-a")
    assert [b.key for b in listed] == [first.key, second.key]
    assert all(b.verified and b.key_id == KEY.id for b in listed)
    assert first.key_id == KEY.id and other.key_id is None
    assert [b.key for b in list_backups(storage, "db")] == [first.key, second.key, other.key]
    assert list_backups(storage, "other") == []


def corrupt(path: Path, position: int) -> None:
    data = bytearray(path.read_bytes())
    data[position] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.fixture
def committed(storage: LocalStorage, data_file: Path, tmp_path: Path) -> tuple[str, Path]:
    result = backup(storage, ShellSource(f"cat {data_file}", tmp_path))
    assert result.ok
    return result.key, storage.base / result.key / "backup.dump.zst.enc"  # type: ignore[return-value]


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_one_corrupted_byte_fails_verification_and_restore(
    storage: LocalStorage, committed: tuple[str, Path], where: float
) -> None:
    key, data = committed
    corrupt(data, min(int(data.stat().st_size * where), data.stat().st_size - 1))
    verified = verify_backup(storage, key, KEY)
    assert (verified.ok, verified.reason) == (False, "Corrupted")
    assert "sha256" in verified.message

    target = MemoryTarget()
    restored = run_restore(storage, key, target, KEY)
    assert (restored.ok, restored.reason) == (False, "Corrupted")
    assert target.sinks == []  # verified first: the target never saw a byte


@pytest.mark.parametrize("keep", [0, 10, 0.5, -1])
def test_truncated_backup_fails_with_truncated(
    storage: LocalStorage, committed: tuple[str, Path], keep: float
) -> None:
    key, data = committed
    content = data.read_bytes()
    cut = int(len(content) * keep) if isinstance(keep, float) else keep
    data.write_bytes(content[:cut])
    verified = verify_backup(storage, key, KEY)
    assert (verified.ok, verified.reason) == (False, "Truncated")
    assert str(len(content)) in verified.message

    target = MemoryTarget()
    restored = run_restore(storage, key, target, KEY)
    assert (restored.ok, restored.reason) == (False, "Truncated")
    assert target.sinks == []


def test_truncation_without_prior_verification_still_fails_the_restore(
    storage: LocalStorage, committed: tuple[str, Path]
) -> None:
    key, data = committed
    data.write_bytes(data.read_bytes()[:-100])
    target = MemoryTarget()
    restored = run_restore(storage, key, target, KEY, verify_first=False)
    assert (restored.ok, restored.reason) == (False, "Truncated")
    assert target.sinks[0].closed  # the target's input was ended, not left hanging


def test_wrong_or_missing_key_is_clear_and_overwrites_nothing(
    storage: LocalStorage, committed: tuple[str, Path]
) -> None:
    key, _ = committed
    before = {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()}
    target = MemoryTarget()
    for restored in (
        run_restore(storage, key, target, OTHER_KEY),
        run_restore(storage, key, target, OTHER_KEY, verify_first=False),
    ):
        assert (restored.ok, restored.reason) == (False, "WrongKey")
        assert KEY.id in restored.message and OTHER_KEY.id in restored.message
    missing = run_restore(storage, key, target, None)
    assert (missing.ok, missing.reason) == (False, "MissingKey")
    assert target.sinks == []
    assert verify_backup(storage, key, OTHER_KEY).reason == "WrongKey"
    assert {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()} == before


def test_restore_of_unknown_backup(storage: LocalStorage) -> None:
    restored = run_restore(storage, "db/20990101T000000Z", MemoryTarget(), KEY)
    assert (restored.ok, restored.reason) == (False, "BackupNotFound")


def test_failing_dump_is_a_failure_with_the_stderr_tail(
    storage: LocalStorage, tmp_path: Path
) -> None:
    script = "head -c 3000000 /dev/urandom; echo 'pg_dump: error: connection refused' >&2; exit 1"
    source = ShellSource(script, tmp_path)
    result = backup(storage, source)
    assert (result.ok, result.reason) == (False, "DumpFailed")
    assert "connection refused" in result.message
    assert files_under(storage.root) == []
    assert list_backups(storage, "db") == []
    assert source.dumps[0].returncode == 1


def test_result_fits_the_termination_message_even_with_huge_stderr(
    storage: LocalStorage, tmp_path: Path
) -> None:
    noise = "yes 'noise ☃ \"quoted\" \\\\ line' | head -c 5000000 >&2"
    script = f"{noise}; echo 'the real error' >&2; exit 2"
    result = backup(storage, ShellSource(script, tmp_path))
    assert (result.ok, result.reason) == (False, "DumpFailed")
    text = result.to_json()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(text)["message"].rstrip().endswith("the real error")


class FailingStorage(LocalStorage):
    """Fails after some bytes have been written, like a full disk."""

    @contextmanager
    def writer(self, key: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        with super().writer(key, exclusive=exclusive) as out:
            yield _FailAfter(out, 1_000_000)  # type: ignore[misc]


class _FailAfter:
    def __init__(self, out: BinaryIO, limit: int) -> None:
        self.out, self.left = out, limit

    def write(self, data: bytes) -> int:
        self.left -= len(data)
        if self.left < 0:
            raise OSError(28, "No space left on device")
        return self.out.write(data)


def test_failing_upload_stops_the_dump_and_leaves_nothing(
    storage: LocalStorage, tmp_path: Path
) -> None:
    source = ShellSource("cat /dev/urandom", tmp_path)  # endless: only a closed pipe stops it
    result = backup(FailingStorage(storage.root, "team-a"), source)  # type: ignore[arg-type]
    assert (result.ok, result.reason) == (False, "StorageFailed")
    assert "No space left" in result.message
    assert source.dumps[0].returncode is not None  # reaped, not left running
    assert files_under(storage.root) == []


def test_failing_checker_fails_the_backup(storage: LocalStorage, tmp_path: Path) -> None:
    checker = ProcessTarget("cat >/dev/null; exit 3")
    result = backup(storage, ShellSource("echo data", tmp_path), verifier=checker)
    assert (result.ok, result.reason) == (False, "CheckFailed")
    assert "exited with 3" in result.message
    assert files_under(storage.root) == []


def test_checker_may_stop_reading_early(storage: LocalStorage, tmp_path: Path) -> None:
    checker = ProcessTarget("head -c 100 >/dev/null")  # like pg_restore --list reading the TOC
    source = ShellSource("head -c 5000000 /dev/urandom", tmp_path)
    result = backup(storage, source, verifier=checker)
    assert result.ok, result.message


def test_checker_sees_the_decompressed_dump(storage: LocalStorage, tmp_path: Path) -> None:
    seen = tmp_path / "seen"
    result = backup(
        storage,
        ShellSource("printf 'PGDMP header'", tmp_path),
        verifier=ProcessTarget(f"cat > {seen}"),
    )
    assert result.ok
    assert seen.read_bytes() == b"PGDMP header"
    [listed] = list_backups(storage, "db")
    assert (listed.verified, listed.content_check) == (True, "process")


def test_a_successful_restore_is_recorded_beside_its_backup(
    storage: LocalStorage, committed: tuple[str, Path]
) -> None:
    key, _ = committed
    assert verify_backup(storage, key, KEY).ok
    assert run_restore(storage, key, ProcessTarget("cat >/dev/null; exit 4"), KEY).ok is False
    [untested] = list_backups(storage, "db")
    assert untested.restore_tested_at is None
    assert not (storage.base / key / "restore-test.json").exists()

    restored = run_restore(storage, key, MemoryTarget(), KEY, now=Clock(step=4))
    assert restored.ok, restored.message
    record = json.loads((storage.base / key / "restore-test.json").read_text())
    assert record == {
        "formatVersion": 1, "restoredAt": "2026-01-02T03:04:09Z", "targetKind": "memory",
        "durationSeconds": 4.0, "sha256": untested.sha256,
        "runnerVersion": restored.runner_version,
    }
    [tested] = list_backups(storage, "db")
    assert tested.restore_tested_at == restored.finished_at


def test_encryption_without_a_key_is_refused(storage: LocalStorage, tmp_path: Path) -> None:
    no_key = BackupSettings(policy="db", namespace="team-a", encryption="aes-256-gcm")
    result = run_backup(ShellSource("echo data", tmp_path), storage, no_key, Clock())
    assert (result.ok, result.reason) == (False, "MissingKey")
    assert files_under(storage.root) == []


def test_a_backup_is_never_overwritten(storage: LocalStorage, tmp_path: Path) -> None:
    assert backup(storage, ShellSource("echo first", tmp_path)).ok
    before = {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()}
    again = backup(storage, ShellSource("echo second", tmp_path))
    assert (again.ok, again.reason) == (False, "BackupExists")
    assert {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()} == before


class BlindStorage(LocalStorage):
    """Lists nothing, like a second run whose look for an existing backup came a moment
    before the first run's objects appeared."""

    def list(self, prefix: str = "") -> Iterator[str]:
        return iter(())


def test_a_backup_made_meanwhile_is_not_overwritten(
    storage: LocalStorage, tmp_path: Path
) -> None:
    assert backup(storage, ShellSource("echo first", tmp_path)).ok
    before = {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()}
    blind = BlindStorage(storage.root, "team-a")
    again = backup(blind, ShellSource("echo second", tmp_path))  # type: ignore[arg-type]
    assert (again.ok, again.reason) == (False, "BackupExists")
    assert {p: p.read_bytes() for p in storage.root.rglob("*") if p.is_file()} == before


class Scrambler(Passthrough):
    """A broken encoder stage: what it emits is no zstd stream."""

    def update(self, data: bytes) -> bytes:
        return bytes(reversed(data))


def test_a_stream_that_does_not_decode_stops_the_dump_and_stores_nothing(
    storage: LocalStorage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pipeline, "compressor", lambda kind, level=None: Scrambler())
    source = ShellSource("cat /dev/urandom", tmp_path)  # endless: only a failure stops it
    result = backup(storage, source, key=None)
    assert (result.ok, result.reason) == (False, "Corrupted")
    assert "zstd" in result.message
    assert source.dumps[0].returncode is not None
    assert files_under(storage.root) == []


class LyingStorage(LocalStorage):
    """Acknowledges every write but loses the tail of the data object."""

    @contextmanager
    def writer(self, key: str, *, exclusive: bool = False) -> Iterator[BinaryIO]:
        with super().writer(key, exclusive=exclusive) as out:
            yield out
            if not key.endswith(".json"):
                out.truncate(1000)


def test_the_stored_copy_is_read_back_not_just_the_stream(
    storage: LocalStorage, data_file: Path, tmp_path: Path
) -> None:
    lying = LyingStorage(storage.root, "team-a")
    result = backup(lying, ShellSource(f"cat {data_file}", tmp_path))  # type: ignore[arg-type]
    assert (result.ok, result.reason) == (False, "Truncated")
    assert "the stored object has 1000 bytes" in result.message
    assert files_under(storage.root) == []


def test_failing_restore_target_is_reported(
    storage: LocalStorage, committed: tuple[str, Path]
) -> None:
    key, _ = committed
    restored = run_restore(storage, key, ProcessTarget("cat >/dev/null; exit 4"), KEY)
    assert (restored.ok, restored.reason) == (False, "RestoreFailed")
    early = run_restore(storage, key, ProcessTarget("head -c 10 >/dev/null"), KEY)
    assert (early.ok, early.reason) == (False, "RestoreFailed")


class TestMain:
    """`runbook-operator runner`: config in, result file and exit code out, no secrets."""

    def run(self, tmp_path: Path, config: dict, **env: str) -> tuple[int, dict]:
        result_file = tmp_path / "termination-log"
        environ = {"RUNBOOK_RUNNER_CONFIG": json.dumps(config), **env}
        code = main(["--result-file", str(result_file)], environ)
        return code, json.loads(result_file.read_text())

    def config(self, storage: LocalStorage, **extra: object) -> dict:
        return {
            "policy": "db",
            "namespace": "team-a",
            "storage": {"local": {"path": str(storage.root)}},
            **extra,
        }

    def test_backup_list_restore_round_trip_without_leaking_the_key(
        self,
        storage: LocalStorage,
        data_file: Path,
        tmp_path: Path,
        capsys: pytest.CaptureFixture[str],
    ) -> None:
        secret = KEY.material.hex()
        source = {"kind": "command", "settings": {"command": ["cat", str(data_file)]}}
        code, result = self.run(
            tmp_path,
            self.config(storage, operation="backup", source=source),
            RUNBOOK_ENCRYPTION_KEY=secret,
        )
        assert (code, result["ok"], result["verified"]) == (0, True, True)

        code, listed = self.run(tmp_path, self.config(storage, operation="list"))
        assert (code, listed["count"], listed["newest"]) == (0, 1, result["key"])

        restored_file = tmp_path / "restored"
        target = {
            "kind": "command",
            "settings": {"command": ["sh", "-c", f"cat > {restored_file}"]},
        }
        code, restored = self.run(
            tmp_path,
            self.config(storage, operation="restore", restoreTarget=target),
            RUNBOOK_ENCRYPTION_KEY=secret,
        )
        assert (code, restored["ok"]) == (0, True), restored
        assert restored_file.read_bytes() == data_file.read_bytes()

        output = capsys.readouterr()
        assert json.loads(output.out)["backups"][0]["key"] == result["key"]
        assert secret not in output.out + output.err
        assert secret not in json.dumps([result, listed, restored])

    def test_verify_checks_the_newest_backup(
        self, storage: LocalStorage, committed: tuple[str, Path], tmp_path: Path
    ) -> None:
        key, data = committed
        config = self.config(storage, operation="verify")
        code, result = self.run(tmp_path, config, RUNBOOK_ENCRYPTION_KEY=KEY.material.hex())
        assert (code, result["ok"], result["key"]) == (0, True, key)
        corrupt(data, 100)
        code, result = self.run(tmp_path, config, RUNBOOK_ENCRYPTION_KEY=KEY.material.hex())
        assert (code, result["reason"]) == (1, "Corrupted")

    def test_invalid_key_is_reported_without_its_value(
        self, storage: LocalStorage, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        source = {"kind": "command", "settings": {"command": ["echo", "x"]}}
        bad = "not-a-key-but-a-secret-password"
        code, result = self.run(
            tmp_path,
            self.config(storage, operation="backup", source=source),
            RUNBOOK_ENCRYPTION_KEY=bad,
        )
        assert (code, result["reason"]) == (2, "InvalidKey")
        assert bad not in json.dumps(result) + capsys.readouterr().err

    def test_failed_backup_exits_non_zero(self, storage: LocalStorage, tmp_path: Path) -> None:
        source = {"kind": "command", "settings": {"command": ["sh", "-c", "echo bad >&2; exit 1"]}}
        code, result = self.run(
            tmp_path,
            self.config(storage, operation="backup", source=source, encryption={"mode": "none"}),
        )
        assert (code, result["ok"], result["reason"]) == (1, False, "DumpFailed")

    def test_missing_key_is_not_retryable(self, storage: LocalStorage, tmp_path: Path) -> None:
        source = {"kind": "command", "settings": {"command": ["echo", "x"]}}
        code, result = self.run(tmp_path, self.config(storage, operation="backup", source=source))
        assert (code, result["reason"]) == (2, "MissingKey")
        assert files_under(storage.root) == []

    @pytest.mark.parametrize(
        "config",
        ["{", json.dumps({"operation": "backup"}), json.dumps({"operation": "explode"})],
        ids=["not-json", "incomplete", "unknown-operation"],
    )
    def test_invalid_config(self, tmp_path: Path, config: str) -> None:
        result_file = tmp_path / "termination-log"
        code = main(["--result-file", str(result_file)], {"RUNBOOK_RUNNER_CONFIG": config})
        result = json.loads(result_file.read_text())
        assert (code, result["ok"], result["reason"]) == (2, False, "InvalidConfig")


MEMORY_CHILD = textwrap.dedent(
    """
    import subprocess, sys
    from pathlib import Path
    from runbook_operator.runner.crypto import Key
    from runbook_operator.runner.interfaces import SourceError
    from runbook_operator.runner.pipeline import BackupSettings, run_backup, run_restore
    from runbook_operator.runner.storage import LocalStorage

    SCRIPT = "head -c 120000000 /dev/urandom; head -c 120000000 /dev/zero"

    class Dump:
        def __init__(self):
            self.process = subprocess.Popen(["sh", "-c", SCRIPT], stdout=subprocess.PIPE)
            self.stream = self.process.stdout
        def finish(self):
            if self.process.wait():
                raise SourceError("dump failed")

    class Source:
        kind = "command"
        def start(self):
            return Dump()

    class Counter:
        def __init__(self):
            self.size = 0
            self.stream = self
        def write(self, data):
            self.size += len(data)
        def close(self):
            pass
        def finish(self):
            pass

    class Target:
        kind = "counter"
        def start(self):
            self.sink = Counter()
            return self.sink

    storage = LocalStorage(sys.argv[1])
    key = Key(bytes(range(32)))
    result = run_backup(Source(), storage, BackupSettings(
        policy="big", namespace="ns", encryption="aes-256-gcm", key=key))
    assert result.ok and result.raw_size_bytes == 240000000, result
    target = Target()
    restored = run_restore(storage, result.key, target, key)
    assert restored.ok and target.sink.size == 240000000, restored
    """
)

MEMORY_WRAPPER = textwrap.dedent(
    """
    import resource, subprocess, sys
    subprocess.run([sys.executable, "-c", sys.argv[1], sys.argv[2]], check=True)
    print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    """
)


def test_memory_stays_bounded_while_streaming_240_mb(tmp_path: Path) -> None:
    """Backup (with verification) and restore of 240 MB, half incompressible and half zeros
    (which zstd shrinks by four orders of magnitude), measured in a child process."""
    root = tmp_path / "backups"
    root.mkdir()
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_WRAPPER, MEMORY_CHILD, str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    peak_mib = int(done.stdout.strip()) / 1024  # Linux reports KiB
    assert peak_mib < 100, f"peak RSS {peak_mib:.0f} MiB"
