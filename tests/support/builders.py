"""Objects the tests build again and again: a sample notification, and bodies of every kind."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.common import API_VERSION
from runbook_operator.core.delivery import Link, Notification, Source
from runbook_operator.runner.results import BackupResult

NOW = datetime(2026, 3, 1, 12, 0, 5, tzinfo=UTC)
STARTED = datetime(2026, 3, 1, 11, 55, 0, tzinfo=UTC)


def notification(**changes: Any) -> Notification:
    """A BackupPolicy failure, the common case; `changes` override fields."""
    base: dict[str, Any] = {
        "source": Source(kind="BackupPolicy", name="db-nightly", namespace="prod"),
        "event": "failed",
        "severity": "high",
        "title": "Backup db-nightly failed",
        "summary": "pg_dump: connection refused",
        "details": {"job": "db-nightly-backup-29012345", "reason": "BackoffLimitExceeded"},
        "links": [Link(href="https://grafana.example.com/d/backups", text="Dashboard")],
        "timestamp": NOW,
        "started_at": STARTED,
        "dedup_key": "prod/db-nightly/backup-failed",
    }
    return Notification(**{**base, **changes})


def policy_body(name: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION,
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *",
            "source": {"command": {"image": "busybox:1.36", "command": ["true"]}},
        },
    }
    body["spec"].update(spec)
    return body


RUNNER_SECRETS = {"db": {"password": "pg-secret-value"}, "backup-key": {"key": "A" * 43 + "="},
           "s3": {"AWS_ACCESS_KEY_ID": "access-key-id-value", "AWS_SECRET_ACCESS_KEY": "s3-secret-value"}}


def runner_policy(name: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {
            "schedule": "0 2 * * *",
            "source": {"postgres": {"host": "orders-db", "database": "orders", "user": "backup",
                                    "passwordSecretRef": {"name": "db", "key": "password"}}},
            "destination": {"s3": {"endpoint": "http://minio.example:9000", "bucket": "backups",
                                   "credentialsSecretRef": {"name": "s3"}}},
            "encryption": {"keySecretRef": {"name": "backup-key", "key": "key"}},
            "restoreTest": {"schedule": "0 6 * * 0"},
            "backoffLimit": 0,
        },
    }


def runner_result(ok: bool, job: str) -> str:
    """A backup runner's termination message, as kwok reports it for a faked pod."""
    return BackupResult.model_validate(dict(
        ok=ok, reason="Succeeded" if ok else "DumpFailed",
        message="" if ok else "pg_dump: error: connection to server failed",
        startedAt="2026-05-01T02:00:00Z", finishedAt="2026-05-01T02:00:30Z",
        durationSeconds=30.0, location=f"s3://backups/orders/{job}/", key=f"orders/{job}",
        sizeBytes=4096 if ok else None, sha256="cd" * 32 if ok else None, verified=ok,
    )).to_json()


def alert_rule(name: str, prometheus_url: str, **spec: Any) -> dict[str, Any]:
    body = {
        "apiVersion": API_VERSION, "kind": "AlertRule", "metadata": {"name": name},
        "spec": {"query": "http_errors_ratio", "condition": {"operator": "gt", "threshold": 0.05},
                 "for": "4s", "interval": "5s", "severity": "critical",
                 "prometheus": {"url": prometheus_url},
                 "annotations": {"summary": "{{ $labels.service }} 5xx ratio is {{ $value }}"},
                 "channels": [{"name": "oncall"}]},
    }
    body["spec"].update(spec)
    return body


def errors_of(series: dict[str, str]) -> str:
    """The query of one service's 5xx ratio, as the exporter publishes it."""
    return f'http_errors_ratio{{service="{series["service"]}"}}'
