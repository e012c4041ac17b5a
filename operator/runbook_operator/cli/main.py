"""`runbook-operator`: run the operator, print the CRDs it serves, or run one backup Job's work.

A thin dispatcher with lazy imports: `runbook-operator runner` runs inside every backup Job, and
must not pay for importing the operator (kopf, the Kubernetes client, numpy) in start-up time
or memory."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

LEASE_NAME = "runbook-operator"
DEFAULT_RUNNER_IMAGE = "runbook-operator:0.1.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no leader election: for development, when only one instance runs",
    )
    run.add_argument(
        "--lease",
        default=os.environ.get("RUNBOOK_LEASE", LEASE_NAME),
        help="the coordination.k8s.io Lease the replicas elect their leader on; only its "
        "holder acts (default %(default)s)",
    )
    run.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "runbook-system"),
        help="namespace of that Lease (default: the pod's, POD_NAMESPACE, else %(default)s)",
    )
    run.add_argument(
        "--lease-duration",
        type=float,
        default=15.0,
        help="seconds a leader's Lease stays valid without renewal: a standby takes over this "
        "long after the leader died (renewal deadline 2/3 of it, tries every 2/15 of it)",
    )
    run.add_argument(
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    run.add_argument("--health-port", type=int, default=8080, help="port of /healthz")
    run.add_argument("--metrics-port", type=int, default=9090, help="port of /metrics (0: off)")
    run.add_argument(
        "--bind-address",
        default=os.environ.get("RUNBOOK_BIND_ADDRESS", "0.0.0.0"),
        help="address /healthz and /metrics listen on (default: every address; the pod's IP "
        "where pods share one network namespace)",
    )
    run.add_argument(
        "--resync-interval",
        type=float,
        default=float(os.environ.get("RUNBOOK_RESYNC_SECONDS", "60")),
        help="seconds between full reconciles of each resource (repairs drift, retries)",
    )
    run.add_argument(
        "--runner-image",
        default=os.environ.get("RUNBOOK_RUNNER_IMAGE", DEFAULT_RUNNER_IMAGE),
        help="image of backup Jobs that use the runner (default: %(default)s)",
    )
    run.add_argument(
        "--prometheus-url",
        default=os.environ.get("RUNBOOK_PROMETHEUS_URL"),
        help="Prometheus for AlertRules that do not name one in spec.prometheus.url",
    )
    run.add_argument(
        "--prometheus-external-url",
        default=os.environ.get("RUNBOOK_PROMETHEUS_EXTERNAL_URL", ""),
        help="the --prometheus-url Prometheus as people reach it (its --web.external-url): "
        "alerts of rules that use it link their query there (generatorURL)",
    )
    run.add_argument(
        "--external-url",
        default=os.environ.get("RUNBOOK_EXTERNAL_URL", ""),
        help="where people reach the operator, e.g. a dashboard of its resources: the "
        "externalURL of every Alertmanager-style webhook message",
    )
    run.add_argument("--workers", type=int, default=20,
                     help="max threads running synchronous handlers at once")
    run.add_argument(
        "--object-workers",
        type=int,
        default=int(os.environ.get("RUNBOOK_OBJECT_WORKERS", "64")),
        help="objects whose watch events are handled at once; the others' events wait in "
        "order (0: no limit; default %(default)s)",
    )
    run.add_argument(
        "--api-qps",
        type=float,
        default=float(os.environ.get("RUNBOOK_API_QPS", "200")),
        help="average API requests a second of the operator's own reads and writes "
        "(0: no limit; default %(default)s)",
    )
    run.add_argument(
        "--api-burst",
        type=int,
        default=int(os.environ.get("RUNBOOK_API_BURST", "400")),
        help="API requests at once after a quiet spell, above --api-qps (default %(default)s)",
    )
    run.add_argument(
        "--alert-heartbeat-writes",
        type=float,
        default=os.environ.get("RUNBOOK_ALERT_HEARTBEAT_WRITES"),
        help="AlertRule status writes a second, all rules together, that only refresh "
        "lastEvaluation and lastValue: each rule's refresh comes every 5 minutes, or less "
        "often when there are more rules than this allows (0: every 5 minutes; default 2)",
    )
    run.add_argument(
        "--watch-timeout",
        type=int,
        default=300,
        help="server-side timeout of each watch request, in seconds",
    )
    _receiver_flags(run)
    run.add_argument("--log-level", default=os.environ.get("RUNBOOK_LOG_LEVEL", "INFO"))
    run.add_argument(
        "--json-logs",
        action="store_true",
        default=os.environ.get("RUNBOOK_JSON_LOGS", "") == "1",
        help="log JSON lines",
    )

    commands.add_parser("crds", help="print the CustomResourceDefinitions as YAML")
    commands.add_parser(
        "runner",
        help="run one backup, verify, restore or list operation (inside backup Jobs)",
        add_help=False,
    )
    return parser


def _receiver_flags(run: argparse.ArgumentParser) -> None:
    receiver = run.add_argument_group(
        "Alertmanager receiver",
        "POST /alertmanager/webhook (Alertmanager's webhook, payload version 4) opens and "
        "updates Incidents; served only when --alertmanager-port is set")
    receiver.add_argument(
        "--alertmanager-port", type=int, metavar="PORT",
        default=int(os.environ.get("RUNBOOK_ALERTMANAGER_PORT", "0")),
        help="port of the receiver (default 0: not served)")
    receiver.add_argument(
        "--alertmanager-token-secret", metavar="[NAMESPACE/]NAME",
        default=os.environ.get("RUNBOOK_ALERTMANAGER_TOKEN_SECRET"),
        help="Secret holding the bearer token senders must present (required with the port; "
        "namespace default: --alertmanager-namespace); read by name, again every 30 s")
    receiver.add_argument("--alertmanager-token-key", default="token", metavar="KEY",
                          help="key of the token in that Secret (default: %(default)s)")
    receiver.add_argument(
        "--alertmanager-namespace", metavar="NAMESPACE",
        default=os.environ.get("RUNBOOK_ALERTMANAGER_NAMESPACE"),
        help="namespace the receiver's Incidents open in (required with the port)")
    receiver.add_argument("--alertmanager-escalation-policy", metavar="NAME",
                          help="EscalationPolicy (in that namespace) its Incidents follow")
    receiver.add_argument(
        "--alertmanager-severity", choices=("P0", "P1", "P2", "P3"), default="P2",
        help="severity of a group whose severity label is none of P0-P3, critical (P1), "
        "error or high (P2), warning, medium, low or info (P3) (default: %(default)s)")
    receiver.add_argument(
        "--alertmanager-resolve", action="store_true",
        help="resolve an Incident when its group resolves (default: the timeline records it "
        "and people resolve)")
    receiver.add_argument("--alertmanager-max-body-bytes", type=int, metavar="BYTES",
                          help="larger requests are refused with 413 (default: 1 MiB)")


def _check_receiver(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if getattr(args, "alertmanager_port", 0) and not (
            args.alertmanager_token_secret and args.alertmanager_namespace):
        parser.error("--alertmanager-port needs --alertmanager-token-secret and "
                     "--alertmanager-namespace")


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["runner"]:
        from runbook_operator.runner.main import main as runner_main

        sys.exit(runner_main(argv[1:]))
    parser = _parser()
    args = parser.parse_args(argv)
    _check_receiver(parser, args)
    if args.command == "crds":
        from runbook_operator.api.crdgen import render_all

        sys.stdout.write("---\n".join(render_all().values()))
    else:
        # The operator speaks to the API with its own client (integrations/kubeapi.py); kopf
        # would import the official client's generated models (18 MiB) whenever it can.
        sys.modules.setdefault("kubernetes", None)
        from runbook_operator.cli.serve import run

        run(args)


if __name__ == "__main__":
    main()
