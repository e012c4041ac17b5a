"""The local cluster's own network: a network namespace with no route out, the pod network
local inside it, and host-loopback sockets to relay chosen services to the user's shell.

A process that runs a cluster (the e2e session, ``make demo``, ``devcluster up``) calls
:func:`enter` once, first thing: it moves the whole process into a fresh network namespace,
so everything it starts afterwards (control plane, kwok, the runtime's pods, Prometheus, the
databases, the gateway, the operator, in-test receivers and the traffic it sends) lives there.
A fresh namespace holds only a loopback interface and no route anywhere else, so nothing can
leave it. Inside, ``local 10.244.0.0/16 dev lo`` in the ``local`` table (what ``ip route add
local 10.244.0.0/16 dev lo`` does) makes every pod address local: a pod process binds its own
address, EndpointSlices list addresses that answer, and the gateway reaches them.

Why the calling process itself moves (``unshare(2)`` on the running interpreter) rather than
re-executing under ``unshare --net``: pytest has already redirected its output by the time a
conftest runs, and the demo would have to re-parse its arguments; a namespace is per thread,
so entering before any thread exists moves the whole program, and subprocesses inherit it.
:func:`enter` refuses when other threads already run (they would stay outside).

As root ``unshare(CLONE_NEWNET)`` suffices; otherwise a user namespace comes with it, mapping
the caller's uid and gid to themselves (so files and the services' accounts stay as they
are). The namespace is configured over netlink from this process, before it executes
anything: in a user namespace, capabilities do not survive ``execve`` for a non-zero uid, so
``ip`` could not do it. Where neither works (no root, user namespaces disabled) the harness
says so and the cluster runs on the host's loopback as before: pods then have addresses
nothing can reach (:attr:`Network.note` explains which tests cannot pass there).

Builds and downloads happen before entering: the namespace has no way out.

The user's shell stays outside. A socket belongs to the namespace it was created in, for its
whole life, whichever namespace its owner moves to; so :func:`enter` opens the listening
sockets for the relays (:mod:`.relay`) on the host's loopback *before* unsharing, and a relay
inside forwards what they accept to a service inside. No port of the namespace is reachable
from outside except through those.
"""

from __future__ import annotations

import ctypes
import ipaddress
import logging
import os
import socket
import struct
import subprocess
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

#: Local inside the namespace: every cluster's pods take addresses from it (:class:`PodNetwork`).
POD_NETWORK = "10.244.0.0/16"
#: Each cluster in a process gets a slice of the pod network of this size (4 slices).
SLICE_PREFIX = 18
#: ``RUNBOOK_NETWORK_NAMESPACE=off`` runs the cluster on the host's loopback (to try the
#: fallback a machine without namespaces gets).
DISABLE_ENV = "RUNBOOK_NETWORK_NAMESPACE"

CLONE_NEWNET = 0x40000000
CLONE_NEWUSER = 0x10000000

# netlink (linux/netlink.h, linux/rtnetlink.h, linux/if.h)
NLMSG_ERROR = 2
RTM_NEWLINK = 16
RTM_NEWROUTE = 24
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
IFF_UP = 0x1
RTA_DST = 1
RTA_OIF = 4
RTA_TABLE = 15
RT_TABLE_LOCAL = 255
RTPROT_BOOT = 3
RT_SCOPE_HOST = 254
RTN_LOCAL = 2

_libc = ctypes.CDLL(None, use_errno=True)


class NetworkError(RuntimeError):
    """The namespace could not be entered or configured."""


@dataclass(frozen=True)
class Network:
    """How this process's clusters are networked."""

    isolated: bool
    #: How the namespace was made, or why there is none.
    note: str
    #: Listening sockets on the loopback outside the namespace, by relay name.
    host_listeners: dict[str, socket.socket] = field(default_factory=dict)

    def host_port(self, name: str) -> int:
        return self.host_listeners[name].getsockname()[1]


_current: Network | None = None
_lock = threading.Lock()


def current() -> Network | None:
    """The network :func:`enter` set up for this process; None before."""
    return _current


def enter(relays: Sequence[str] = (), *, prepare: Iterable[Path] = ()) -> Network:
    """Move this process into a fresh network namespace (once; later calls return the first
    result). `relays` names the host-loopback listeners to open first; `prepare` are build
    scripts run before entering (each is cached; the namespace has no way to download)."""
    global _current
    with _lock:
        if _current is not None:
            return _current
        for script in prepare:
            subprocess.run(["bash", str(script)], stdout=subprocess.DEVNULL, check=True)
        if os.environ.get(DISABLE_ENV) == "off":
            _current = Network(False, f"{DISABLE_ENV}=off: no network namespace; "
                               + FALLBACK_CONSEQUENCES)
            log.warning("%s", _current.note)
            return _current
        others = [t.name for t in threading.enumerate() if t is not threading.current_thread()]
        if others:
            raise NetworkError(
                f"threads {others} already run in this process and would stay outside the "
                "network namespace: call devcluster.network.enter() before starting any")
        listeners = {name: socket.create_server(("127.0.0.1", 0)) for name in relays}
        how, failure = _unshare()
        if how is None:
            for listener in listeners.values():
                listener.close()
            _current = Network(False, f"cannot create a network namespace ({failure}); "
                               + FALLBACK_CONSEQUENCES)
            log.warning("%s", _current.note)
            return _current
        configure_namespace(POD_NETWORK)
        _current = Network(True, how, listeners)
        log.info("entered %s; pod network %s is local", how, POD_NETWORK)
        return _current


