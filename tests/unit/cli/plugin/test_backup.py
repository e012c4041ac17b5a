"""`kubectl runbook backup now|list|restore`: arguments, the pure parts, and the command flows
against fake API clients (the e2e test runs them on a real control plane)."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException
from runbook_operator.api.backuppolicy import BackupPolicySpec
from runbook_operator.cli.plugin import backup, connection
from runbook_operator.cli.plugin.errors import EXIT_ERROR, EXIT_FAILED, RunFailed
from runbook_operator.cli.plugin.main import main, parse_args
from runbook_operator.core.backuppolicy.cronjob import on_demand_job, render_cronjob
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION, OPERATION_LABEL, Owner
from runbook_operator.runner.results import RestoreResult

NOW = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)


# --- arguments -----------------------------------------------------------------------------------


def test_backup_now_defaults() -> None:
    args = parse_args(["backup", "now", "orders"])
    assert (args.command, args.backup_command, args.policy) == ("backup", "now", "orders")
    assert (args.namespace, args.wait, args.timeout) == (None, False, 600)


def test_backup_now_flags() -> None:
    args = parse_args(["backup", "now", "orders", "-n", "shop", "--wait",
                              "--timeout", "90s", "--kubeconfig", "/k", "--context", "dev"])
    assert (args.namespace, args.wait, args.timeout, args.kubeconfig, args.context) == (
        "shop", True, 90, "/k", "dev")


def test_backup_list_output_formats() -> None:
    assert parse_args(["backup", "list", "orders"]).output == "table"
    assert parse_args(["backup", "list", "orders", "-o", "json"]).output == "json"


def test_backup_restore_flags() -> None:
    args = parse_args(["backup", "restore", "orders", "--into", "orders_copy"])
    assert (args.into, args.into_claim, args.backup, args.wait, args.timeout) == (
        "orders_copy", None, None, False, None)
    args = parse_args(["backup", "restore", "media", "--into", "/restored",
                              "--into-claim", "scratch", "--backup", "media/20260501T020000Z",
                              "--wait", "--timeout", "1h", "-n", "shop"])
    assert (args.into, args.into_claim, args.backup, args.wait, args.timeout, args.namespace) == (
        "/restored", "scratch", "media/20260501T020000Z", True, 3600, "shop")


@pytest.mark.parametrize(
    "argv",
    [
        ["backup"],
        ["backup", "now"],
        ["backup", "later", "orders"],
        ["backup", "restore", "orders"],  # --into is required
        ["backup", "list", "orders", "-o", "yaml"],
        ["backup", "now", "orders", "--timeout", "soon"],
        ["backup", "now", "orders", "--timeout", "0s"],
    ],
)
def test_bad_backup_arguments_exit_2(argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_args(argv)
    assert exc.value.code == 2


def test_status_still_parses() -> None:
    assert parse_args(["status", "-A"]).command == "status"


# --- tokens and the request ----------------------------------------------------------------------


def test_token_is_utc_time_plus_suffix() -> None:
    local = NOW.astimezone(timezone(timedelta(hours=2)))
    assert backup.new_token(local, "ab12cd") == "20260501T120000Z-ab12cd"


def test_backup_now_patch_sets_only_the_annotation() -> None:
    assert backup.backup_now_patch("t-1") == {
        "metadata": {"annotations": {"runbook.dev/backup-now": "t-1"}}}


def test_backup_now_job_is_found_by_its_token() -> None:
    jobs = [
        {"metadata": {"name": "orders-now-old", "annotations": {BACKUP_NOW_ANNOTATION: "a"}}},
        {"metadata": {"name": "orders-backup-1"}},
        {"metadata": {"name": "orders-now-new", "annotations": {BACKUP_NOW_ANNOTATION: "b"}}},
    ]
    assert backup.backup_now_job(jobs, "b") == "orders-now-new"
    assert backup.backup_now_job(jobs, "c") is None


def test_the_job_name_matches_the_operators_on_demand_job() -> None:
    spec = BackupPolicySpec.model_validate(
        {"schedule": "@daily", "source": {"command": {"image": "busybox", "command": ["true"]}}})
    cronjob = render_cronjob(spec, Owner("orders", "shop", "u"), "img")
    cronjob["metadata"]["uid"] = "cj-uid"
    job = on_demand_job(cronjob, "20260501T120000Z-ab12cd")
    assert backup.backup_now_job([job], "20260501T120000Z-ab12cd") == job["metadata"]["name"]


# --- durations and sizes -------------------------------------------------------------------------


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("10m", 600), ("1h30m", 5400)])
def test_duration_seconds(text: str, seconds: float) -> None:
    assert backup.duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["10", "ten minutes", "0m", ""])
def test_bad_durations(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        backup.duration_seconds(text)


# --- backup list ---------------------------------------------------------------------------------


def attempt(time: str, job: str, outcome: str = "Succeeded", **extra: Any) -> dict[str, Any]:
    return {"time": time, "jobName": job, "outcome": outcome, **extra}


HISTORY = [
    attempt("2026-05-01T02:00:30Z", "orders-backup-2", reason="Succeeded", sizeBytes=4096),
    attempt("2026-05-02T02:00:31Z", "orders-backup-3", "Failed", reason="DumpFailed",
            message="pg_dump: error:\nconnection to server failed " + "x" * 200),
    attempt("2026-04-30T02:00:29Z", "orders-backup-1", reason="Succeeded", sizeBytes=2048),
]
LAST_BACKUP = {"time": "2026-05-01T02:00:30Z", "jobName": "orders-backup-2",
               "key": "orders/20260501T020000Z", "location": "s3://backups/orders/20260501T020000Z/",
               "sizeBytes": 4096, "durationSeconds": 30.0, "verified": True}
LAST_VERIFIED = {"time": "2026-05-01T06:00:12Z", "jobName": "orders-restore-29",
                 "outcome": "Succeeded", "backupKey": "orders/20260501T020000Z",
                 "durationSeconds": 12.5, "message": ""}


def test_history_rows_newest_first_one_line_and_cut() -> None:
    rows = backup.history_rows(HISTORY, message_limit=40)
    assert [r[1] for r in rows] == ["orders-backup-3", "orders-backup-2", "orders-backup-1"]
    assert rows[0][:5] == ("2026-05-02T02:00:31Z", "orders-backup-3", "Failed", "DumpFailed", "-")
    assert rows[0][5].startswith("pg_dump: error: connection to server")
    assert len(rows[0][5]) == 40 and rows[0][5].endswith("...")
    assert rows[1][3:] == ("Succeeded", "4 KiB", "-")


def test_history_rows_keep_whole_messages_without_a_limit() -> None:
    rows = backup.history_rows(HISTORY, message_limit=None)
    assert rows[0][5].endswith("x" * 200)


def test_backup_list_table() -> None:
    status = {"lastBackup": LAST_BACKUP, "lastVerifiedBackup": LAST_VERIFIED, "history": HISTORY}
    lines = backup.format_backup_list(status, width=None).splitlines()
    assert lines[0] == ("Last backup:     2026-05-01T02:00:30Z  orders/20260501T020000Z  4 KiB"
                        "  verified  took 30s  job orders-backup-2"
                        "  s3://backups/orders/20260501T020000Z/")
    assert lines[1] == ("Last verified:   2026-05-01T06:00:12Z  orders/20260501T020000Z"
                        "  Succeeded  restored in 12.5s  job orders-restore-29")
    assert lines[2] == ""
    assert lines[3].split() == list(backup.HISTORY_HEADERS)
    assert [line.split()[1] for line in lines[4:]] == [
        "orders-backup-3", "orders-backup-2", "orders-backup-1"]
    message_at = lines[3].index("MESSAGE")
    assert len(lines[4][message_at:]) == backup.HISTORY_MESSAGE_LIMIT  # not a terminal


def test_backup_list_table_fits_the_terminal() -> None:
    text = backup.format_backup_list({"history": HISTORY}, width=120)
    table = text.splitlines()[3:]
    assert all(len(line) <= 120 for line in table)
    assert table[1].endswith("...")


def test_backup_list_without_runs() -> None:
    assert backup.format_backup_list({}, width=None) == (
        "Last backup:     none\nLast verified:   none\n\nNo runs recorded yet.\n")


def test_failed_restore_test_is_shown_with_its_reason() -> None:
    failed = {**LAST_VERIFIED, "outcome": "Failed", "message": "BackupNotFound: nothing\nthere"}
    assert backup.describe_last_verified(failed) == (
        "2026-05-01T06:00:12Z  orders/20260501T020000Z  Failed  job orders-restore-29"
        "  BackupNotFound: nothing there")


def test_unverified_backup_says_so() -> None:
    assert "NOT verified" in backup.describe_last_backup({**LAST_BACKUP, "verified": False})


def test_backup_list_json_keeps_the_api_fields() -> None:
    policy = {"metadata": {"name": "orders", "namespace": "shop"},
              "status": {"lastBackup": LAST_BACKUP, "history": HISTORY, "conditions": []}}
    shown = json.loads(backup.backup_list_json(policy))
    assert shown["policy"] == "orders" and shown["namespace"] == "shop"
    assert shown["lastBackup"] == LAST_BACKUP
    assert shown["lastVerifiedBackup"] is None
    assert [a["jobName"] for a in shown["history"]] == [
        "orders-backup-3", "orders-backup-2", "orders-backup-1"]
    assert "x" * 200 in shown["history"][0]["message"]


# --- outcomes ------------------------------------------------------------------------------------


def test_describe_attempt() -> None:
    assert backup.describe_attempt(HISTORY[0]) == (
        True, "backup orders-backup-2 succeeded (4 KiB)")
    ok, line = backup.describe_attempt(HISTORY[1])
    assert not ok and line.startswith(
        "backup orders-backup-3 failed: DumpFailed: pg_dump: error: connection")
    assert backup.describe_attempt(attempt("t", "j", "Failed")) == (
        False, "backup j failed: Failed")


def test_history_entry() -> None:
    policy = {"status": {"history": HISTORY}}
    assert backup.history_entry(policy, "orders-backup-1") == HISTORY[2]
    assert backup.history_entry(policy, "nope") is None
    assert backup.history_entry({}, "nope") is None


def pod(finished: str, message: str | None) -> dict[str, Any]:
    terminated = {"finishedAt": finished, **({"message": message} if message else {})}
    return {"status": {"containerStatuses": [
        {"name": "runner", "state": {"terminated": terminated}}]}}


def job(condition: str | None, reason: str = "", message: str = "") -> dict[str, Any]:
    status: dict[str, Any] = {}
    if condition:
        status = {"completionTime": "2026-05-01T06:00:13Z", "conditions": [
            {"type": condition, "status": "True", "reason": reason, "message": message,
             "lastTransitionTime": "2026-05-01T06:00:13Z"}]}
    return {"metadata": {"name": "orders-restore-abc"}, "status": status}


def restore_result(ok: bool = True) -> str:
    return RestoreResult(
        ok=ok, reason="Succeeded" if ok else "RestoreFailed",
        message="restored 1024 bytes into the postgres target" if ok
        else "createdb: database \"orders_copy\" already exists",
        started_at=NOW, finished_at=NOW + timedelta(seconds=12.5), duration_seconds=12.5,
        key="orders/20260501T020000Z", target_kind="postgres").to_json()


def test_restore_still_running() -> None:
    assert backup.describe_restore(job(None), None) is None


def test_restore_succeeds_only_with_a_successful_result() -> None:
    assert backup.describe_restore(job("Complete"), restore_result()) == (
        True, ("restore orders-restore-abc succeeded: restored 1024 bytes into the postgres "
               "target, from orders/20260501T020000Z in 12.5s"))


def test_completed_restore_without_result_is_not_a_success() -> None:
    ok, line = backup.describe_restore(job("Complete"), None)  # type: ignore[misc]
    assert not ok
    assert "completed, but the runner reported no result" in line
    ok, line = backup.describe_restore(job("Complete"), "not json")  # type: ignore[misc]
    assert not ok and "no result" in line


def test_failed_restore_reports_the_runners_reason() -> None:
    failed = job("Failed", "BackoffLimitExceeded")
    assert backup.describe_restore(failed, restore_result(False)) == (
        False, ('restore orders-restore-abc failed: RestoreFailed: createdb: database '
                '"orders_copy" already exists'))


def test_failed_restore_without_result_reports_the_jobs_reason() -> None:
    assert backup.describe_restore(
        job("Failed", "DeadlineExceeded", "Job was active longer than specified deadline"), None
    ) == (False, ("restore orders-restore-abc failed (DeadlineExceeded: Job was active longer "
                  "than specified deadline); the runner reported no result"))


# --- waiting -------------------------------------------------------------------------------------


class FakeClock:
    """Monotonic time that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def test_wait_until_polls_until_found() -> None:
    clock = FakeClock()
    answers = iter([None, None, "done"])
    assert backup.wait_until(lambda: next(answers), 110, "x", clock, clock.sleep) == "done"
    assert clock.sleeps == [backup.POLL_SECONDS, backup.POLL_SECONDS]


