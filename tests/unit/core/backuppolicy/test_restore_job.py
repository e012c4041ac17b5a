"""The restore Job built from a policy's backup CronJob: target, config, labels, refusals."""

from __future__ import annotations

import json
from typing import Any

import pytest
from runbook_operator.api.backuppolicy import BackupPolicySpec
from runbook_operator.core.backuppolicy.cronjob import render_cronjob
from runbook_operator.core.backuppolicy.names import (
    OPERATION_LABEL,
    Owner,
    POLICY_LABEL,
    RUNNER_LABEL,
)
from runbook_operator.core.backuppolicy.runner_config import (
    ENCRYPTION_KEY_ENV,
    RUNNER_CONFIG_ENV,
    S3_ACCESS_KEY_ENV,
    S3_SECRET_KEY_ENV,
    SOURCE_MOUNT,
    SOURCE_PASSWORD_ENV,
)
from runbook_operator.core.backuppolicy.restore_job import (
    RESTORE_MOUNT,
    RestoreRequestError,
    restore_job,
    restore_job_name,
)
from runbook_operator.runner.config import parse_config
from runbook_operator.runner.sources import build_restore_target

OWNER = Owner(name="orders", namespace="shop", uid="u-1")
IMAGE = "registry.example/runbook-operator:1.2.3"
TOKEN = "20260501T120000Z-ab12cd"
POSTGRES = {"postgres": {"host": "orders-db", "port": 6432, "database": "orders",
                         "user": "backup", "extraArgs": ["--exclude-table=audit"],
                         "passwordSecretRef": {"name": "db", "key": "password"}}}
MYSQL = {"mysql": {"host": "shop-db", "database": "shop", "user": "backup",
                   "passwordSecretRef": {"name": "db", "key": "password"}}}
FILES = {"files": {"claimName": "uploads", "path": "/media"}}
COMMAND = {"command": {"command": ["dump-it"]}}


def spec_body(source: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schedule": "0 2 * * *",
        "source": source,
        "destination": {"s3": {"endpoint": "http://minio:9000", "bucket": "backups",
                               "credentialsSecretRef": {"name": "s3"}}},
        "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
        "retention": {"keepLast": 3},
    }
    body.update(overrides)
    return body


def policy_and_cronjob(
    source: dict[str, Any] = POSTGRES, **overrides: Any
) -> tuple[dict[str, Any], dict[str, Any]]:
    body = spec_body(source, **overrides)
    cronjob = render_cronjob(BackupPolicySpec.model_validate(body), OWNER, IMAGE)
    policy = {"apiVersion": "runbook.dev/v1alpha1", "kind": "BackupPolicy",
              "metadata": {"name": "orders", "namespace": "shop", "uid": "u-1"}, "spec": body}
    return policy, cronjob


def make(source: dict[str, Any] = POSTGRES, target: str = "orders_copy",
         key: str | None = None, **kwargs: Any) -> dict[str, Any]:
    policy, cronjob = policy_and_cronjob(source, **kwargs.pop("spec", {}))
    return restore_job(policy, cronjob, target, key, TOKEN, **kwargs)


def pod_spec(job: dict[str, Any]) -> dict[str, Any]:
    return job["spec"]["template"]["spec"]


def runner(job: dict[str, Any]) -> dict[str, Any]:
    [container] = pod_spec(job)["containers"]
    return container


def config(job: dict[str, Any]) -> dict[str, Any]:
    env = {e["name"]: e for e in runner(job)["env"]}
    return json.loads(env[RUNNER_CONFIG_ENV]["value"])


# --- database targets ----------------------------------------------------------------------------


def test_postgres_restore_into_a_new_database_with_the_sources_connection() -> None:
    job = make()
    cfg = config(job)
    assert cfg["operation"] == "restore"
    assert "backupKey" not in cfg  # newest
    assert "retention" not in cfg  # a restore never prunes
    assert cfg["restoreTarget"] == {
        "kind": "postgres",
        "settings": {"host": "orders-db", "port": 6432, "user": "backup",
                     "passwordEnv": SOURCE_PASSWORD_ENV, "database": "orders_copy",
                     "dropExisting": False},
    }
    assert cfg["storage"] == config_of_cronjob()["storage"]
    assert cfg["encryption"] == config_of_cronjob()["encryption"]


def config_of_cronjob() -> dict[str, Any]:
    _, cronjob = policy_and_cronjob()
    container = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    return json.loads(env[RUNNER_CONFIG_ENV]["value"])


