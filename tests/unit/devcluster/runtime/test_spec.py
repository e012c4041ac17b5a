from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.devcluster.runtime.images import ImageConfig
from runbook_operator.devcluster.runtime.spec import (
    ConfigError,
    Identity,
    Mount,
    PodFacts,
    Sources,
    VolumeDirectory,
    VolumeFiles,
    container_argv,
    container_env,
    container_identity,
    container_mounts,
    expand,
    pod_volumes,
    referenced_objects,
    termination_message,
)

IMAGE = ImageConfig(entrypoint=("runbook-operator",), cmd=("run",),
                    env=(("PATH", "/venv/bin:/usr/bin"), ("HOME", "/nonexistent")),
                    uid=65532, gid=65532)
FACTS = PodFacts(pod_ip="10.244.128.7", host_ip="127.0.0.1", node_name="kwok-node-0")
SOURCES = Sources(secrets={"db": {"password": b"s3cr3t"}, "tls": {"ca.crt": b"CA"}},
                  config_maps={"settings": {"MODE": b"demo", "bad-name!": b"x", "level": b"3"}},
                  service_account_token="tok")


def _pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "web-1", "namespace": "shop", "uid": "u-1",
                         "labels": {"app": "web"}},
            "spec": {"nodeName": "kwok-node-0", "containers": [{"name": "main"}], **spec}}


@pytest.mark.parametrize(("text", "expanded"), [
    ("$(A)-$(B)", "1-2"),
    ("$$(A)", "$(A)"),
    ("$(MISSING)", "$(MISSING)"),
    ("cost $5", "cost $5"),
    ("trailing $", "trailing $"),
    ("$(A", "$(A"),
    ("$$$(A)", "$1"),
])
def test_expand_follows_kubernetes_rules(text: str, expanded: str) -> None:
    assert expand(text, {"A": "1", "B": "2"}) == expanded


@given(st.text(alphabet="ab()$ ", max_size=30))
def test_escaping_every_dollar_keeps_any_text_literal(text: str) -> None:
    assert expand(text.replace("$", "$$"), {"a": "expanded"}) == text


def test_env_layers_image_kubelet_env_from_and_env_in_order() -> None:
    container = {
        "envFrom": [{"configMapRef": {"name": "settings"}, "prefix": "CFG_"},
                    {"secretRef": {"name": "missing", "optional": True}}],
        "env": [
            {"name": "HOME", "value": "/home/app"},
            {"name": "URL", "value": "http://$(HOSTNAME):$(PORT)/$(CFG_MODE)"},
            {"name": "PORT", "value": "8080"},
            {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
            {"name": "IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "OPT", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "x",
                                                              "optional": True}}},
        ],
    }
    env = container_env(_pod(), container, IMAGE, FACTS, SOURCES, {"HOSTNAME": "web-1"})
    assert env["PATH"] == "/venv/bin:/usr/bin" and env["HOME"] == "/home/app"
    assert env["URL"] == "http://web-1:$(PORT)/demo"  # PORT is defined after URL
    assert env["CFG_MODE"] == "demo" and env["CFG_level"] == "3"
    assert "CFG_bad-name!" not in env
    assert (env["PASSWORD"], env["IP"], env["APP"]) == ("s3cr3t", "10.244.128.7", "web")
    assert "OPT" not in env


@pytest.mark.parametrize(("var", "problem"), [
    ({"secretKeyRef": {"name": "absent", "key": "k"}}, 'secret "absent" not found'),
    ({"secretKeyRef": {"name": "db", "key": "user"}}, "couldn't find key user in secret db"),
    ({"configMapKeyRef": {"name": "gone", "key": "k"}}, 'configmap "gone" not found'),
    ({"fieldRef": {"fieldPath": "status.phase"}}, "unsupported fieldRef"),
    ({"resourceFieldRef": {"resource": "limits.cpu"}}, "unsupported valueFrom"),
])
def test_env_that_cannot_be_resolved_is_a_config_error(var: dict, problem: str) -> None:
    container = {"env": [{"name": "X", "valueFrom": var}]}
    with pytest.raises(ConfigError, match=problem):
        container_env(_pod(), container, IMAGE, FACTS, SOURCES, {})


@pytest.mark.parametrize(("container", "argv"), [
    ({}, ["runbook-operator", "run"]),
    ({"args": ["runner"]}, ["runbook-operator", "runner"]),
    ({"command": ["python", "-c", "print(1)"]}, ["python", "-c", "print(1)"]),
    ({"command": ["sh", "-c"], "args": ["echo $(GREETING)"]}, ["sh", "-c", "echo hi"]),
])
def test_command_replaces_the_entrypoint_and_args_replace_cmd(container: dict,
                                                              argv: list[str]) -> None:
    assert container_argv(container, IMAGE, {"GREETING": "hi"}) == argv


