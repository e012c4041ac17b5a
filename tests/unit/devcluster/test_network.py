"""The namespace's netlink requests byte by byte (the e2e tests read the result back with
``ip``), and the pod network's slices. Nothing here enters a namespace: that would move the
test process."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
from ipaddress import ip_network

import pytest

from runbook_operator.devcluster import network
from runbook_operator.devcluster.network import (
    NetworkError,
    PodNetwork,
    ack_error,
    link_up_message,
    local_route_message,
)


def _attributes(data: bytes) -> dict[int, bytes]:
    found = {}
    while data:
        length, kind = struct.unpack_from("=HH", data)
        found[kind] = data[4:length]
        data = data[(length + 3) & ~3:]
    return found


def test_the_link_request_sets_only_the_up_flag_of_that_interface() -> None:
    message = link_up_message(1, seq=7)
    length, kind, flags, seq, _ = struct.unpack_from("=IHHII", message)
    assert (length, kind, seq) == (len(message), network.RTM_NEWLINK, 7)
    assert flags == network.NLM_F_REQUEST | network.NLM_F_ACK
    family, _type, index, if_flags, change = struct.unpack_from("=BxHiII", message, 16)
    assert (family, index, if_flags, change) == (socket.AF_UNSPEC, 1, 1, 1)


def test_the_route_request_makes_the_pod_network_local_on_loopback() -> None:
    message = local_route_message("10.244.0.0/16", 1, seq=2)
    length, kind, flags, _, _ = struct.unpack_from("=IHHII", message)
    assert (length, kind) == (len(message), network.RTM_NEWROUTE)
    assert flags & network.NLM_F_CREATE and flags & network.NLM_F_EXCL
    family, dst_len, src_len, tos, table, protocol, scope, route_type, _ = struct.unpack_from(
        "=BBBBBBBBI", message, 16)
    assert (family, dst_len, src_len, tos) == (socket.AF_INET, 16, 0, 0)
    assert (table, protocol, scope, route_type) == (255, 3, 254, 2)  # local, boot, host, local
    attributes = _attributes(message[28:])
    assert attributes[network.RTA_DST] == socket.inet_aton("10.244.0.0")
    assert struct.unpack("=I", attributes[network.RTA_OIF]) == (1,)
    assert struct.unpack("=I", attributes[network.RTA_TABLE]) == (255,)


@pytest.mark.parametrize(("error", "errno"), [(0, 0), (-1, 1), (-17, 17)])
def test_an_acknowledgement_carries_the_negated_errno(error: int, errno: int) -> None:
    reply = struct.pack("=IHHII", 36, network.NLMSG_ERROR, 0, 1, 0) + struct.pack("=i", error)
    assert ack_error(reply + bytes(16)) == errno


def test_any_other_reply_is_an_error() -> None:
    with pytest.raises(NetworkError):
        ack_error(struct.pack("=IHHII", 16, 3, 0, 1, 0))


def test_a_clusters_slice_splits_between_kwok_and_the_runtime() -> None:
    pods = ip_network(network.POD_NETWORK)
    slices = [ip_network(s) for s in network.slices()]
    assert len(slices) == 4 and all(s.subnet_of(pods) for s in slices)
    assert not any(a.overlaps(b) for i, a in enumerate(slices) for b in slices[i + 1:])
    for cidr in network.slices():
        kwok, runtime = (ip_network(c) for c in (PodNetwork(cidr).kwok_cidr,
                                                 PodNetwork(cidr).runtime_cidr))
        assert kwok.subnet_of(ip_network(cidr)) and runtime.subnet_of(ip_network(cidr))
        assert not kwok.overlaps(runtime)


def test_clusters_of_one_process_get_distinct_slices_until_none_is_left() -> None:
    taken = []  # the slices no cluster of this process (an e2e session's) holds yet
    try:
        with pytest.raises(NetworkError, match="every slice"):
            while True:
                taken.append(network.allocate_pod_network())
        assert taken and len({t.cidr for t in taken}) == len(taken)
        network.release_pod_network(taken[0])
        assert network.allocate_pod_network() == taken[0]
    finally:
        for each in taken:
            network.release_pod_network(each)


def _enter_in_a_child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`code` after `from runbook_operator.devcluster import network`, in a child process:
    entering a namespace here would move the test run."""
    return subprocess.run(
        [sys.executable, "-c", f"from runbook_operator.devcluster import network\n{code}"],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ, **env})


def test_without_a_namespace_the_harness_says_what_cannot_work() -> None:
    child = _enter_in_a_child("n = network.enter(('kube-apiserver',))\n"
                              "print(n.isolated, n.host_listeners)\nprint(n.note)",
                              RUNBOOK_NETWORK_NAMESPACE="off")
    isolated, note = child.stdout.splitlines()
    assert isolated == "False {}"
    assert "no network namespace" in note and "the gateway" in note and "fail" in note


def test_entering_with_threads_running_is_refused() -> None:
    child = _enter_in_a_child("import threading\n"
                              "threading.Thread(target=threading.Event().wait, name='early',"
                              " daemon=True).start()\nnetwork.enter()")
    assert child.returncode != 0
    assert "threads ['early'] already run" in child.stderr
