"""The CronJob a command-source policy renders (no destination: the user's command is the
backup), what the schema rejects, and the on-demand Job of a backup-now request."""

import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from runbook_operator.api.backuppolicy import BackupPolicySpec
from runbook_operator.core.backuppolicy.cronjob import (
    may_have_restore_test,
    on_demand_job,
    render_cronjob,
    render_restore_test_cronjob,
    semantic_problems,
)
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, Owner

from tests.support.spec_strategies import Example, examples

OWNER = Owner(name="nightly", namespace="db", uid="1234")
IMAGE = "registry.example/runbook-operator:1.2.3"


def spec(**overrides) -> BackupPolicySpec:
    body = {
        "schedule": "0 2 * * *",
        "timeZone": "Europe/Berlin",
        "source": {
            "command": {
                "image": "postgres:16",
                "command": ["sh", "-c", "pg_dump > /dev/null"],
                "env": [
                    {"name": "PGHOST", "value": "db"},
                    {"name": "PGPASSWORD", "secretKeyRef": {"name": "db-cred", "key": "password"}},
                ],
            }
        },
    }
    body.update(overrides)
    return BackupPolicySpec.model_validate(body)


def test_cronjob_carries_schedule_policy_and_identity() -> None:
    cronjob = render_cronjob(spec(), OWNER, IMAGE)
    assert cronjob["metadata"]["name"] == "nightly-backup"
    assert cronjob["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "runbook-operator"
    assert cronjob["metadata"]["labels"]["runbook.dev/backuppolicy"] == "nightly"
    owner = cronjob["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["uid"], owner["controller"]) == ("BackupPolicy", "1234", True)
    s = cronjob["spec"]
    assert s["schedule"] == "0 2 * * *" and s["timeZone"] == "Europe/Berlin"
    assert s["concurrencyPolicy"] == "Forbid"
    assert s["startingDeadlineSeconds"] == 300
    assert (s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (3, 3)
    assert s["suspend"] is False
    job = s["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] == 3600 and job["backoffLimit"] == 1
    assert s["jobTemplate"]["metadata"]["labels"]["runbook.dev/backuppolicy"] == "nightly"
    assert job["template"]["spec"]["restartPolicy"] == "Never"


def test_secrets_are_referenced_never_inlined() -> None:
    container = render_cronjob(spec(), OWNER, IMAGE)["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"][0]
    by_name = {e["name"]: e for e in container["env"]}
    assert by_name["PGPASSWORD"] == {
        "name": "PGPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "db-cred", "key": "password"}},
    }
    assert by_name["PGHOST"] == {"name": "PGHOST", "value": "db"}


def test_pod_runs_restricted() -> None:
    pod = render_cronjob(spec(), OWNER, IMAGE)["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    container = pod["containers"][0]["securityContext"]
    assert container["allowPrivilegeEscalation"] is False
    assert container["capabilities"] == {"drop": ["ALL"]}


def test_spec_fields_flow_into_cronjob() -> None:
    rendered = render_cronjob(
        spec(
            suspend=True,
            timeout="90m",
            startingDeadline="30s",
            backoffLimit=0,
            successfulJobsHistoryLimit=1,
            failedJobsHistoryLimit=5,
            serviceAccountName="backup-sa",
            resources={"limits": {"memory": "256Mi"}},
        ),
        OWNER,
        IMAGE,
    )
    s = rendered["spec"]
    job = s["jobTemplate"]["spec"]
    pod = job["template"]["spec"]
    assert s["suspend"] is True and s["startingDeadlineSeconds"] == 30
    assert (s["successfulJobsHistoryLimit"], s["failedJobsHistoryLimit"]) == (1, 5)
    assert job["activeDeadlineSeconds"] == 5400 and job["backoffLimit"] == 0
    assert pod["serviceAccountName"] == "backup-sa" and pod["automountServiceAccountToken"]
    assert pod["containers"][0]["resources"] == {"limits": {"memory": "256Mi"}}


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"schedule": "61 * * * *"}, "schedule"),
        ({"timeZone": "Mars/Olympus"}, "time zone"),
        ({"successfulJobsHistoryLimit": -1}, "successfulJobsHistoryLimit"),
        ({"source": {}}, "exactly one source"),
        ({"timeout": "soon"}, "timeout"),
        ({"retention": {"maxAge": "500ms"}}, "maxAge must be at least 1s"),
        ({"destination": {"s3": {"bucket": "b", "credentialsSecretRef": {
            "name": "s3", "secretAccessKeyKey": ""}}}}, "secretAccessKeyKey"),
    ],
)
def test_invalid_specs_are_rejected_by_the_models(overrides, fragment) -> None:
    with pytest.raises(ValidationError, match=fragment):
        spec(**overrides)


def test_env_needs_exactly_one_value_source() -> None:
    command = {"image": "x", "command": ["true"], "env": [{"name": "A"}]}
    with pytest.raises(ValidationError, match="exactly one of value and secretKeyRef"):
        BackupPolicySpec.model_validate({"schedule": "@daily", "source": {"command": command}})


def test_semantic_problems() -> None:
    assert semantic_problems(spec()) == []
    assert semantic_problems(spec(timeout="0s")) == ["timeout must be at least 1s"]


def test_on_demand_job_is_the_cronjobs_template_named_after_the_token() -> None:
    cronjob = render_cronjob(spec(), OWNER, IMAGE)
    cronjob["metadata"]["uid"] = "cj-uid"
    job = on_demand_job(cronjob, "before-upgrade")
    assert job["spec"] == cronjob["spec"]["jobTemplate"]["spec"]
    assert job["metadata"]["name"].startswith("nightly-now-")
    assert job["metadata"]["annotations"][BACKUP_NOW_ANNOTATION] == "before-upgrade"
    assert job["metadata"]["ownerReferences"][0]["uid"] == "cj-uid"
    assert on_demand_job(cronjob, "before-upgrade") == job
    assert on_demand_job(cronjob, "another")["metadata"]["name"] != job["metadata"]["name"]


@settings(max_examples=60, derandomize=True, database=None, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(examples("BackupPolicy"))
def test_every_spec_the_model_accepts_renders(example: Example) -> None:
    """Generated specs once crashed the reconcile here: a sub-second retention.maxAge (the
    runner's config takes whole seconds, at least 1) and an empty S3 key name (a SecretKeyRef
    key needs one); the models reject both now, so the operator reports them as InvalidSpec."""
    try:
        parsed = BackupPolicySpec.model_validate(example.body.get("spec"))
    except ValidationError:
        return
    render_cronjob(parsed, OWNER, IMAGE)
    render_restore_test_cronjob(parsed, OWNER, IMAGE)


@pytest.mark.parametrize(("generation", "may"), [(1, False), (2, True), (7, True), (None, True)])
def test_only_a_changed_spec_may_have_left_a_restore_test(generation: int | None,
                                                          may: bool) -> None:
    """Generation 1 is the spec the policy was created with: if it has no restore test, none
    was ever rendered for this policy; an edited one may have had one; unknown is asked."""
    assert may_have_restore_test(generation) is may