def test_wait_until_never_sleeps_past_the_deadline() -> None:
    clock = FakeClock()
    with pytest.raises(RunFailed, match="timed out waiting for the backup"):
        backup.wait_until(lambda: None, 102.5, "the backup", clock, clock.sleep)
    assert clock.sleeps == [1.0, 1.0, 0.5]
    assert clock.now == 102.5


def test_wait_until_accepts_falsy_results() -> None:
    clock = FakeClock()
    assert backup.wait_until(lambda: (False, "failed"), 101, "x", clock, clock.sleep) == (
        False, "failed")
    assert clock.sleeps == []


# --- command flows, with fake API clients --------------------------------------------------------


OWNER = Owner(name="orders", namespace="shop", uid="u-1")
POLICY_SPEC = {
    "schedule": "0 2 * * *",
    "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                            "passwordSecretRef": {"name": "db", "key": "password"}}},
    "destination": {"s3": {"bucket": "backups", "credentialsSecretRef": {"name": "s3"}}},
    "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
}


class FakeApis:
    """Stands in for BackupApis: returns dicts (so `plain` is the identity) and records writes."""

    def __init__(self, policy: dict[str, Any] | None, cronjob: dict[str, Any] | None = None):
        self.policy = policy
        self.cronjob = cronjob
        self.created: list[dict[str, Any]] = []
        self.patches: list[tuple[dict[str, Any], str | None]] = []
        self.job_status: dict[str, Any] = {}
        self.pods: list[dict[str, Any]] = []
        self.now_outcome = "Succeeded"  # of the run the fake operator records for backup now
        self.on_demand: dict[str, Any] = {}
        self.custom = self.batch = self.core = self

    def plain(self, obj: Any) -> dict[str, Any]:
        return obj

    def get_namespaced_custom_object(self, *args: Any, **_: Any) -> dict[str, Any]:
        if self.policy is None:
            raise ApiException(status=404, reason="Not Found")
        return self.policy

    def patch_namespaced_custom_object(self, group: str, version: str, namespace: str,
                                       plural: str, name: str, body: dict[str, Any],
                                       **kwargs: Any) -> None:
        if self.policy is None:
            raise ApiException(status=404, reason="Not Found")
        self.patches.append((body, kwargs.get("_content_type")))
        token = body["metadata"]["annotations"][BACKUP_NOW_ANNOTATION]
        # The operator's part, done at once: acknowledge, create the Job, record its run.
        self.on_demand = {"metadata": {"name": "orders-now-1",
                                       "annotations": {BACKUP_NOW_ANNOTATION: token}}}
        self.policy["status"] = {"backupNowToken": token, "history": [
            attempt("2026-05-01T12:00:05Z", "orders-now-1", self.now_outcome,
                    reason="DumpFailed" if self.now_outcome == "Failed" else "Succeeded",
                    sizeBytes=None if self.now_outcome == "Failed" else 4096)]}

    def list_namespaced_job(self, namespace: str, **_: Any) -> Any:
        return argparse.Namespace(items=[self.on_demand])

    def read_namespaced_cron_job(self, name: str, namespace: str, **_: Any) -> dict[str, Any]:
        if self.cronjob is None:
            raise ApiException(status=404, reason="Not Found")
        return self.cronjob

    def create_namespaced_job(self, namespace: str, body: dict[str, Any], **_: Any) -> None:
        self.created.append(body)

    def read_namespaced_job(self, name: str, namespace: str, **_: Any) -> dict[str, Any]:
        return {**self.created[-1], "status": self.job_status}

    def list_namespaced_pod(self, namespace: str, **_: Any) -> Any:
        return argparse.Namespace(items=self.pods)


