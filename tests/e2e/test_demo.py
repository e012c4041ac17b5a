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
    assert "backuppolicy.runbook.dev/app-db-nightly condition met" in out
    assert "backuppolicy.runbook.dev/app-db-hourly condition met" in out
    table = out.split("==> kubectl get runbook -A", 1)[1].split("==>", 1)[0]
    rows = [line.split() for line in table.strip().splitlines()[1:]]
    assert sorted(row[1].split("/")[-1] for row in rows) == ["app-db-hourly", "app-db-nightly"]
    assert all("True" in row for row in rows)
    assert "export KUBECONFIG=" in out
    assert out.rstrip().endswith("stopped cleanly")
