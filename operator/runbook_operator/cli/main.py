"""`runbook-operator`: run the operator, or print the CRDs it serves."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
from collections.abc import Sequence

import kopf
from prometheus_client import start_http_server

from runbook_operator.api.common import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.api.crdgen import render_all
from runbook_operator.cli.logs import configure
from runbook_operator.controllers import register_all
from runbook_operator.integrations.kubernetes import Kube, load_client_config
from runbook_operator.runner.main import main as runner_main

PEERING_NAME = "runbook-operator"
DEFAULT_RUNNER_IMAGE = "runbook-operator:0.1.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="runbook-operator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    run = commands.add_parser("run", help="run the operator")
    run.add_argument(
        "--standalone",
        action="store_true",
        help="no peering: for development, when only one instance runs",
    )
    run.add_argument(
        "--peering",
        default=os.environ.get("RUNBOOK_PEERING", PEERING_NAME),
        help="ClusterKopfPeering name shared by the replicas (default %(default)s)",
    )
    run.add_argument(
        "--priority",
        type=int,
        default=int(os.environ.get("RUNBOOK_PRIORITY", "0")),
        help="peering priority: the highest-priority live replica works, others stand by",
    )
    run.add_argument(
        "--peering-lifetime",
        type=int,
        default=20,
        help="seconds a replica's peering record stays valid without a keep-alive; after a "
        "crash, a restarted replica waits this long for the dead one's record to expire",
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
    run.add_argument("--workers", type=int, default=20, help="max concurrent handlers")
    run.add_argument(
        "--watch-timeout",
        type=int,
        default=300,
        help="server-side timeout of each watch request, in seconds",
    )
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


def operator_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    """kopf settings chosen on purpose rather than left at their defaults."""
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = args.watch_timeout
    settings.watching.client_timeout = args.watch_timeout + 30
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    settings.batching.worker_limit = args.workers
    settings.execution.max_workers = args.workers
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "runbook-operator"
    settings.posting.reporting_instance = socket.gethostname()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="runbook.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="runbook.dev")
    settings.peering.mandatory = not args.standalone
    settings.peering.lifetime = args.peering_lifetime
    settings.peering.clusterwide = not args.namespace
    return settings


def peering_object(name: str) -> dict[str, object]:
    """The ClusterKopfPeering the replicas share; created here rather than in manifests/
    because a custom resource cannot be applied in the same pass as its CRD."""
    return {
        "apiVersion": "kopf.dev/v1",
        "kind": "ClusterKopfPeering",
        "metadata": {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}},
    }


def run(args: argparse.Namespace) -> None:
    configure(args.log_level, args.json_logs)
    load_client_config()
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    kube = Kube()
    if not args.standalone:
        kube.apply(peering_object(args.peering))
    settings = operator_settings(args)
    register_all(
        registry, settings, kube, args.resync_interval, args.namespace, args.runner_image,
        args.prometheus_url,
    )
    if args.metrics_port:
        start_http_server(args.metrics_port)
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )


def main(argv: Sequence[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["runner"]:
        sys.exit(runner_main(argv[1:]))
    args = _parser().parse_args(argv)
    if args.command == "crds":
        sys.stdout.write("---\n".join(render_all().values()))
    else:
        run(args)


if __name__ == "__main__":
    main()