def runner_setup() -> FakeApis:
    spec = BackupPolicySpec.model_validate(POLICY_SPEC)
    cronjob = render_cronjob(spec, OWNER, "img")
    policy = {"metadata": {"name": "orders", "namespace": "shop", "uid": "u-1"},
              "spec": POLICY_SPEC}
    return FakeApis(policy, cronjob)


@pytest.fixture
def connected(monkeypatch: pytest.MonkeyPatch) -> list[FakeApis]:
    """`connection.connect` returns the FakeApis appended to this list."""
    fakes: list[FakeApis] = []
    monkeypatch.setattr(connection, "connect", lambda args: (fakes[-1], args.namespace or "shop"))
    return fakes


@pytest.mark.parametrize("outcome, code", [("Succeeded", 0), ("Failed", 1)])
def test_backup_now_wait_reports_the_recorded_run(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str], outcome: str, code: int
) -> None:
    fake = FakeApis({"metadata": {"name": "orders", "namespace": "shop"}})
    fake.now_outcome = outcome
    connected.append(fake)
    assert main(["backup", "now", "orders", "--wait"]) == code
    [(patch, content_type)] = fake.patches
    assert content_type == "application/merge-patch+json"
    token = patch["metadata"]["annotations"][BACKUP_NOW_ANNOTATION]
    out, err = capsys.readouterr()
    assert out.splitlines()[:2] == [
        f"backuppolicy/orders: backup requested (runbook.dev/backup-now={token})",
        "job/orders-now-1 started"]
    if outcome == "Succeeded":
        assert out.splitlines()[2] == "backup orders-now-1 succeeded (4 KiB)"
    else:
        assert err == "backup orders-now-1 failed: DumpFailed\n"


