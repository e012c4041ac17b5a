"""``python -m runbook_operator.devcluster.relay FD=HOST:PORT ...``: forwards every connection a
listening socket it inherited accepts to HOST:PORT, byte for byte (TLS passes through).

The cluster starts one per service it shows the user (the API server, the gateway's
entrypoint, Prometheus): the listening socket was opened on the host's loopback before the
process entered the cluster's network namespace (:mod:`.network`), the relay runs inside and
connects to the service there. As a process of its own it outlives a detached cluster's
``up`` command, like the other components.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import socket
import sys
import threading


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy until `source` ends, then end `sink`'s write side (half-close, as TCP does)."""
    with contextlib.suppress(OSError):
        while data := source.recv(65536):
            sink.sendall(data)
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _serve_connection(client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        client.close()
        return
    upstream.settimeout(None)
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def serve(listener: socket.socket, target: tuple[str, int]) -> None:
    """Accept until the listener is closed; one pair of pumping threads per connection."""
    while True:
        try:
            client, _ = listener.accept()
        except OSError:
            return
        threading.Thread(target=_serve_connection, args=(client, target), daemon=True).start()


def parse_route(text: str) -> tuple[int, tuple[str, int]]:
    """``3=10.244.32.1:8000`` → (3, ("10.244.32.1", 8000))."""
    fd, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    if not fd.isdigit() or not host or not port.isdigit():
        raise ValueError(f"expected FD=HOST:PORT, got {text!r}")
    return int(fd), (host, int(port))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_operator.devcluster.relay",
                                     description=__doc__)
    parser.add_argument("routes", nargs="+", type=parse_route, metavar="FD=HOST:PORT")
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    for fd, target in args.routes:
        listener = socket.socket(fileno=fd)
        threading.Thread(target=serve, args=(listener, target), daemon=True).start()
    stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
