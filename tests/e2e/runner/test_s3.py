"""S3 storage against a real MinIO: multipart streaming, prefix and namespace isolation, and
conditional writes that never replace an object."""

from __future__ import annotations

import json
import os
import threading
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from runbook_operator.devcluster.services import MinioServer
from runbook_operator.runner import config as runner_config
from runbook_operator.runner.interfaces import StorageError
from runbook_operator.runner.main import run
from runbook_operator.runner.results import RunResult
from runbook_operator.runner.storage.s3 import MiB, S3Storage

from tests.support.streams import sha256


@pytest.fixture(scope="module")
def bucket(minio: MinioServer) -> str:
    minio.create_bucket("runner-tests")
    return "runner-tests"


@pytest.fixture
def credentials(minio: MinioServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_S3_ACCESS_KEY", minio.access_key)
    monkeypatch.setenv("TEST_S3_SECRET_KEY", minio.secret_key)


@pytest.fixture
def storage_at(minio: MinioServer, bucket: str, credentials: None) -> Callable[..., S3Storage]:
    def make(prefix: str, **overrides: object) -> S3Storage:
        return S3Storage.from_settings(
            {
                "bucket": bucket,
                "prefix": prefix,
                "endpointUrl": minio.endpoint_url,
                "region": minio.region,
                "accessKeyIdEnv": "TEST_S3_ACCESS_KEY",
                "secretAccessKeyEnv": "TEST_S3_SECRET_KEY",
                "forcePathStyle": True,
                "partSizeMib": 5,
                **overrides,
            }
        )

    return make


def raw_keys(minio: MinioServer, bucket: str) -> list[str]:
    listed = minio.client().list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def pending_uploads(minio: MinioServer, bucket: str) -> list[str]:
    return [
        u["Key"] for u in minio.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    ]


def write_in_chunks(storage: S3Storage, key: str, data: bytes, chunk: int = 1_000_003) -> None:
    with storage.writer(key) as out:
        for offset in range(0, len(data), chunk):
            out.write(data[offset : offset + chunk])


def test_multipart_round_trip(storage_at, minio: MinioServer, bucket: str, unique) -> None:
    storage = storage_at(unique("rt"))
    data = os.urandom(17 * MiB + 123)  # 4 parts of 5 MiB, the last one short
    write_in_chunks(storage, "policy/20240101T000000Z/data.zst", data)
    with storage.reader("policy/20240101T000000Z/data.zst") as stream:
        assert sha256(stream.read()) == sha256(data)
    head = minio.client().head_object(
        Bucket=bucket, Key=f"{storage.root}policy/20240101T000000Z/data.zst"
    )
    assert head["ETag"].endswith('-4"'), "uploaded as 4 parts"
    assert storage.location("policy/x") == f"s3://{bucket}/{storage.root}policy/x"


def test_small_object_list_and_delete(storage_at, unique) -> None:
    storage = storage_at(unique("small") + "/nested/")
    for key in ("a/1/manifest.json", "a/1/data", "a/2/data", "b/1/data"):
        with storage.writer(key) as out:
            out.write(key.encode())
    assert sorted(storage.list()) == ["a/1/data", "a/1/manifest.json", "a/2/data", "b/1/data"]
    assert sorted(storage.list("a/")) == ["a/1/data", "a/1/manifest.json", "a/2/data"]
    assert sorted(storage.list("a/1")) == ["a/1/data", "a/1/manifest.json"]
    with storage.reader("a/2/data") as stream:
        assert stream.read() == b"a/2/data"
    storage.delete(["a/1/data", "a/1/manifest.json", "a/never-existed"])
    assert sorted(storage.list()) == ["a/2/data", "b/1/data"]
    with storage.writer("empty") as out:
        pass
    with storage.reader("empty") as stream:
        assert stream.read() == b""


def test_prefix_isolation(storage_at, minio: MinioServer, bucket: str, unique) -> None:
    base = unique("iso")
    mine, sibling, parent = (
        storage_at(f"{base}/policy"),
        storage_at(f"{base}/policy-old"),
        storage_at(base),
    )
    with mine.writer("k") as out:
        out.write(b"mine")
    with sibling.writer("k") as out:
        out.write(b"sibling")
    assert list(mine.list()) == ["k"]
    assert list(mine.list("")) == ["k"]
    assert sorted(parent.list()) == ["policy-old/k", "policy/k"]
    mine.delete(list(mine.list()))
    assert list(mine.list()) == []
    assert list(sibling.list()) == ["k"]
    for bad in ("../policy-old/k", "/abs", "a//b", "./k", "", "a/../../k"):
        with pytest.raises(StorageError, match="key"):
            mine.delete([bad])
    with pytest.raises(StorageError):
        list(mine.list("../"))
    assert f"{base}/policy-old/k" in raw_keys(minio, bucket)


def test_failed_write_leaves_nothing(storage_at, minio: MinioServer, bucket: str, unique) -> None:
    storage = storage_at(unique("abort"))
    with pytest.raises(RuntimeError, match="dump failed"), storage.writer("big") as out:
        out.write(os.urandom(12 * MiB))  # two parts uploaded already
        raise RuntimeError("dump failed")
    with pytest.raises(RuntimeError, match="dump failed"), storage.writer("small") as out:
        out.write(b"a little")
        raise RuntimeError("dump failed")
    assert list(storage.list()) == []
    assert not any(k.startswith(storage.root) for k in pending_uploads(minio, bucket))


def test_missing_object_and_bad_credentials(storage_at, monkeypatch, minio: MinioServer) -> None:
    storage = storage_at("missing")
    with pytest.raises(StorageError, match="no object at s3://") as failure, storage.reader("nope"):
        pass
    assert failure.value.reason == "NotFound"
    monkeypatch.setenv("TEST_S3_SECRET_KEY", "wrong-secret-value")
    denied = storage_at("denied")
    with pytest.raises(StorageError) as failure, denied.writer("k") as out:
        out.write(b"x")
    assert failure.value.reason == "StorageAccessDenied"
    assert "wrong-secret-value" not in str(failure.value)
    assert minio.secret_key not in str(failure.value)
    monkeypatch.delenv("TEST_S3_SECRET_KEY")
    with pytest.raises(StorageError, match="TEST_S3_SECRET_KEY is not set"):
        storage_at("unset")


def test_missing_bucket_is_reported(storage_at) -> None:
    storage = storage_at("p", bucket="no-such-bucket-here")
    with pytest.raises(StorageError, match="NoSuchBucket") as failure, storage.writer("k") as out:
        out.write(b"x")
    assert failure.value.reason == "StorageUnavailable"


def test_upload_memory_stays_bounded(storage_at, unique) -> None:
    """≈ two 5 MiB parts in memory while 60 MiB stream through."""
    storage = storage_at(unique("mem"))
    chunk = os.urandom(MiB)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        with storage.writer("stream") as out:
            for _ in range(60):
                out.write(chunk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 3 * 5 * MiB, f"peak {peak / MiB:.1f} MiB"
    with storage.reader("stream") as stream:
        total = 0
        while block := stream.read(MiB):
            total += len(block)
    assert total == 60 * MiB


def test_concurrent_writers_do_not_mix(storage_at, unique) -> None:
    storage = storage_at(unique("concurrent"))
    payloads = {f"k{i}": os.urandom(6 * MiB + i) for i in range(3)}
    threads = [
        threading.Thread(target=write_in_chunks, args=(storage, k, v)) for k, v in payloads.items()
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for key, value in payloads.items():
        with storage.reader(key) as stream:
            assert sha256(stream.read()) == sha256(value)


def test_exclusive_writes_never_replace(storage_at, minio: MinioServer, bucket: str,
                                        unique) -> None:
    """`If-None-Match: *` on the single PUT and on CompleteMultipartUpload."""
    storage = storage_at(unique("exclusive"))
    for key, size in (("small", 1000), ("multipart", 12 * MiB)):
        first = os.urandom(size)
        write_in_chunks(storage, key, first)
        with pytest.raises(StorageError) as refused, storage.writer(key, exclusive=True) as out:
            out.write(os.urandom(size))
        assert refused.value.reason == "AlreadyExists"
        with storage.reader(key) as stream:
            assert sha256(stream.read()) == sha256(first)
        with storage.writer(f"new-{key}", exclusive=True) as out:
            out.write(first)
    assert sorted(storage.list()) == ["multipart", "new-multipart", "new-small", "small"]
    assert not any(k.startswith(storage.root) for k in pending_uploads(minio, bucket))


def test_of_two_open_exclusive_uploads_the_first_to_complete_wins(storage_at, unique) -> None:
    storage = storage_at(unique("race"))
    early, late = os.urandom(11 * MiB), os.urandom(11 * MiB)
    with pytest.raises(StorageError) as refused, storage.writer(
        "data", exclusive=True
    ) as late_out:
        late_out.write(late)  # two parts already uploaded
        with storage.writer("data", exclusive=True) as early_out:
            early_out.write(early)
    assert refused.value.reason == "AlreadyExists"
    with storage.reader("data") as stream:
        assert sha256(stream.read()) == sha256(early)


def test_same_policy_in_two_namespaces_shares_a_bucket(
    minio: MinioServer, bucket: str, credentials: None, unique, tmp_path
) -> None:
    """The runner's own configs: same policy name, same start times, one bucket and prefix;
    each namespace keeps its own backups and its retention touches only them."""
    prefix = unique("shared")
    made: dict[str, list[RunResult]] = {}
    for namespace in ("team-a", "team-b"):
        config = runner_config.parse_config(json.dumps({
            "operation": "backup", "policy": "db", "namespace": namespace,
            "encryption": {"mode": "none"}, "retention": {"keepLast": 2},
            "source": {"kind": "command", "settings": {"command": ["echo", namespace]}},
            "storage": {"s3": {
                "bucket": bucket, "prefix": prefix, "endpointUrl": minio.endpoint_url,
                "accessKeyIdEnv": "TEST_S3_ACCESS_KEY", "secretAccessKeyEnv": "TEST_S3_SECRET_KEY",
                "forcePathStyle": True}},
        }))
        made[namespace] = [run(config, {}, fixed_clock(day)) for day in range(3)]
    for namespace, results in made.items():
        assert all(r.ok for r in results), [r.message for r in results]
        assert [r.pruned_count for r in results] == [0, 0, 1]
        assert results[0].location == f"s3://{bucket}/{prefix}/{namespace}/{results[0].key}"
        kept = sorted({k.rsplit("/", 1)[0] for k in raw_keys(minio, bucket)
                       if k.startswith(f"{prefix}/{namespace}/")})
        assert kept == [f"{prefix}/{namespace}/{r.key}" for r in results[1:]]
    assert [r.key for r in made["team-a"]] == [r.key for r in made["team-b"]]


def fixed_clock(day: int) -> Callable[[], datetime]:
    """Every reading on day `day` at 02:00 UTC: two runs given the same day collide."""
    return lambda: datetime(2026, 3, 1 + day, 2, 0, tzinfo=UTC)
