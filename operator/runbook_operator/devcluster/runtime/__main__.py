"""``python -m runbook_operator.devcluster.runtime``: the runtime as a cluster component,
started by :class:`~runbook_operator.devcluster.cluster.LocalCluster` next to kwok."""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import threading
from pathlib import Path

from prometheus_client import CollectorRegistry, start_http_server

from runbook_operator.devcluster.runtime.images import built_images, runtime_images
from runbook_operator.devcluster.runtime.kubelet import Api, Runtime, Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_operator.devcluster.runtime",
                                     description=__doc__)
    parser.add_argument("--server", required=True, help="the API server's URL")
    parser.add_argument("--ca", required=True, help="the cluster CA certificate")
    parser.add_argument("--cert", required=True, help="client certificate")
    parser.add_argument("--key", required=True, help="client key")
    parser.add_argument("--node", required=True, help="the node whose pods to run")
    parser.add_argument("--workdir", type=Path, required=True, help="pods' files and logs")
    parser.add_argument("--pod-cidr", required=True, help="pod IPs the runtime hands out")
    parser.add_argument("--host-ip", default="127.0.0.1")
    parser.add_argument("--metrics-port", type=int, default=0,
                        help="serve the containers' cAdvisor metrics on host-ip:port")
    parser.add_argument("--gateway-binary", type=Path, default=None,
                        help="Traefik's binary, which pods of the traefik image run")
    parser.add_argument("--built-images", type=Path, default=None,
                        help="what hack/build-image.sh exported: pods naming one of its "
                        "references run from that image's root filesystem")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    bwrap, setpriv = shutil.which("bwrap"), shutil.which("setpriv")
    if bwrap is None or setpriv is None:
        print("bwrap (Debian package bubblewrap) and setpriv are needed; run "
              "hack/prepare.sh", file=sys.stderr)
        return 2
    host, _, port = args.server.removeprefix("https://").rpartition(":")
    built = built_images(args.built_images) if args.built_images else {}
    helper = args.built_images / "runtime-setpriv" if args.built_images else None
    settings = Settings(node=args.node, workdir=args.workdir.resolve(),
                        images=runtime_images(args.gateway_binary, built),
                        pool_cidr=args.pod_cidr, host_ip=args.host_ip, api_host=host,
                        api_port=int(port), bwrap=bwrap, setpriv=setpriv,
                        setpriv_helper=str(helper) if helper else None)
    runtime = Runtime(Api(args.server, args.ca, args.cert, args.key), settings)
    if args.metrics_port:
        registry = CollectorRegistry()
        registry.register(runtime)
        start_http_server(args.metrics_port, args.host_ip, registry)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=runtime.run, name="watch", daemon=True).start()
    logging.info("runtime for node %s ready (pod IPs from %s)", args.node, args.pod_cidr)
    stop.wait()
    runtime.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