def test_backup_now_on_a_stalled_policy_fails_with_its_reason(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    stalled = {"type": "Stalled", "status": "True", "reason": "SecretNotFound",
               "message": "Secret 'db' not found"}
    fake = FakeApis({"metadata": {"name": "orders"}, "status": {"conditions": [stalled]}})
    fake.patch_namespaced_custom_object = lambda *a, **k: None  # type: ignore[method-assign]
    connected.append(fake)
    assert main(["backup", "now", "orders", "--wait"]) == EXIT_FAILED
    assert capsys.readouterr().err == (
        "error: BackupPolicy orders is stalled (SecretNotFound: Secret 'db' not found); "
        "the request runs once it is fixed\n")


def test_missing_policy_is_a_one_line_error(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(FakeApis(None))
    for argv in (["backup", "now", "orders"], ["backup", "list", "orders"],
                 ["backup", "restore", "orders", "--into", "x"]):
        assert main([*argv, "-n", "team"]) == EXIT_ERROR
        assert capsys.readouterr().err == (
            "error: BackupPolicy 'orders' not found in namespace 'team'\n")


def test_backup_list_prints_the_table(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    connected.append(FakeApis({"metadata": {"name": "orders", "namespace": "shop"},
                               "status": {"history": HISTORY}}))
    assert main(["backup", "list", "orders"]) == 0
    assert "orders-backup-3   Failed" in capsys.readouterr().out


def test_restore_creates_the_job_and_reports_the_runners_result(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = runner_setup()
    fake.job_status = job("Complete")["status"]
    fake.pods = [pod("2026-05-01T06:00:13Z", restore_result())]
    connected.append(fake)
    assert main(["backup", "restore", "orders", "--into", "orders_copy", "--wait"]) == 0
    [created] = fake.created
    assert created["metadata"]["labels"][OPERATION_LABEL] == "restore"
    out = capsys.readouterr().out.splitlines()
    assert out[0] == (f"job/{created['metadata']['name']} created: restoring the newest backup "
                      "of orders into orders_copy")
    assert out[1] == (f"restore {created['metadata']['name']} succeeded: restored 1024 bytes "
                      "into the postgres target, from orders/20260501T020000Z in 12.5s")


def test_restore_without_result_exits_1(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = runner_setup()
    fake.job_status = job("Complete")["status"]
    connected.append(fake)
    assert main(["backup", "restore", "orders", "--into", "orders_copy", "--wait"]) == 1
    assert "the runner reported no result" in capsys.readouterr().err


def test_refused_restore_creates_nothing(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = runner_setup()
    connected.append(fake)
    assert main(["backup", "restore", "orders", "--into", "orders"]) == EXIT_ERROR
    assert fake.created == []
    assert capsys.readouterr().err == (
        "error: --into 'orders' is the source database itself; restore into a new database\n")


def test_restore_without_cronjob_points_at_status(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = runner_setup()
    fake.cronjob = None
    connected.append(fake)
    assert main(["backup", "restore", "orders", "--into", "x", "-n", "shop"]) == 2
    assert capsys.readouterr().err == (
        "error: CronJob orders-backup not found: the operator has not rendered the backups of "
        "orders (see kubectl runbook status -n shop)\n")


def test_forbidden_create_names_the_action(
    connected: list[FakeApis], capsys: pytest.CaptureFixture[str]
) -> None:
    fake = runner_setup()

    def forbidden(*_: Any, **__: Any) -> None:
        raise ApiException(status=403, reason="Forbidden")

    fake.create_namespaced_job = forbidden  # type: ignore[method-assign]
    connected.append(fake)
    assert main(["backup", "restore", "orders", "--into", "x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: forbidden: cannot create Job orders-restore-")
    assert err.count("\n") == 1
