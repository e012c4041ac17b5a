"""`runbook-operator runner`: the backup Job's entry point.

Reads the job config, runs one operation, logs to stderr, and writes the result as compact JSON
to the container's termination message, where the operator reads it. The exit code is 0 only
on success, so a Job can never look successful when the backup was not made: 1 for a failed
run, 2 for a config that no retry can fix."""

from __future__ import annotations

import argparse
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import timedelta
from pathlib import Path

from runbook_operator.cli.logs import configure
from runbook_operator.core.retention import Rules
from runbook_operator.runner import config as cfg
from runbook_operator.runner.catalog import list_backups
from runbook_operator.runner.interfaces import RunnerError, Storage
from runbook_operator.runner.pipeline import (
    BackupSettings,
    Clock,
    elapsed_seconds,
    run_backup,
    run_restore,
    utc_now,
    verify_backup,
)
from runbook_operator.runner.prune import prune
from runbook_operator.runner.results import (
    PRUNED_KEYS_REPORTED,
    SUCCEEDED,
    BackupResult,
    ListResult,
    RunResult,
)
from runbook_operator.runner.verification import describe_failure

log = logging.getLogger("runbook_operator.runner")

RESULT_FILE_ENV = "RUNBOOK_RESULT_FILE"
DEFAULT_RESULT_FILE = "/dev/termination-log"
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INVALID_CONFIG = 2
_NOT_RETRYABLE = {"InvalidConfig", "InvalidKey", "MissingKey", "MissingCredentials"}


def _parser(env: Mapping[str, str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook-operator runner", description=__doc__)
    parser.add_argument(
        "--result-file",
        default=env.get(RESULT_FILE_ENV, DEFAULT_RESULT_FILE),
        help="where to write the result JSON (default: %(default)s)",
    )
    return parser


def _newest_key(storage: Storage, config: cfg.RunnerConfig) -> str:
    if config.backup_key:
        return config.backup_key
    backups = list_backups(storage, config.policy, config.namespace)
    if not backups:
        raise RunnerError(
            f"no committed backup of {config.namespace}/{config.policy} was found",
            reason="BackupNotFound",
        )
    return backups[-1].key


def _apply_retention(
    storage: Storage,
    config: cfg.RunnerConfig,
    retention: cfg.RetentionConfig,
    result: BackupResult,
    now: Clock,
) -> BackupResult:
    """Prune after a good backup. A failed prune does not undo the backup: it is reported in
    the message and retried after the next backup."""
    rules = Rules(
        keep_last=retention.keep_last, keep_daily=retention.keep_daily,
        keep_weekly=retention.keep_weekly, keep_monthly=retention.keep_monthly,
        keep_yearly=retention.keep_yearly,
        max_age=timedelta(seconds=retention.max_age_seconds)
        if retention.max_age_seconds else None,
    )
    try:
        outcome = prune(storage, config.policy, config.namespace, rules, now(),
                        retention.time_zone, retention.dry_run)
    except RunnerError as exc:
        return result.model_copy(update={"message": f"backup stored; prune failed: {exc}"})
    verb = "would prune" if outcome.dry_run else "pruned"
    return result.model_copy(update={
        "pruned_count": len(outcome.deleted),
        "pruned": outcome.deleted[:PRUNED_KEYS_REPORTED],
        "prune_dry_run": outcome.dry_run,
        "message": f"{verb} {len(outcome.deleted)}, kept {outcome.kept}",
    })


def run(config: cfg.RunnerConfig, env: Mapping[str, str], now: Clock = utc_now) -> RunResult:
    """Run one operation. Failures to set up (bad key, missing source) become results too."""
    started = now()
    try:
        storage = cfg.build_storage(config.storage, config.namespace)
        if config.operation == "backup":
            assert config.source is not None  # guaranteed by RunnerConfig's validator
            settings = BackupSettings(
                policy=config.policy,
                namespace=config.namespace,
                encryption=config.encryption.mode,
                key=cfg.load_key(config.encryption, env, for_backup=True),
                compression=config.compression,
                compression_level=config.compression_level,
                chunk_size=config.encryption.chunk_size,
                verifier=cfg.build_verifier(config.source),
            )
            result = run_backup(cfg.build_source(config.source), storage, settings, now)
            if result.ok and config.retention is not None:
                return _apply_retention(storage, config, config.retention, result, now)
            return result
        if config.operation == "verify":
            checker = cfg.build_verifier(config.source) if config.source else None
            key = cfg.load_key(config.encryption, env, for_backup=False)
            return verify_backup(storage, _newest_key(storage, config), key, checker, now)
        if config.operation == "restore":
            assert config.restore_target is not None  # guaranteed by RunnerConfig's validator
            target = cfg.build_restore_target(config.restore_target)
            return run_restore(
                storage,
                _newest_key(storage, config),
                target,
                cfg.load_key(config.encryption, env, for_backup=False),
                verify_first=config.verify_before_restore,
                now=now,
            )
        backups = list_backups(storage, config.policy, config.namespace)
        print(json.dumps({"backups": [b.to_wire() for b in backups]}), flush=True)
        finished = now()
        return ListResult(
            ok=True,
            reason=SUCCEEDED,
            message=f"{len(backups)} backup(s)",
            started_at=started,
            finished_at=finished,
            duration_seconds=elapsed_seconds(started, finished),
            location=storage.location(config.policy),
            count=len(backups),
            newest=backups[-1].key if backups else None,
        )
    except Exception as exc:  # a result must be written whatever happened
        finished = now()
        reason, message = describe_failure(exc)
        log.error("%s failed: %s: %s", config.operation, reason, message)
        return RunResult(
            ok=False,
            reason=reason,
            message=message,
            started_at=started,
            finished_at=finished,
            duration_seconds=elapsed_seconds(started, finished),
        )


def _write_result(path: str, result: RunResult) -> None:
    try:
        Path(path).write_text(result.to_json())
    except OSError as exc:
        log.warning("could not write the result to %s: %s", path, exc.strerror)


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    environ = os.environ if env is None else env
    args = _parser(environ).parse_args(argv)
    configure(environ.get("RUNBOOK_LOG_LEVEL", "INFO"), environ.get("RUNBOOK_JSON_LOGS") == "1")
    now = utc_now()
    try:
        config = cfg.load_config(environ)
    except RunnerError as exc:
        log.error("%s", exc)
        _write_result(
            args.result_file,
            RunResult(
                ok=False,
                reason=exc.reason,
                message=str(exc),
                started_at=now,
                finished_at=now,
                duration_seconds=0,
            ),
        )
        return EXIT_INVALID_CONFIG
    log.info("%s %s/%s", config.operation, config.namespace, config.policy)
    result = run(config, environ)
    _write_result(args.result_file, result)
    log.info("result: %s %s", result.reason, result.message)
    if result.ok:
        return EXIT_OK
    return EXIT_INVALID_CONFIG if result.reason in _NOT_RETRYABLE else EXIT_FAILED
