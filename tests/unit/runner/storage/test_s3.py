"""S3 storage's requests where no real server can show them (MinIO answers every conditional
write): the key layout, and servers without conditional writes. The MinIO tests are in
tests/e2e/runner/test_s3.py."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import ANY, Stubber

from runbook_operator.runner.interfaces import StorageError
from runbook_operator.runner.storage.s3 import S3Settings, S3Storage


@pytest.fixture
def stub() -> Stubber:
    client = boto3.session.Session().client(
        "s3", region_name="us-east-1", aws_access_key_id="id", aws_secret_access_key="secret"
    )
    with Stubber(client) as stubber:
        yield stubber
        stubber.assert_no_pending_responses()


def storage(stub: Stubber) -> S3Storage:
    return S3Storage(S3Settings(bucket="backups", prefix="/prod/"), stub.client, "team-a")


def put_params(**extra: str) -> dict[str, object]:
    return {"Bucket": "backups", "Key": "prod/team-a/db/1/manifest.json", "Body": ANY, **extra}


def test_keys_live_under_the_prefix_and_the_namespace(stub: Stubber) -> None:
    assert storage(stub).location("db/1") == "s3://backups/prod/team-a/db/1"
    assert S3Storage(S3Settings(bucket="backups"), stub.client, "team-a").root == "team-a/"


@pytest.mark.parametrize(
    ("code", "status", "reason"),
    [("PreconditionFailed", 412, "AlreadyExists"), ("AccessDenied", 403, "StorageAccessDenied")],
)
def test_a_refused_conditional_write_fails(stub: Stubber, code: str, status: int,
                                           reason: str) -> None:
    """412: the object exists and is not replaced; any other error is the write's failure."""
    stub.add_client_error("put_object", code, http_status_code=status,
                          expected_params=put_params(IfNoneMatch="*"))
    with pytest.raises(StorageError) as caught, storage(stub).writer(
        "db/1/manifest.json", exclusive=True
    ) as out:
        out.write(b"{}")
    assert caught.value.reason == reason


def test_servers_without_conditional_writes_get_plain_ones(stub: Stubber) -> None:
    stub.add_client_error("put_object", "NotImplemented", http_status_code=501,
                          expected_params=put_params(IfNoneMatch="*"))
    stub.add_response("put_object", {}, expected_params=put_params())
    with storage(stub).writer("db/1/manifest.json", exclusive=True) as out:
        out.write(b"{}")
