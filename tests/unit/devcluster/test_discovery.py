from __future__ import annotations

from pathlib import Path

from runbook_operator.devcluster.discovery import rbac_objects, scrape_configs


def _job(name: str) -> dict:
    return next(c for c in scrape_configs(Path("/k/config")) if c["job_name"] == name)


def _rule(job: dict, target: str) -> dict:
    return next(r for r in job["relabel_configs"] if r.get("target_label") == target)


def test_both_jobs_discover_through_the_api_server_with_prometheus_own_kubeconfig() -> None:
    for config in scrape_configs(Path("/k/config")):
        [sd] = config["kubernetes_sd_configs"]
        assert sd["kubeconfig_file"] == "/k/config"
        assert "static_configs" not in config


def test_only_annotated_running_pods_are_scraped_at_the_annotated_port() -> None:
    pods = _job("kubernetes-pods")
    keep, drop = pods["relabel_configs"][:2]
    assert keep == {"source_labels": ["__meta_kubernetes_pod_annotation_prometheus_io_scrape"],
                    "action": "keep", "regex": "true"}
    assert drop["action"] == "drop" and "Succeeded" in drop["regex"]
    address = _rule(pods, "__address__")
    assert address["source_labels"] == ["__meta_kubernetes_pod_ip",
                                        "__meta_kubernetes_pod_annotation_prometheus_io_port"]
    assert _rule(pods, "__metrics_path__")["source_labels"] == [
        "__meta_kubernetes_pod_annotation_prometheus_io_path"]


def test_job_and_service_are_the_apps_name_and_the_metrics_own_labels_win() -> None:
    pods = _job("kubernetes-pods")
    name = ["__meta_kubernetes_pod_label_app_kubernetes_io_name"]
    assert _rule(pods, "job")["source_labels"] == name
    assert _rule(pods, "service")["source_labels"] == name
    assert _rule(pods, "version")["source_labels"] == [
        "__meta_kubernetes_pod_label_app_kubernetes_io_version"]
    # Traefik's own `service` label (the backend) must survive the target's.
    assert pods["honor_labels"] is True


def test_the_kubelet_job_scrapes_cadvisor_where_the_node_annotation_says() -> None:
    kubelet = _job("kubelet")
    assert kubelet["metrics_path"] == "/metrics/cadvisor"
    port = "__meta_kubernetes_node_annotation_devcluster_runbook_dev_runtime_metrics_port"
    assert kubelet["relabel_configs"][0] == {"source_labels": [port], "action": "keep",
                                             "regex": r"\d+"}
    assert _rule(kubelet, "__address__")["source_labels"] == [
        "__meta_kubernetes_node_address_InternalIP", port]


def test_prometheus_may_only_read_nodes_and_pods() -> None:
    [role] = [o for o in rbac_objects() if o["kind"] == "ClusterRole"]
    assert role["rules"] == [{"apiGroups": [""], "resources": ["nodes", "pods"],
                              "verbs": ["get", "list", "watch"]}]
