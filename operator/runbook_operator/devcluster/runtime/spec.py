"""From a pod spec to what a container process needs: argv, env, files, mounts and identity.

Pure functions of the pod, the image config and the Secrets/ConfigMaps read for it, following
the kubelet's rules (kubelet_pods.go): ``envFrom`` then ``env`` over the image's env, ``$(VAR)``
expansion, Secret/ConfigMap/downward-API files with their modes, one directory per PVC.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from runbook_operator.devcluster.runtime.images import ImageConfig

DEFAULT_TERMINATION_MESSAGE_PATH = "/dev/termination-log"
DEFAULT_FILE_MODE = 0o644
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_FIELD_LABEL = re.compile(r"^metadata\.(labels|annotations)\['(.+)'\]$")

#: Secret or ConfigMap contents by name, values decoded to bytes; None for one that is absent.
Objects = Mapping[str, Mapping[str, bytes] | None]


class ConfigError(Exception):
    """The container cannot be created yet (the kubelet's CreateContainerConfigError): a
    Secret or key is missing, or the spec asks for something this runtime cannot do."""


@dataclass(frozen=True)
class PodFacts:
    """What the downward API exposes that is not in the spec: addresses and identity."""

    pod_ip: str
    host_ip: str
    node_name: str


@dataclass(frozen=True)
class Sources:
    """The objects a pod refers to, as read from the API server for it."""

    secrets: Objects = field(default_factory=dict)
    config_maps: Objects = field(default_factory=dict)
    service_account_token: str = ""


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion: defined names are replaced, ``$$`` is a literal
    ``$``, anything else (undefined names, a lone ``$``) is kept as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def field_value(pod: Mapping[str, Any], path: str, facts: PodFacts) -> str:
    """A ``fieldRef``'s value, as the downward API resolves it."""
    meta = pod.get("metadata") or {}
    spec = pod.get("spec") or {}
    simple = {
        "metadata.name": meta.get("name", ""),
        "metadata.namespace": meta.get("namespace", ""),
        "metadata.uid": meta.get("uid", ""),
        "spec.nodeName": spec.get("nodeName") or facts.node_name,
        "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.podIP": facts.pod_ip,
        "status.podIPs": facts.pod_ip,
        "status.hostIP": facts.host_ip,
        "status.hostIPs": facts.host_ip,
    }
    if path in simple:
        return simple[path]
    match = _FIELD_LABEL.match(path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    if path in ("metadata.labels", "metadata.annotations"):
        items = sorted((meta.get(path.split(".")[1]) or {}).items())
        return "\n".join(f'{k}="{v}"' for k, v in items)
    raise ConfigError(f"unsupported fieldRef {path!r}")


def _lookup(objects: Objects, kind: str, ref: Mapping[str, Any]) -> str | None:
    data = objects.get(ref["name"])
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ConfigError(f'{kind} "{ref["name"]}" not found')
    if ref["key"] not in data:
        if optional:
            return None
        raise ConfigError(f"couldn't find key {ref['key']} in {kind} {ref['name']}")
    return data[ref["key"]].decode()


def container_env(
    pod: Mapping[str, Any], container: Mapping[str, Any], image: ImageConfig,
    facts: PodFacts, sources: Sources, base: Mapping[str, str],
) -> dict[str, str]:
    """The container's environment: image env, then ``base`` (what the kubelet adds:
    HOSTNAME, KUBERNETES_SERVICE_*), then ``envFrom`` in order, then ``env`` in order, each
    ``env`` value expanded against what is defined before it."""
    env = dict(image.env)
    env.update(base)
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        if "secretRef" in source:
            ref, objects, kind = source["secretRef"], sources.secrets, "secret"
        else:
            ref, objects, kind = source["configMapRef"], sources.config_maps, "configmap"
        data = objects.get(ref["name"])
        if data is None:
            if ref.get("optional"):
                continue
            raise ConfigError(f'{kind} "{ref["name"]}" not found')
        for key, value in data.items():
            if _ENV_NAME.match(prefix + key):
                env[prefix + key] = value.decode()
    defined: dict[str, str] = {}
    for var in container.get("env") or []:
        name = var["name"]
        value_from = var.get("valueFrom")
        if value_from is None:
            env[name] = defined[name] = expand(var.get("value", ""), {**env, **defined})
            continue
        if "secretKeyRef" in value_from:
            value = _lookup(sources.secrets, "secret", value_from["secretKeyRef"])
        elif "configMapKeyRef" in value_from:
            value = _lookup(sources.config_maps, "configmap", value_from["configMapKeyRef"])
        elif "fieldRef" in value_from:
            value = field_value(pod, value_from["fieldRef"]["fieldPath"], facts)
        else:
            raise ConfigError(f"env {name}: unsupported valueFrom {sorted(value_from)}")
        if value is not None:
            env[name] = defined[name] = value
    return env


def container_argv(
    container: Mapping[str, Any], image: ImageConfig, env: Mapping[str, str]
) -> list[str]:
    """``command`` replaces the image's entrypoint and drops its cmd; ``args`` replaces cmd."""
    command = container.get("command")
    args = container.get("args")
    if command:
        argv = [*command, *(args or [])]
    else:
        argv = [*image.entrypoint, *(args if args else image.cmd)]
    if not argv:
        raise ConfigError("no command specified")
    return [expand(arg, env) for arg in argv]


@dataclass(frozen=True)
class VolumeFiles:
    """A volume made of files (Secret, ConfigMap, projected, downward API): path → (content,
    mode); written fresh into the volume's directory."""

    files: dict[str, tuple[bytes, int]]


@dataclass(frozen=True)
class VolumeDirectory:
    """A volume that is a plain directory: ``shared_key`` names a PVC (one directory per
    claim, shared by the pods that mount it); None is the pod's own (emptyDir)."""

    shared_key: str | None = None
    read_only: bool = False


Volume = VolumeFiles | VolumeDirectory


def _items(data: Mapping[str, bytes], source: Mapping[str, Any]) -> dict[str, tuple[bytes, int]]:
    default = source.get("defaultMode", DEFAULT_FILE_MODE)
    items = source.get("items")
    if not items:
        return {key: (value, default) for key, value in data.items()}
    files = {}
    for item in items:
        if item["key"] not in data:
            if source.get("optional"):
                continue
            raise ConfigError(f"configured key {item['key']} not present")
        files[item["path"]] = (data[item["key"]], item.get("mode", default))
    return files


def _object_files(
    objects: Objects, kind: str, name: str, source: Mapping[str, Any]
) -> dict[str, tuple[bytes, int]]:
    data = objects.get(name)
    if data is None:
        if source.get("optional"):
            return {}
        raise ConfigError(f'{kind} "{name}" not found')
    return _items(data, source)


def _downward_files(
    pod: Mapping[str, Any], source: Mapping[str, Any], facts: PodFacts, default: int
) -> dict[str, tuple[bytes, int]]:
    files = {}
    for item in source.get("items") or []:
        if "fieldRef" not in item:
            raise ConfigError("downwardAPI: only fieldRef items are supported")
        value = field_value(pod, item["fieldRef"]["fieldPath"], facts)
        files[item["path"]] = (value.encode(), item.get("mode", default))
    return files


def _projected_files(
    pod: Mapping[str, Any], projected: Mapping[str, Any], facts: PodFacts, sources: Sources
) -> dict[str, tuple[bytes, int]]:
    default = projected.get("defaultMode", DEFAULT_FILE_MODE)
    files: dict[str, tuple[bytes, int]] = {}
    for part in projected.get("sources") or []:
        if "secret" in part:
            secret = {"defaultMode": default, **part["secret"]}
            files |= _object_files(sources.secrets, "secret", secret["name"], secret)
        elif "configMap" in part:
            config_map = {"defaultMode": default, **part["configMap"]}
            files |= _object_files(sources.config_maps, "configmap", config_map["name"],
                                   config_map)
        elif "downwardAPI" in part:
            files |= _downward_files(pod, part["downwardAPI"], facts, default)
        elif "serviceAccountToken" in part:
            token = part["serviceAccountToken"]
            files[token["path"]] = (sources.service_account_token.encode(), default)
        else:
            raise ConfigError(f"projected volume: unsupported source {sorted(part)}")
    return files


def pod_volumes(pod: Mapping[str, Any], facts: PodFacts, sources: Sources) -> dict[str, Volume]:
    """Every volume of the pod by name, or ConfigError for a missing object or a kind this
    runtime does not run (hostPath would give pods more than their own directories)."""
    namespace = pod["metadata"]["namespace"]
    volumes: dict[str, Volume] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "emptyDir" in volume:
            volumes[name] = VolumeDirectory()
        elif "persistentVolumeClaim" in volume:
            claim = volume["persistentVolumeClaim"]
            volumes[name] = VolumeDirectory(f"{namespace}/{claim['claimName']}",
                                            bool(claim.get("readOnly")))
        elif "secret" in volume:
            secret = volume["secret"]
            volumes[name] = VolumeFiles(
                _object_files(sources.secrets, "secret", secret["secretName"], secret))
        elif "configMap" in volume:
            config_map = volume["configMap"]
            volumes[name] = VolumeFiles(_object_files(
                sources.config_maps, "configmap", config_map["name"], config_map))
        elif "projected" in volume:
            volumes[name] = VolumeFiles(_projected_files(pod, volume["projected"], facts,
                                                         sources))
        elif "downwardAPI" in volume:
            source = volume["downwardAPI"]
            volumes[name] = VolumeFiles(_downward_files(
                pod, source, facts, source.get("defaultMode", DEFAULT_FILE_MODE)))
        else:
            kinds = sorted(k for k in volume if k != "name")
            raise ConfigError(f"volume {name!r}: unsupported volume type {kinds}")
    return volumes


def referenced_objects(pod: Mapping[str, Any]) -> tuple[set[str], set[str]]:
    """Names of the Secrets and ConfigMaps the pod's env and volumes refer to."""
    secrets: set[str] = set()
    config_maps: set[str] = set()
    spec = pod["spec"]
    for container in spec.get("containers") or []:
        for source in container.get("envFrom") or []:
            if "secretRef" in source:
                secrets.add(source["secretRef"]["name"])
            if "configMapRef" in source:
                config_maps.add(source["configMapRef"]["name"])
        for var in container.get("env") or []:
            value_from = var.get("valueFrom") or {}
            if "secretKeyRef" in value_from:
                secrets.add(value_from["secretKeyRef"]["name"])
            if "configMapKeyRef" in value_from:
                config_maps.add(value_from["configMapKeyRef"]["name"])
    for volume in spec.get("volumes") or []:
        if "secret" in volume:
            secrets.add(volume["secret"]["secretName"])
        if "configMap" in volume:
            config_maps.add(volume["configMap"]["name"])
        for part in (volume.get("projected") or {}).get("sources") or []:
            if "secret" in part:
                secrets.add(part["secret"]["name"])
            if "configMap" in part:
                config_maps.add(part["configMap"]["name"])
    return secrets, config_maps


@dataclass(frozen=True)
class Mount:
    """One bind into the sandbox: ``volume`` (and ``sub_path`` inside it) at ``path``."""

    volume: str
    path: str
    read_only: bool
    sub_path: str = ""


def container_mounts(
    container: Mapping[str, Any], volumes: Mapping[str, Volume]
) -> list[Mount]:
    """The container's volumeMounts, checked against the pod's volumes. File volumes are
    always read-only, as the kubelet mounts them."""
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise ConfigError(f"volumeMount {mount['name']!r} names no volume of the pod")
        path = PurePosixPath(mount["mountPath"])
        sub_path = mount.get("subPath", "")
        if not path.is_absolute() or ".." in path.parts or ".." in PurePosixPath(sub_path).parts:
            raise ConfigError(f"volumeMount {mount['name']!r}: invalid path")
        read_only = (bool(mount.get("readOnly")) or isinstance(volume, VolumeFiles)
                     or (isinstance(volume, VolumeDirectory) and volume.read_only))
        mounts.append(Mount(mount["name"], str(path), read_only, sub_path))
    return mounts


@dataclass(frozen=True)
class Identity:
    """Who the container runs as: the pod's ask, else the image's user."""

    uid: int
    gid: int
    groups: tuple[int, ...]


def container_identity(
    pod_spec: Mapping[str, Any], container: Mapping[str, Any], image: ImageConfig
) -> Identity:
    """runAsUser/runAsGroup (container over pod over image), supplementalGroups and fsGroup
    as extra groups; runAsNonRoot refuses uid 0 as the kubelet does."""
    pod_sc = pod_spec.get("securityContext") or {}
    sc = container.get("securityContext") or {}
    uid = sc.get("runAsUser", pod_sc.get("runAsUser", image.uid))
    gid = sc.get("runAsGroup", pod_sc.get("runAsGroup", image.gid))
    if sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) and uid == 0:
        raise ConfigError("container has runAsNonRoot and image will run as root")
    extra = [*pod_sc.get("supplementalGroups", [])]
    if "fsGroup" in pod_sc:
        extra.append(pod_sc["fsGroup"])
    groups = tuple(dict.fromkeys(g for g in [gid, *extra]))
    return Identity(uid, gid, groups)


def termination_message(
    container: Mapping[str, Any], file_text: str, exit_code: int, log_tail: str
) -> str:
    """The kubelet's message: the file's content (at most 4096 bytes); with
    ``FallbackToLogsOnError``, the log's last lines when the file is empty and it failed."""
    message = file_text.encode()[:4096].decode(errors="ignore")
    fallback = container.get("terminationMessagePolicy") == "FallbackToLogsOnError"
    if not message and fallback and exit_code != 0:
        lines = log_tail.splitlines()[-80:]
        message = "\n".join(lines).encode()[-2048:].decode(errors="ignore")
    return message
