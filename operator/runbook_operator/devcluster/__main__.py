"""``python -m runbook_operator.devcluster {up,down,status,run}``: the local control plane by hand.

``up`` leaves the cluster running in the background (``make cluster-up``) and records it in
``<state-dir>/state.json``; ``down`` stops it and deletes the state dir; ``run`` keeps it in the
foreground until Ctrl-C or SIGTERM. ``up`` and ``run`` start it in a network namespace of its
own with the gateway (Traefik) installed, and relay the API server and the gateway's
entrypoint to this shell's loopback; ``status`` and ``down`` work from outside through them.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path

from runbook_operator.devcluster import gateway, network
from runbook_operator.devcluster.cluster import (
    DEFAULT_START_TIMEOUT,
    STATE_FILE,
    ClusterError,
    LocalCluster,
    build_scripts,
)

DEFAULT_STATE_DIR = Path(".cluster")


RELAYS = ("kube-apiserver", "gateway")


def _print_access(cluster: LocalCluster, elapsed: float | None = None) -> None:
    """Shell-evaluable output: comments for people, export lines for ``eval "$(... up)"``."""
    took = f" in {elapsed:.1f}s" if elapsed is not None else ""
    where = "its own network namespace" if cluster.isolated else "the host's loopback"
    print(f"# runbook devcluster up{took} in {where} (work dir {cluster.workdir})")
    relays = cluster.relays
    if "gateway" in relays:
        print(f"# the gateway's entrypoint: http://127.0.0.1:{relays['gateway']}/")
    print(f"# admin kubeconfig: {cluster.host_kubeconfig}")
    print(f"export KUBECONFIG={cluster.host_kubeconfig}")
    print(f"export PATH={cluster.bin_dir}:$PATH")
    sys.stdout.flush()


def _start_gateway(cluster: LocalCluster) -> None:
    """Traefik, with its web entrypoint relayed out of the namespace."""
    if not cluster.isolated:
        print("# no gateway: it needs the network namespace", file=sys.stderr)
        return
    address = gateway.install(cluster)
    cluster.relay_to_host("gateway", address, gateway.WEB_PORT)


def _up(args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve()
    if (state_dir / STATE_FILE).exists():
        existing = LocalCluster.attach(state_dir)
        if existing.is_running():
            print(f"# already running from {state_dir}", file=sys.stderr)
            _print_access(existing)
            return 0
    network.enter(RELAYS, prepare=build_scripts())
    started = time.monotonic()
    cluster = LocalCluster(state_dir, args.bin_dir, detached=True, start_timeout=args.timeout)
    cluster.start()
    try:
        _start_gateway(cluster)
    except BaseException:
        cluster.stop()
        raise
    _print_access(cluster, time.monotonic() - started)
    return 0


def _down(args: argparse.Namespace) -> int:
    state_dir = args.state_dir.resolve()
    if not (state_dir / STATE_FILE).exists():
        print(f"no cluster state in {state_dir}; nothing to stop", file=sys.stderr)
        return 0
    LocalCluster.attach(state_dir, remove_workdir=True).stop()
    print(f"stopped; removed {state_dir}", file=sys.stderr)
    return 0


def _status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.attach(args.state_dir)
    dead = set(cluster.dead_components())
    for name, pid in cluster.pids.items():
        state = "exited" if name in dead else "running"
        print(f"{name}: {state}, pid {pid}, port {cluster.ports.get(name, '-')}, "
              f"log {cluster.log_path(name)}")
    ready = not dead and cluster.is_ready()
    print(f"apiserver {cluster.server}: {'ready' if ready else 'NOT ready'}")
    for name, port in cluster.relays.items():
        print(f"{name} relayed to 127.0.0.1:{port}")
    print(f"export KUBECONFIG={cluster.host_kubeconfig}")
    return 0 if ready else 1


class _StopRequested(Exception):
    """Raised from the SIGINT/SIGTERM handler so ``with LocalCluster`` unwinds and stops."""


def _request_stop(signum: int, _frame: object) -> None:
    # A second signal must not interrupt the orderly shutdown the first one started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise _StopRequested(signal.Signals(signum).name)


def _run(args: argparse.Namespace) -> int:
    network.enter(RELAYS, prepare=build_scripts())
    signal.signal(signal.SIGINT, _request_stop)
    signal.signal(signal.SIGTERM, _request_stop)
    started = time.monotonic()
    workdir = args.state_dir.resolve() if args.state_dir else None
    try:
        with LocalCluster(workdir, args.bin_dir, start_timeout=args.timeout) as cluster:
            _start_gateway(cluster)
            _print_access(cluster, time.monotonic() - started)
            print("# Ctrl-C or SIGTERM stops it", file=sys.stderr)
            names = {pid: name for name, pid in cluster.pids.items()}
            # Blocks until a component dies on its own or a stop signal raises out of it.
            pid, _ = os.wait()
            print(f"# {names.get(pid, pid)} exited; see {cluster.logs_dir}; stopping",
                  file=sys.stderr)
            return 1
    except _StopRequested as exc:
        print(f"# {exc}: stopped", file=sys.stderr)
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m runbook_operator.devcluster",
        description="Run the local Kubernetes control plane (etcd, apiserver, controller-manager, "
        "scheduler, kwok, the runtime and the gateway) in a network namespace of its own.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    for name, func, help_text in (
        ("up", _up, "start in the background"),
        ("down", _down, "stop a background cluster and delete its state dir"),
        ("status", _status, "show a background cluster's processes and readiness"),
        ("run", _run, "run in the foreground until Ctrl-C/SIGTERM"),
    ):
        cmd = sub.add_parser(name, help=help_text)
        cmd.set_defaults(func=func)
        if name == "run":
            cmd.add_argument("--state-dir", type=Path, default=None,
                             help="work dir to keep (default: a temporary one, removed on exit)")
        else:
            cmd.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR,
                             help="where the cluster's files and state.json live "
                             f"(default {DEFAULT_STATE_DIR}/)")
        if name in ("up", "run"):
            cmd.add_argument("--bin-dir", type=Path, default=None,
                             help="prebuilt binaries (default: run hack/build-control-plane.sh)")
            cmd.add_argument("--timeout", type=float, default=DEFAULT_START_TIMEOUT,
                             help="start deadline in seconds")
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
