"""`make demo` end to end: its own control plane, the operator, the examples Ready, status shown."""

import subprocess
import sys
from pathlib import Path


def test_demo_shows_examples_ready_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "runbook_operator.devcluster.demo", "--once",
         "--workdir", str(tmp_path / "demo")],
        capture_output=True, text=True, timeout=400, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    for name in ("app-db-nightly", "app-db-hourly", "config-export"):
        assert f"backuppolicy.runbook.dev/{name} condition met" in out
    for name in ("team-slack", "oncall-pagerduty", "incident-webhook"):
        assert f"notificationchannel.runbook.dev/{name} condition met" in out
    for name in ("service-down", "queue-backlog", "checkout-anomaly"):
        assert f"alertrule.runbook.dev/{name} condition met" in out
    alerts = out.split("==> kubectl runbook alerts -A", 1)[1].split("==>", 1)[0]
    states = {line.split()[1]: line.split()[2] for line in alerts.strip().splitlines()[1:]}
    assert states["service-down"] == "Normal"
    assert states["queue-backlog"] == "Pending"
    status = out.split("==> kubectl runbook status -A", 1)[1].split("==>", 1)[0]
    rows = [line.split() for line in status.strip().splitlines()[1:]]
    names = {row[2] for row in rows}
    assert {"app-db-hourly", "app-db-nightly", "config-export", "incident-webhook",
            "oncall-pagerduty", "team-slack", "service-down", "checkout-anomaly"} <= names
    assert all(row[3] == "True" for row in rows), status
    assert "export KUBECONFIG=" in out
    assert out.rstrip().endswith("stopped cleanly")