@pytest.mark.parametrize("source, kind", [(POSTGRES, "postgres"), (MYSQL, "mysql")])
def test_config_parses_and_target_builds_in_the_runner(source: dict, kind: str) -> None:
    job = make(source, key="orders/20260501T020000Z")
    parsed = parse_config(json.dumps(config(job)))
    assert parsed.operation == "restore" and parsed.backup_key == "orders/20260501T020000Z"
    assert parsed.restore_target is not None
    target = build_restore_target(parsed.restore_target.kind, parsed.restore_target.settings)
    assert target.kind == kind
    assert target.settings.database == "orders_copy"  # type: ignore[attr-defined]
    assert target.settings.drop_existing is False  # type: ignore[attr-defined]
    assert target.settings.create_database is True  # type: ignore[attr-defined]


def test_restore_test_check_query_runs_on_the_restored_database() -> None:
    test = {"schedule": "0 6 * * 0", "checkQuery": "select count(*) from orders"}
    cfg = config(make(spec={"restoreTest": test}))
    assert cfg["restoreTarget"]["settings"]["checkQuery"] == "select count(*) from orders"


@pytest.mark.parametrize(
    "source, target, match",
    [
        (POSTGRES, "orders", "source database itself"),
        (POSTGRES, "ORDERS", "source database itself"),
        (POSTGRES, "orders_restore_test", "scratch database"),
        (POSTGRES, "postgres", "system database"),
        (POSTGRES, "template1", "system database"),
        (MYSQL, "shop", "source database itself"),
        (MYSQL, "information_schema", "system database"),
        (POSTGRES, "bad name", "not a database name"),
        (POSTGRES, "x" * 64, "not a database name"),
        (POSTGRES, "1st", "not a database name"),
    ],
)
def test_unsafe_database_targets_are_refused(source: dict, target: str, match: str) -> None:
    with pytest.raises(RestoreRequestError, match=match):
        make(source, target=target)


def test_into_claim_is_only_for_files() -> None:
    with pytest.raises(RestoreRequestError, match="--into-claim applies to files"):
        make(into_claim="scratch")


# --- files targets -------------------------------------------------------------------------------


def test_files_restore_mounts_the_claim_and_drops_the_source_volume() -> None:
    job = make(FILES, target="/restored/media", into_claim="scratch")
    cfg = config(job)
    assert cfg["restoreTarget"] == {
        "kind": "files", "settings": {"path": f"{RESTORE_MOUNT}/restored/media"}}
    volumes = {v["name"]: v for v in pod_spec(job)["volumes"]}
    assert volumes["restore"] == {"name": "restore",
                                  "persistentVolumeClaim": {"claimName": "scratch"}}
    assert "source" not in volumes
    mounts = {m["mountPath"]: m for m in runner(job)["volumeMounts"]}
    assert mounts[RESTORE_MOUNT] == {"name": "restore", "mountPath": RESTORE_MOUNT}
    assert SOURCE_MOUNT not in mounts
    parsed = parse_config(json.dumps(cfg))
    assert parsed.restore_target is not None
    target = build_restore_target("files", parsed.restore_target.settings)
    assert target.settings.overwrite is False  # type: ignore[attr-defined]


def test_files_restore_into_the_claims_root() -> None:
    cfg = config(make(FILES, target="/", into_claim="scratch"))
    assert cfg["restoreTarget"]["settings"] == {"path": RESTORE_MOUNT}


def test_files_restore_into_the_source_claim_outside_the_backed_up_directory() -> None:
    cfg = config(make(FILES, target="/media-restored", into_claim="uploads"))
    assert cfg["restoreTarget"]["settings"]["path"] == f"{RESTORE_MOUNT}/media-restored"


@pytest.mark.parametrize(
    "target, claim, match",
    [
        ("/media", "uploads", "overlaps the backed-up directory"),
        ("/media/old", "uploads", "overlaps"),
        ("/", "uploads", "overlaps"),
        ("restored", "scratch", "absolute path"),
        ("/a/../b", "scratch", "without . or .."),
        ("/x", "Not_A_Claim", "not a claim name"),
        ("/x", None, "needs --into-claim"),
    ],
)
def test_unsafe_files_targets_are_refused(target: str, claim: str | None, match: str) -> None:
    with pytest.raises(RestoreRequestError, match=match):
        make(FILES, target=target, into_claim=claim)


