"""The runner's config a policy renders (destination set): what it names, which Secrets feed
it, and that the runner accepts exactly what is rendered."""

import json

import pytest

from runbook_operator.api.backuppolicy import BackupPolicySpec
from runbook_operator.core.backuppolicy.cronjob import render_cronjob, render_restore_test_cronjob
from runbook_operator.core.backuppolicy.names import OPERATION_LABEL, RUNNER_LABEL, Owner
from runbook_operator.core.backuppolicy.runner_config import (
    BACKUPS_MOUNT,
    ENCRYPTION_KEY_ENV,
    RUNNER_CONFIG_ENV,
    S3_ACCESS_KEY_ENV,
    S3_SECRET_KEY_ENV,
    SCRATCH_SUFFIX,
    SOURCE_MOUNT,
    SOURCE_PASSWORD_ENV,
    config_text,
    runner_config,
    scratch_database,
)
from runbook_operator.runner.config import parse_config
from runbook_operator.runner.sources import build_restore_target, build_source

OWNER = Owner(name="orders", namespace="shop", uid="u-1")
IMAGE = "registry.example/runbook-operator:1.2.3"


def spec(**overrides) -> BackupPolicySpec:
    body = {
        "schedule": "0 2 * * *",
        "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                                "passwordSecretRef": {"name": "db", "key": "password"}}},
        "destination": {"s3": {"endpoint": "http://minio:9000", "bucket": "backups",
                               "prefix": "prod", "credentialsSecretRef": {"name": "s3"}}},
        "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
        "restoreTest": {"schedule": "0 6 * * 0", "checkQuery": "select count(*) from orders"},
        "retention": {"maxAge": "30d"},
    }
    body.update(overrides)
    return BackupPolicySpec.model_validate(body)


def container(cronjob: dict) -> dict:
    return cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]


def env_of(cronjob: dict) -> dict:
    return {e["name"]: e for e in container(cronjob)["env"]}


def config(cronjob: dict) -> dict:
    return json.loads(env_of(cronjob)[RUNNER_CONFIG_ENV]["value"])


def test_runner_cronjob_streams_postgres_to_s3_with_secrets_by_reference() -> None:
    cronjob = render_cronjob(spec(), OWNER, IMAGE)
    c = container(cronjob)
    assert c["image"] == IMAGE and c["command"] == ["runbook-operator", "runner"]
    assert c["terminationMessagePolicy"] == "File"
    labels = cronjob["spec"]["jobTemplate"]["metadata"]["labels"]
    assert labels[RUNNER_LABEL] == "true" and labels[OPERATION_LABEL] == "backup"
    cfg = config(cronjob)
    assert cfg["operation"] == "backup" and cfg["policy"] == "orders"
    assert cfg["source"] == {"kind": "postgres", "settings": {
        "host": "orders-db", "user": "backup", "database": "orders",
        "passwordEnv": SOURCE_PASSWORD_ENV, "extraArgs": []}}
    assert cfg["storage"]["s3"]["bucket"] == "backups" and cfg["storage"]["s3"]["prefix"] == "prod"
    assert cfg["storage"]["s3"]["endpointUrl"] == "http://minio:9000"
    assert cfg["encryption"] == {"mode": "aes-256-gcm", "keyEnv": ENCRYPTION_KEY_ENV}
    from_secrets = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in c["env"] if "valueFrom" in e}
    assert from_secrets == {
        SOURCE_PASSWORD_ENV: {"name": "db", "key": "password"},
        ENCRYPTION_KEY_ENV: {"name": "backup-key", "key": "key"},
        S3_ACCESS_KEY_ENV: {"name": "s3", "key": "AWS_ACCESS_KEY_ID"},
        S3_SECRET_KEY_ENV: {"name": "s3", "key": "AWS_SECRET_ACCESS_KEY"},
    }


def test_restore_test_cronjob_restores_into_a_scratch_database() -> None:
    cronjob = render_restore_test_cronjob(spec(), OWNER, IMAGE)
    assert cronjob["metadata"]["name"] == "orders-restore"
    assert cronjob["spec"]["schedule"] == "0 6 * * 0"
    cfg = config(cronjob)
    assert cfg["operation"] == "restore"
    target = cfg["restoreTarget"]
    assert target["kind"] == "postgres"
    assert target["settings"]["database"] == "orders_restore_test"
    assert target["settings"]["checkQuery"] == "select count(*) from orders"
    assert render_restore_test_cronjob(spec(restoreTest=None), OWNER, IMAGE) is None


