from __future__ import annotations

import os
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from runbook_operator.devcluster.runtime.cadvisor import (
    ContainerSample,
    FilesystemSample,
    families,
    filesystem_of,
    parse_stat,
    process_tree,
    tree_usage,
)

SAMPLE = ContainerSample("shop", "checkout-1", "checkout", "runbook-demo-app:0.1.0",
                         cpu_seconds=1.5, working_set_bytes=30_000_000,
                         memory_limit_bytes=134_217_728, start_time=1_700_000_000.0)


class _Collector:
    def __init__(self, samples: list[ContainerSample], fs: FilesystemSample | None) -> None:
        self.samples, self.fs = samples, fs

    def collect(self):  # noqa: ANN201 - prometheus_client's protocol
        return families(self.samples, self.fs)


def _exposed(samples: list[ContainerSample], fs: FilesystemSample | None) -> dict:
    registry = CollectorRegistry()
    registry.register(_Collector(samples, fs))
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_containers_are_exposed_under_cadvisors_names_and_labels() -> None:
    exposed = _exposed([SAMPLE], None)
    labels = (("container", "checkout"), ("image", "runbook-demo-app:0.1.0"),
              ("namespace", "shop"), ("pod", "checkout-1"))
    assert exposed[("container_cpu_usage_seconds_total", labels)] == 1.5
    assert exposed[("container_memory_working_set_bytes", labels)] == 30_000_000
    assert exposed[("container_spec_memory_limit_bytes", labels)] == 134_217_728
    assert exposed[("container_start_time_seconds", labels)] == 1_700_000_000.0


def test_the_root_container_reports_the_filesystem() -> None:
    exposed = _exposed([], FilesystemSample("/dev/vda", 75, 100))
    labels = (("device", "/dev/vda"), ("id", "/"))
    assert exposed[("container_fs_usage_bytes", labels)] == 75
    assert exposed[("container_fs_limit_bytes", labels)] == 100


def test_stat_fields_survive_a_command_name_with_spaces_and_parentheses() -> None:
    fields = ["S", "1", "1", "1", "0", "-1", "0", "0", "0", "0", "0",
              "100", "20", "3", "4", "20", "0", "1", "0", "500", "1000", "250"]
    stat = parse_stat("42 (a (b) c) " + " ".join(fields))
    assert (stat.pid, stat.cpu_ticks, stat.rss_pages) == (42, 127, 250)


def _fake_proc(root: Path, tree: dict[int, list[int]]) -> None:
    for pid, children in tree.items():
        task = root / str(pid) / "task" / str(pid)
        task.mkdir(parents=True)
        (task / "children").write_text(" ".join(map(str, children)))
        fields = ["S"] + ["0"] * 10 + ["10", "0", "0", "0"] + ["0"] * 6 + ["2"]
        (root / str(pid) / "stat").write_text(f"{pid} (p) " + " ".join(fields))


def test_a_containers_usage_is_its_whole_process_tree(tmp_path: Path) -> None:
    _fake_proc(tmp_path, {10: [11, 12], 11: [13], 12: [], 13: [], 99: []})
    assert sorted(process_tree(10, tmp_path)) == [10, 11, 12, 13]
    cpu, rss = tree_usage(10, tmp_path)
    assert cpu == 40 / os.sysconf("SC_CLK_TCK")
    assert rss == 8 * os.sysconf("SC_PAGE_SIZE")


def test_a_process_gone_mid_walk_is_skipped(tmp_path: Path) -> None:
    _fake_proc(tmp_path, {10: [11, 77]})
    assert sorted(process_tree(10, tmp_path)) == [10, 11, 77]
    assert tree_usage(10, tmp_path)[1] == 2 * os.sysconf("SC_PAGE_SIZE")


def test_the_filesystem_is_the_longest_mount_point_holding_the_path(tmp_path: Path) -> None:
    mounts = f"/dev/root / ext4 rw 0 0\n/dev/data {tmp_path} ext4 rw 0 0\n"
    found = filesystem_of(tmp_path, mounts)
    assert found.device == "/dev/data"
    assert 0 <= found.usage_bytes <= found.limit_bytes
