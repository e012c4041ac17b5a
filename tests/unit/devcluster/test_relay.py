from __future__ import annotations

import socket
import threading

import pytest

from runbook_operator.devcluster.relay import parse_route, serve


@pytest.mark.parametrize(("text", "route"), [
    ("3=127.0.0.1:6443", (3, ("127.0.0.1", 6443))),
    ("12=10.244.32.1:8000", (12, ("10.244.32.1", 8000))),
])
def test_a_route_names_the_inherited_socket_and_the_target(text: str, route: tuple) -> None:
    assert parse_route(text) == route


@pytest.mark.parametrize("text", ["x=1.2.3.4:5", "3=1.2.3.4", "3=:80", "3"])
def test_malformed_routes_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="FD=HOST:PORT"):
        parse_route(text)


def test_bytes_pass_both_ways_and_a_half_close_reaches_the_target() -> None:
    target = socket.create_server(("127.0.0.1", 0))
    listener = socket.create_server(("127.0.0.1", 0))

    def echo_until_eof() -> None:
        conn, _ = target.accept()
        with conn:
            data = b""
            while chunk := conn.recv(4096):
                data += chunk
            conn.sendall(data.upper())

    threading.Thread(target=echo_until_eof, daemon=True).start()
    relay = threading.Thread(target=serve, args=(listener, target.getsockname()), daemon=True)
    relay.start()
    with socket.create_connection(listener.getsockname(), timeout=10) as client:
        client.sendall(b"hello " * 10_000)
        client.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := client.recv(65536):
            answer += chunk
    assert answer == b"HELLO " * 10_000
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    target.close()
    relay.join(timeout=10)
    assert not relay.is_alive()
