"""The container metrics a kubelet serves at ``/metrics/cadvisor``, for the containers this
runtime runs, measured from ``/proc`` when Prometheus scrapes.

The families and labels are cAdvisor's (``namespace``, ``pod``, ``container``, ``image``), so
the queries that run against a real cluster (the example AlertRules' memory, CPU and disk
rules) run here unchanged. The runtime gives containers no cgroup of their own, so the
figures are those of the container's process tree: CPU is the user and system time of its
live processes plus what their reaped children used (``/proc/<pid>/stat``), the working set
is their resident memory (cAdvisor's is the cgroup's usage minus inactive file pages, which
for these processes is close). The root container (``id="/"``) reports the filesystem that
holds the pods' files, as cAdvisor reports the node's filesystems.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

_LABELS = ("namespace", "pod", "container", "image")


@dataclass(frozen=True)
class ContainerSample:
    namespace: str
    pod: str
    container: str
    image: str
    cpu_seconds: float
    working_set_bytes: int
    memory_limit_bytes: int  # 0: no limit (as cAdvisor reports it)
    start_time: float  # seconds since the epoch


@dataclass(frozen=True)
class FilesystemSample:
    device: str
    usage_bytes: int
    limit_bytes: int


def families(containers: Iterable[ContainerSample],
             filesystem: FilesystemSample | None) -> list[Metric]:
    cpu = CounterMetricFamily("container_cpu_usage_seconds", "Cumulative cpu time consumed",
                              labels=_LABELS)
    working_set = GaugeMetricFamily("container_memory_working_set_bytes",
                                    "Current working set", labels=_LABELS)
    limit = GaugeMetricFamily("container_spec_memory_limit_bytes", "Memory limit",
                              labels=_LABELS)
    start = GaugeMetricFamily("container_start_time_seconds",
                              "Start time of the container since unix epoch", labels=_LABELS)
    for sample in containers:
        labels = [sample.namespace, sample.pod, sample.container, sample.image]
        cpu.add_metric(labels, sample.cpu_seconds)
        working_set.add_metric(labels, sample.working_set_bytes)
        limit.add_metric(labels, sample.memory_limit_bytes)
        start.add_metric(labels, sample.start_time)
    found: list[Metric] = [cpu, working_set, limit, start]
    if filesystem is not None:
        fs_labels = ("id", "device")
        usage = GaugeMetricFamily("container_fs_usage_bytes", "Bytes used by the container "
                                  "on this filesystem", labels=fs_labels)
        size = GaugeMetricFamily("container_fs_limit_bytes", "Bytes the container can use "
                                 "on this filesystem", labels=fs_labels)
        usage.add_metric(["/", filesystem.device], filesystem.usage_bytes)
        size.add_metric(["/", filesystem.device], filesystem.limit_bytes)
        found += [usage, size]
    return found


@dataclass(frozen=True)
class ProcessStat:
    pid: int
    cpu_ticks: int  # utime + stime + cutime + cstime
    rss_pages: int


def parse_stat(text: str) -> ProcessStat:
    """The fields of ``/proc/<pid>/stat`` used here (the command name may hold spaces)."""
    pid = int(text.split(" ", 1)[0])
    fields = text.rsplit(")", 1)[1].split()
    # fields[0] is field 3 (state): utime..cstime are fields 14..17, rss is field 24.
    return ProcessStat(pid, sum(int(f) for f in fields[11:15]), int(fields[21]))


def process_tree(root: int, proc: Path = Path("/proc")) -> Iterator[int]:
    """`root` and its live descendants (through each thread's children list)."""
    pending = [root]
    while pending:
        pid = pending.pop()
        yield pid
        try:
            tasks = list((proc / str(pid) / "task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                pending += [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue


def tree_usage(root: int, proc: Path = Path("/proc")) -> tuple[float, int]:
    """CPU seconds and resident bytes of `root`'s process tree."""
    ticks = rss = 0
    for pid in process_tree(root, proc):
        try:
            stat = parse_stat((proc / str(pid) / "stat").read_text())
        except (OSError, ValueError, IndexError):
            continue
        ticks += stat.cpu_ticks
        rss += stat.rss_pages
    return ticks / os.sysconf("SC_CLK_TCK"), rss * os.sysconf("SC_PAGE_SIZE")


def filesystem_of(path: Path, mounts: str) -> FilesystemSample:
    """The filesystem holding `path`: its device (from the longest matching mount point of
    ``/proc/mounts``) and statvfs figures."""
    resolved = str(path.resolve())
    best = ("", "")
    for line in mounts.splitlines():
        device, point = line.split()[:2]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) > len(best[1]):
            best = (device, point)
    stats = os.statvfs(path)
    limit = stats.f_blocks * stats.f_frsize
    return FilesystemSample(best[0], limit - stats.f_bfree * stats.f_frsize, limit)