def test_pvc_destination_and_files_source_mount_volumes() -> None:
    cronjob = render_cronjob(
        spec(source={"files": {"claimName": "uploads", "path": "/media", "exclude": ["*.tmp"]}},
             destination={"pvc": {"claimName": "backup-vol", "path": "shop"}},
             restoreTest=None),
        OWNER, IMAGE,
    )
    pod = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    claims = {v["name"]: v.get("persistentVolumeClaim") for v in pod["volumes"]}
    assert claims["backups"] == {"claimName": "backup-vol"}
    assert claims["source"] == {"claimName": "uploads", "readOnly": True}
    cfg = config(cronjob)
    assert cfg["storage"] == {"local": {"path": BACKUPS_MOUNT, "directory": "shop"}}
    assert cfg["source"]["settings"] == {"path": f"{SOURCE_MOUNT}/media",
                                         "exclude": ["*.tmp"]}


@pytest.mark.parametrize("overrides, message", [
    ({"encryption": None}, "set encryption"),
    ({"source": {"command": {"image": "x", "command": ["dump"]}}, "restoreTest": None},
     "remove source.command.image"),
    ({"source": {"command": {"command": ["dump"]}}}, "restoreTest needs a source"),
    ({"destination": None, "source": {"command": {"image": "x", "command": ["y"]}},
      "restoreTest": None}, "retention and restoreTest need a destination"),
])
def test_cross_field_rules(overrides, message) -> None:
    with pytest.raises(ValueError, match=message):
        spec(**overrides)


@pytest.mark.parametrize("source", [
    {"postgres": {"host": "db", "port": 5433, "database": "orders", "user": "u",
                  "passwordSecretRef": {"name": "db", "key": "password"}}},
    {"mysql": {"host": "db", "database": "orders", "user": "u",
               "passwordSecretRef": {"name": "db", "key": "password"}}},
    {"files": {"claimName": "uploads", "exclude": ["cache/*"]}},
])
@pytest.mark.parametrize("destination", [
    {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3"}}},
    {"pvc": {"claimName": "vol"}},
])
def test_rendered_configs_are_accepted_by_the_runner(source, destination) -> None:
    """The operator and the runner agree on the config: every rendered config parses, and
    its source, storage and restore target build."""
    policy = spec(source=source, destination=destination)
    for cronjob in (render_cronjob(policy, OWNER, IMAGE),
                    render_restore_test_cronjob(policy, OWNER, IMAGE)):
        text = env_of(cronjob)[RUNNER_CONFIG_ENV]["value"]
        parsed = parse_config(text)
        build_source(parsed.source.kind, parsed.source.settings)
        if parsed.restore_target is not None:
            build_restore_target(parsed.restore_target.kind, parsed.restore_target.settings)
        assert config_text(parsed) == text  # the runner reads exactly what was rendered
        names = [e["name"] for e in container(cronjob)["env"]]
        assert len(names) == len(set(names))


def test_only_the_fields_set_are_rendered() -> None:
    """A default the runner adds later must not change every CronJob already applied."""
    config, _ = runner_config(spec(retention=None), OWNER, "backup")
    rendered = json.loads(config_text(config))
    assert set(rendered) == {"operation", "policy", "namespace", "compression", "encryption",
                             "storage", "source"}
    assert rendered["encryption"] == {"mode": "aes-256-gcm", "keyEnv": ENCRYPTION_KEY_ENV}


def test_retention_goes_to_backups_only_with_max_age_in_seconds() -> None:
    backup, _ = runner_config(spec(), OWNER, "backup")
    assert backup.retention is not None and backup.retention.max_age_seconds == 30 * 86400
    assert json.loads(config_text(backup))["retention"]["maxAgeSeconds"] == 30 * 86400
    restore, _ = runner_config(spec(), OWNER, "restore")
    assert restore.retention is None and restore.restore_target is not None


def test_rendering_is_stable() -> None:
    assert config_text(runner_config(spec(), OWNER, "backup")[0]) == config_text(
        runner_config(spec(), OWNER, "backup")[0])


def test_scratch_database_never_exceeds_the_name_limit() -> None:
    assert scratch_database("orders") == "orders" + SCRATCH_SUFFIX
    assert len(scratch_database("d" * 63)) == 63
    assert scratch_database("d" * 63).endswith(SCRATCH_SUFFIX)
