"""`make demo` end to end, through the Makefile target a new user runs: its own control plane
in a network namespace of its own (nested in this session's), the gateway and the demo app
under live traffic, every example AlertRule on real series, the examples Ready, real backups
listed from storage, a real restore test with its RTO, the status shown, a healthy and a
failing canary rollout under live traffic, and a clean stop."""

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _section(out: str, title: str) -> str:
    return out.split(title, 1)[1].split("\n==> ", 1)[0]


def _rows(section: str) -> list[list[str]]:
    return [line.split() for line in section.strip().splitlines()[1:] if line.strip()]


def _table(text: str, header: str) -> list[list[str]]:
    """The rows under the line starting with `header`, up to the next blank line."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header)) + 1
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return [line.split() for line in lines[start:end]]


def test_demo_backs_up_and_restores_for_real_and_stops_cleanly(tmp_path: Path) -> None:
    result = subprocess.run(
        ["make", "--no-print-directory", "demo", f"DEMO_ARGS=--once --workdir {tmp_path / 'demo'}"],
        cwd=REPO, capture_output=True, text=True, timeout=1500, check=False,
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

    incident = _section(out, "an alert opens an Incident")
    assert re.search(r"level [2-9] reached; paged: .*oncall-pagerduty", incident), incident
    acked = _section(out, "kubectl runbook incident ack")
    assert re.search(r"acknowledged by \S+, MTTA \d+s; L3 is never paged", acked), acked
    resolved = _section(out, "kubectl runbook incident resolve")
    assert re.search(r"resolved, MTTR \d+s; level reached [2-9]", resolved), resolved
    postmortem = _section(out, "the postmortem (ConfigMap queue-backlog-incident-")
    assert "# Postmortem:" in postmortem and "MTTA" in postmortem, postmortem
    listed = _section(out, "kubectl get runbook -A")
    opened = re.findall(r"incident\.runbook\.dev/queue-backlog-incident-\S+", listed)
    assert len(opened) == 1, listed  # one series per queue: one Incident, not one per pod

    alerts = _section(out, "kubectl runbook alerts -A")
    rules = {row[1]: (row[2], row[3]) for row in _rows(alerts)}
    assert len(rules) == 9
    for name, (state, value) in rules.items():  # every rule evaluates a real number
        assert state in ("Normal", "Pending", "Firing") and value not in ("-", "NaN"), alerts
    assert rules["service-down"] == ("Normal", "1")
    backlog_state, backlog = rules["queue-backlog"]
    assert (backlog_state == "Pending") == (float(backlog) > 50), alerts
    status = _section(out, "kubectl runbook status -A")
    rows = [line.split() for line in status.strip().splitlines()[1:]]
    assert all(row[3] == "True" for row in rows), status
    logs = _section(out, "kubectl logs job/app-db-nightly-now-")
    assert "verified and committed" in logs
    assert "export KUBECONFIG=" in out and "admin-host.kubeconfig" in out
    assert out.rstrip().endswith("stopped cleanly")
    _check_the_live_part(out)
    _check_the_canary_part(out)
    assert "[prepare]" in result.stderr and "ready" in result.stderr


def _check_the_live_part(out: str) -> None:
    network = _section(out, "entered a network namespace of its own")
    assert "local 10.244.0.0/16 dev lo table local scope host" in network
    assert "default" not in network

    found = _section(out, "answers every example AlertRule's query with real numbers")
    jobs = [(row[0], row[-1]) for row in _table(found, "JOB ")]
    assert sorted(jobs) == [("checkout", "up")] * 3 + [("kubelet", "up"), ("traefik", "up")]
    queries = _table(found, "RULE ")
    answered = {row[0].rstrip(":") for row in queries}
    assert answered == {"service-down", "checkout-5xx-rate", "memory-high", "disk-almost-full",
                        "latency-p95-warning", "latency-p95-critical", "job-running-too-long",
                        "queue-backlog", "checkout-anomaly"}
    assert all(row[-1] != "NaN" for row in queries), found

    sample = _section(out, "1000 requests through the gateway")
    shares = {row[0]: (int(row[2]), float(row[3].rstrip("%")))
              for row in _table(sample, "VERSION ")}
    assert abs(shares["v1"][1] - 80) <= 5 and abs(shares["v2"][1] - 20) <= 5, sample
    assert shares["v1"][0] + shares["v2"][0] == 1000
    counted = dict(re.findall(r"^  Service (checkout-v[12]): (\d+)$", sample, re.MULTILINE))
    assert set(counted) == {"checkout-v1", "checkout-v2"}, sample
    assert all(int(n) > 0 for n in counted.values()), sample
    assert re.search(r"weights v1/v2 → 0/100: every answer from v2 \(30 in a row\) "
                     r"\d+\.\d+s after the patch", sample), sample

    anomaly = _section(out, "checkout-anomaly: the IsolationForest rule warming up")
    trained = re.search(r"trained at \S+ on (\d+) rows", anomaly)
    assert trained and int(trained.group(1)) >= 30, anomaly


def _check_the_canary_part(out: str) -> None:
    healthy = _section(out, "canary v1 → v2 (healthy)")
    shares = {row[0]: float(row[2].rstrip("%")) for row in _table(healthy, "WEIGHT ")
              if row[0].endswith("%")}
    for weight in (5, 30, 55, 80, 100):
        assert abs(shares[f"{weight}%"] - weight) <= 5, healthy
    assert re.search(r"Succeeded in \d+s: checkout-primary runs v2, checkout scaled to 0",
                     healthy), healthy
    failing = _section(out, "canary v2 → v3 (answers 5 % errors)")
    assert re.search(r"rolled back \(FailureLimit\) in \d+s: error-rate-under-1-percent = ",
                     failing), failing
    assert "then 200 requests: v2 100.0% (200) of 200 answers" in failing, failing