FALLBACK_CONSEQUENCES = (
    "the cluster runs on the host's loopback, pods get addresses nothing can reach, and "
    "nothing routes to them: the gateway, the pod network and the demo app cannot work "
    "(their tests fail and say why; make demo leaves them out)")


def _unshare() -> tuple[str | None, str]:
    """Unshare the network namespace, with a user namespace if that is what it takes:
    (how, "") or (None, why neither was allowed)."""
    if _libc.unshare(CLONE_NEWNET) == 0:
        return "a network namespace of its own", ""
    alone = os.strerror(ctypes.get_errno())
    uid, gid = os.getuid(), os.getgid()
    if _libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        # EINVAL: the process has native threads (a user namespace needs a single thread);
        # EPERM/ENOSPC: user namespaces are disabled (kernel.unprivileged_userns_clone=0,
        # user.max_user_namespaces=0) or denied (seccomp, AppArmor).
        with_user = os.strerror(ctypes.get_errno())
        return None, (f"unshare(CLONE_NEWNET): {alone}, which needs root; with a user "
                      f"namespace: {with_user}")
    Path("/proc/self/setgroups").write_text("deny")
    Path("/proc/self/uid_map").write_text(f"{uid} {uid} 1")
    Path("/proc/self/gid_map").write_text(f"{gid} {gid} 1")
    return f"a user and network namespace of its own (uid {uid} mapped to itself)", ""


def configure_namespace(pod_network: str) -> None:
    """Loopback up, and `pod_network` local on it (``ip link set lo up; ip route add local
    <pod_network> dev lo``), over one netlink socket."""
    index = socket.if_nametoindex("lo")
    with socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE) as nl:
        nl.bind((0, 0))
        _request(nl, link_up_message(index, seq=1))
        _request(nl, local_route_message(pod_network, index, seq=2))


def _request(nl: socket.socket, message: bytes) -> None:
    nl.send(message)
    code = ack_error(nl.recv(65536))
    if code:
        raise NetworkError(f"netlink request failed: {os.strerror(code)}")


def _attribute(kind: int, payload: bytes) -> bytes:
    length = 4 + len(payload)
    return struct.pack("=HH", length, kind) + payload + b"\0" * (-length % 4)


def _message(kind: int, flags: int, seq: int, body: bytes) -> bytes:
    return struct.pack("=IHHII", 16 + len(body), kind, flags, seq, 0) + body


def link_up_message(index: int, seq: int) -> bytes:
    """RTM_NEWLINK setting IFF_UP on interface `index` (struct ifinfomsg)."""
    body = struct.pack("=BxHiII", socket.AF_UNSPEC, 0, index, IFF_UP, IFF_UP)
    return _message(RTM_NEWLINK, NLM_F_REQUEST | NLM_F_ACK, seq, body)


def local_route_message(network: str, index: int, seq: int) -> bytes:
    """RTM_NEWROUTE for ``local <network> dev <index> table local scope host proto boot``."""
    net = ipaddress.IPv4Network(network)
    body = struct.pack("=BBBBBBBBI", socket.AF_INET, net.prefixlen, 0, 0, RT_TABLE_LOCAL,
                       RTPROT_BOOT, RT_SCOPE_HOST, RTN_LOCAL, 0)
    body += _attribute(RTA_TABLE, struct.pack("=I", RT_TABLE_LOCAL))
    body += _attribute(RTA_DST, net.network_address.packed)
    body += _attribute(RTA_OIF, struct.pack("=I", index))
    flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
    return _message(RTM_NEWROUTE, flags, seq, body)


def ack_error(reply: bytes) -> int:
    """The errno a netlink acknowledgement carries (0: success)."""
    _, kind, _, _, _ = struct.unpack_from("=IHHII", reply)
    if kind != NLMSG_ERROR:
        raise NetworkError(f"unexpected netlink reply type {kind}")
    (error,) = struct.unpack_from("=i", reply, 16)
    return -error


@dataclass(frozen=True)
class PodNetwork:
    """One cluster's slice of :data:`POD_NETWORK`: kwok's fake pods take addresses from its
    lower half, the runtime's pods from its upper half, so neither hands out an address the
    other holds, and two clusters in one process never share one."""

    cidr: str

    @property
    def kwok_cidr(self) -> str:
        return str(list(ipaddress.ip_network(self.cidr).subnets())[0])

    @property
    def runtime_cidr(self) -> str:
        return str(list(ipaddress.ip_network(self.cidr).subnets())[1])


_slices_in_use: set[int] = set()


def slices() -> list[str]:
    return [str(s) for s in ipaddress.ip_network(POD_NETWORK).subnets(new_prefix=SLICE_PREFIX)]


def allocate_pod_network() -> PodNetwork:
    """The lowest slice no other cluster of this process holds."""
    with _lock:
        for index, cidr in enumerate(slices()):
            if index not in _slices_in_use:
                _slices_in_use.add(index)
                return PodNetwork(cidr)
    raise NetworkError(f"every slice of {POD_NETWORK} is in use by a cluster of this process")


def release_pod_network(network: PodNetwork) -> None:
    with _lock:
        _slices_in_use.discard(slices().index(network.cidr))