def test_volumes_become_directories_and_files() -> None:
    volumes = pod_volumes(_pod(volumes=[
        {"name": "tmp", "emptyDir": {}},
        {"name": "data", "persistentVolumeClaim": {"claimName": "backups", "readOnly": True}},
        {"name": "creds", "secret": {"secretName": "db", "defaultMode": 0o400}},
        {"name": "conf", "configMap": {"name": "settings", "items": [
            {"key": "MODE", "path": "app/mode", "mode": 0o600}]}},
        {"name": "token", "projected": {"sources": [
            {"serviceAccountToken": {"path": "token"}},
            {"configMap": {"name": "settings", "items": [{"key": "level", "path": "level"}]}},
            {"downwardAPI": {"items": [{"path": "namespace",
                                        "fieldRef": {"fieldPath": "metadata.namespace"}}]}}]}},
        {"name": "optional", "secret": {"secretName": "absent", "optional": True}},
    ]), FACTS, SOURCES)
    assert volumes["tmp"] == VolumeDirectory()
    assert volumes["data"] == VolumeDirectory("shop/backups", read_only=True)
    assert volumes["creds"] == VolumeFiles({"password": (b"s3cr3t", 0o400)})
    assert volumes["conf"] == VolumeFiles({"app/mode": (b"demo", 0o600)})
    assert volumes["token"] == VolumeFiles({"token": (b"tok", 0o644), "level": (b"3", 0o644),
                                            "namespace": (b"shop", 0o644)})
    assert volumes["optional"] == VolumeFiles({})


@pytest.mark.parametrize(("volume", "problem"), [
    ({"name": "v", "secret": {"secretName": "absent"}}, 'secret "absent" not found'),
    ({"name": "v", "hostPath": {"path": "/etc"}}, "unsupported volume type"),
    ({"name": "v", "configMap": {"name": "settings", "items": [{"key": "nope", "path": "p"}]}},
     "configured key nope not present"),
])
def test_volumes_that_cannot_be_made_are_config_errors(volume: dict, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem):
        pod_volumes(_pod(volumes=[volume]), FACTS, SOURCES)


def test_referenced_objects_are_read_before_resolving() -> None:
    pod = _pod(containers=[{"name": "main", "envFrom": [{"secretRef": {"name": "a"}}],
                            "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {
                                "name": "b", "key": "k"}}}]}],
               volumes=[{"name": "v", "projected": {"sources": [{"secret": {"name": "c"}}]}},
                        {"name": "w", "configMap": {"name": "d"}}])
    assert referenced_objects(pod) == ({"a", "c"}, {"b", "d"})


def test_mounts_of_file_volumes_are_read_only_and_paths_are_checked() -> None:
    volumes = {"tmp": VolumeDirectory(), "creds": VolumeFiles({}),
               "ro": VolumeDirectory("ns/c", read_only=True)}
    mounts = container_mounts({"volumeMounts": [
        {"name": "tmp", "mountPath": "/tmp"},
        {"name": "creds", "mountPath": "/etc/creds"},
        {"name": "ro", "mountPath": "/data", "subPath": "part"},
    ]}, volumes)
    assert mounts == [Mount("tmp", "/tmp", False), Mount("creds", "/etc/creds", True),
                      Mount("ro", "/data", True, "part")]
    for bad in ({"name": "nope", "mountPath": "/x"}, {"name": "tmp", "mountPath": "relative"},
                {"name": "tmp", "mountPath": "/x", "subPath": "../escape"}):
        with pytest.raises(ConfigError):
            container_mounts({"volumeMounts": [bad]}, volumes)


def test_identity_comes_from_container_then_pod_then_image() -> None:
    pod_spec = {"securityContext": {"runAsUser": 1000, "runAsGroup": 2000, "fsGroup": 3000,
                                    "supplementalGroups": [4000]}}
    assert container_identity(pod_spec, {}, IMAGE) == Identity(1000, 2000, (2000, 4000, 3000))
    container = {"securityContext": {"runAsUser": 1001}}
    assert container_identity(pod_spec, container, IMAGE).uid == 1001
    assert container_identity({}, {}, IMAGE) == Identity(65532, 65532, (65532,))


def test_run_as_non_root_refuses_uid_zero() -> None:
    with pytest.raises(ConfigError, match="runAsNonRoot"):
        container_identity({"securityContext": {"runAsNonRoot": True, "runAsUser": 0}}, {}, IMAGE)


def test_termination_message_is_the_file_or_on_error_the_log_tail() -> None:
    assert termination_message({}, '{"ok": true}', 0, "log") == '{"ok": true}'
    assert termination_message({}, "x" * 5000, 0, "") == "x" * 4096
    fallback = {"terminationMessagePolicy": "FallbackToLogsOnError"}
    log = "\n".join(f"line {i}" for i in range(100))
    message = termination_message(fallback, "", 1, log)
    assert message.endswith("line 99") and "line 19\n" not in message
    assert termination_message(fallback, "", 0, log) == ""
    assert termination_message({}, "", 1, log) == ""