# --- sources the operator cannot restore ---------------------------------------------------------


def test_command_source_cannot_be_restored() -> None:
    with pytest.raises(RestoreRequestError, match="command's output.*cannot restore"):
        make(COMMAND)


def test_policy_without_destination_cannot_be_restored() -> None:
    source = {"command": {"image": "busybox:1.36", "command": ["true"]}}
    with pytest.raises(RestoreRequestError, match="has no destination"):
        make(source, spec={"destination": None, "encryption": None, "retention": None})


def test_cronjob_of_another_policy_is_refused() -> None:
    policy, cronjob = policy_and_cronjob()
    policy["metadata"]["uid"] = "someone-else"
    with pytest.raises(RestoreRequestError, match="is not the backup CronJob of"):
        restore_job(policy, cronjob, "orders_copy", None, TOKEN)


# --- backup keys ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, expected",
    [("orders/20260501T020000Z", "orders/20260501T020000Z"),
     ("20260501T020000Z", "orders/20260501T020000Z"),
     ("/orders/20260501T020000Z/", "orders/20260501T020000Z")],
)
def test_backup_key(key: str, expected: str) -> None:
    job = make(key=key)
    assert config(job)["backupKey"] == expected
    assert job["metadata"]["annotations"]["runbook.dev/restore-backup"] == expected


@pytest.mark.parametrize("key", ["other/20260501T020000Z", "orders/..", "orders/a/b", ""])
def test_keys_outside_the_policys_prefix_are_refused(key: str) -> None:
    with pytest.raises(RestoreRequestError, match="is not a backup of orders"):
        make(key=key)


# --- the Job itself ------------------------------------------------------------------------------


def test_job_metadata_labels_and_lifetime() -> None:
    job = make()
    meta = job["metadata"]
    assert meta["name"] == restore_job_name("orders", TOKEN)
    assert meta["name"].startswith("orders-restore-") and len(meta["name"]) == 25
    assert meta["namespace"] == "shop"
    assert "ownerReferences" not in meta  # restores outlive the policy
    assert meta["labels"][OPERATION_LABEL] == "restore"
    assert meta["labels"][POLICY_LABEL] == "orders"
    assert meta["labels"][RUNNER_LABEL] == "true"
    # Not the operator's: it must never count a restore as a backup run.
    assert meta["labels"]["app.kubernetes.io/managed-by"] == "kubectl-runbook"
    assert job["spec"]["template"]["metadata"]["labels"] == meta["labels"]
    assert meta["annotations"] == {"runbook.dev/restore-into": "orders_copy",
                                   "runbook.dev/restore-backup": "newest"}
    assert job["spec"]["ttlSecondsAfterFinished"] == 86400
    assert job["spec"]["backoffLimit"] == 0
    assert "podFailurePolicy" not in job["spec"]
    assert job["spec"]["activeDeadlineSeconds"] == 3600  # the policy's timeout


def test_name_depends_on_the_token_and_fits_a_label_for_the_longest_policy() -> None:
    assert restore_job_name("orders", "a") != restore_job_name("orders", "b")
    assert len(restore_job_name("p" * 44, TOKEN)) <= 63


def test_same_image_security_and_secrets_by_reference_only() -> None:
    policy, cronjob = policy_and_cronjob()
    job = restore_job(policy, cronjob, "orders_copy", None, TOKEN)
    template = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert runner(job)["image"] == IMAGE
    assert runner(job)["securityContext"] == template["containers"][0]["securityContext"]
    assert pod_spec(job)["securityContext"] == template["securityContext"]
    literal = [e["name"] for e in runner(job)["env"] if "value" in e]
    assert literal == [RUNNER_CONFIG_ENV]
    refs = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in runner(job)["env"]
            if "valueFrom" in e}
    assert refs == {
        ENCRYPTION_KEY_ENV: {"name": "backup-key", "key": "key"},
        S3_ACCESS_KEY_ENV: {"name": "s3", "key": "AWS_ACCESS_KEY_ID"},
        S3_SECRET_KEY_ENV: {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"},
        SOURCE_PASSWORD_ENV: {"name": "db", "key": "password"},
    }


def test_the_cronjob_is_not_modified() -> None:
    policy, cronjob = policy_and_cronjob(FILES)
    before = json.dumps(cronjob, sort_keys=True)
    restore_job(policy, cronjob, "/restored", None, TOKEN, into_claim="scratch")
    assert json.dumps(cronjob, sort_keys=True) == before
