"""`make demo` end to end, through the Makefile target a new user runs: its own control plane,
the operator, the examples Ready, real backups listed from storage, a real restore test with
its RTO, the status shown, and a clean stop."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section(out: str, title: str) -> str:
    return out.split(title, 1)[1].split("\n==> ", 1)[0]


def test_demo_backs_up_and_restores_for_real_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_ARGS=--once --workdir {tmp_path / 'demo'}"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for name in ("app-db-nightly", "app-db-hourly", "config-export"):
        assert f"backuppolicy.runbook.dev/{name} condition met" in out
    for name in ("team-slack", "oncall-pagerduty", "incident-webhook"):
        assert f"notificationchannel.runbook.dev/{name} condition met" in out
    for name in ("service-down", "queue-backlog", "checkout-anomaly"):
        assert f"alertrule.runbook.dev/{name} condition met" in out

    for name in ("app-db-nightly", "app-db-hourly"):
        assert re.search(rf"backup {name}-now-\w+ succeeded \(", out), out
    stored = _section(out, "the backups as stored").strip().splitlines()[1:]
    assert [line.split()[0] for line in stored[1:]] == ["app-db-nightly", "app-db-hourly"]
    assert stored[1].split()[1].startswith("s3://backups/postgres/runbook-demo/app-db-nightly/")
    assert stored[2].split()[1].startswith(
        "pvc/backup-volume:/postgres/hourly/runbook-demo/app-db-hourly/")
    assert all(line.split()[-1] == "yes" and int(line.split()[2]) > 0 for line in stored[1:])

    restore = _section(out, "restore test now")
    assert "Verified=True (RestoreSucceeded)" in restore
    rto = re.search(r"RTO (\d+\.\d)s: backup app-db-nightly/\S+ restored into database "
                    r"app_restore_test \(5000 users", restore)
    assert rto, restore

    alerts = _section(out, "kubectl runbook alerts -A")
    states = {line.split()[1]: line.split()[2] for line in alerts.strip().splitlines()[1:]}
    assert states["service-down"] == "Normal"
    assert states["queue-backlog"] == "Pending"
    status = _section(out, "kubectl runbook status -A")
    rows = [line.split() for line in status.strip().splitlines()[1:]]
    assert all(row[3] == "True" for row in rows), status
    logs = _section(out, "kubectl logs job/app-db-nightly-now-")
    assert "verified and committed" in logs
    assert "export KUBECONFIG=" in out
    assert out.rstrip().endswith("stopped cleanly")
    assert "[prepare]" in result.stderr and "ready" in result.stderr
