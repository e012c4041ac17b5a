from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.devcluster.runtime.images import (
    built_image,
    built_images,
    demo_app_image,
    find_image,
    gateway_image,
    image_repository,
    is_runtime_image,
    kwok_exclusion,
    operator_image,
    runtime_images,
)


@pytest.mark.parametrize(("image", "repository"), [
    ("runbook-operator:0.1.0", "runbook-operator"),
    ("runbook-operator", "runbook-operator"),
    ("localhost:5000/runbook-operator", "localhost:5000/runbook-operator"),
    ("localhost:5000/runbook-operator:dev", "localhost:5000/runbook-operator"),
    ("ghcr.io/x/runbook-operator@sha256:" + "a" * 64, "ghcr.io/x/runbook-operator"),
])
def test_image_repository_drops_tag_and_digest_but_not_a_port(image: str, repository: str) -> None:
    assert image_repository(image) == repository


@given(st.from_regex(r"[a-z][a-z0-9-]{0,20}(/[a-z0-9-]{1,10}){0,2}", fullmatch=True),
       st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}", fullmatch=True))
def test_any_tag_of_a_repository_names_that_repository(repository: str, tag: str) -> None:
    assert image_repository(f"{repository}:{tag}") == repository


def test_the_project_images_and_the_gateways_run_for_real_and_nothing_else() -> None:
    for image in ("runbook-operator:0.1.0", "runbook-operator:dev", "runbook-demo-app:0.1.0",
                  "runbook-runner:0.1.0", "traefik:v3.7.13"):
        assert is_runtime_image(image)
    assert not is_runtime_image("busybox:1.36")
    assert not is_runtime_image("example.com/runbook-operator-fork:1")
    assert not is_runtime_image("docker.io/library/traefik:v3.7")


def test_kwok_exclusion_is_a_not_in_requirement_on_every_containers_repository() -> None:
    requirement = kwok_exclusion()
    assert requirement["operator"] == "NotIn"
    assert requirement["values"] == ["runbook-operator", "runbook-runner", "runbook-demo-app",
                                     "traefik"]
    assert str(requirement["key"]).startswith(".spec.containers.[].image")


def test_the_operator_image_runs_from_this_interpreters_environment() -> None:
    image = operator_image()
    assert image.entrypoint == ("runbook-operator",)
    assert (image.uid, image.gid) == (65532, 65532)
    env = dict(image.env)
    assert env["PATH"].startswith(f"{sys.prefix}/bin:")
    assert sys.prefix in image.root_paths and "/usr" in image.root_paths


def test_the_demo_app_runs_its_module_from_the_same_environment_as_the_operator() -> None:
    app, operator = demo_app_image(), operator_image()
    assert app.entrypoint == (f"{sys.prefix}/bin/python", "-m", "runbook_operator.demoapp")
    assert app.cmd == ("serve",)
    assert (app.root_paths, app.env, app.uid) == (operator.root_paths, operator.env, operator.uid)


def test_the_gateway_image_is_its_binary_and_the_system_paths() -> None:
    image = gateway_image(Path("/cache/traefik/v3.7.13-1/traefik"))
    assert image.entrypoint == ("/cache/traefik/v3.7.13-1/traefik",)
    assert image.root_paths == ("/usr", "/etc", "/cache/traefik/v3.7.13-1")
    assert set(runtime_images(None)) == {"runbook-operator", "runbook-runner",
                                         "runbook-demo-app"}
    assert runtime_images(Path("/b/traefik"))["traefik"] == gateway_image(Path("/b/traefik"))


OCI_CONFIG = {"Entrypoint": ["runbook-operator"], "Cmd": ["run"], "User": "65532:65532",
              "Env": ["PATH=/opt/venv/bin:/usr/bin", "PYTHONUNBUFFERED=1", "EMPTY="]}


def test_a_built_image_runs_its_configs_command_as_its_user_from_its_root() -> None:
    image = built_image(OCI_CONFIG, "/cache/images/d/operator/rootfs")
    assert (image.entrypoint, image.cmd) == (("runbook-operator",), ("run",))
    assert (image.uid, image.gid, image.working_dir) == (65532, 65532, "/")
    assert dict(image.env) == {"PATH": "/opt/venv/bin:/usr/bin", "PYTHONUNBUFFERED": "1",
                               "EMPTY": ""}
    assert (image.rootfs, image.root_paths) == ("/cache/images/d/operator/rootfs", ())


@pytest.mark.parametrize(("user", "ids"), [(None, (0, 0)), ("1000", (1000, 0)),
                                           ("10:20", (10, 20))])
def test_a_numeric_user_is_taken_as_it_is(user: str | None, ids: tuple[int, int]) -> None:
    image = built_image({**OCI_CONFIG, "User": user}, "/r")
    assert (image.uid, image.gid) == ids


@pytest.mark.parametrize("user", ["nonroot", "65532:nonroot"])
def test_a_user_by_name_is_refused_as_no_passwd_is_read(user: str) -> None:
    with pytest.raises(ValueError, match="numeric"):
        built_image({**OCI_CONFIG, "User": user}, "/r")


def test_built_images_are_found_by_exact_reference_and_others_by_repository(
        tmp_path: Path) -> None:
    (tmp_path / "operator").mkdir()
    (tmp_path / "operator" / "config.json").write_text(json.dumps(OCI_CONFIG))
    (tmp_path / "images.json").write_text(json.dumps(
        {"operator": {"reference": "runbook-operator:0.1.0-abc", "size": "300 MB"}}))
    built = built_images(tmp_path)
    assert set(built) == {"runbook-operator:0.1.0-abc"}
    images = runtime_images(None, built)
    for reference in ("runbook-operator:0.1.0-abc", "localhost/runbook-operator:0.1.0-abc"):
        assert find_image(images, reference).rootfs == str(tmp_path / "operator" / "rootfs")
    assert find_image(images, "runbook-operator:0.1.0") == operator_image()
    assert find_image(images, "busybox:1.36") is None
