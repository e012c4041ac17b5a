from __future__ import annotations

import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.devcluster.runtime.images import (
    demo_app_image,
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
                  "traefik:v3.6.12"):
        assert is_runtime_image(image)
    assert not is_runtime_image("busybox:1.36")
    assert not is_runtime_image("example.com/runbook-operator-fork:1")
    assert not is_runtime_image("docker.io/library/traefik:v3.6")


def test_kwok_exclusion_is_a_not_in_requirement_on_every_containers_repository() -> None:
    requirement = kwok_exclusion()
    assert requirement["operator"] == "NotIn"
    assert requirement["values"] == ["runbook-operator", "runbook-demo-app", "traefik"]
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
    image = gateway_image(Path("/cache/traefik/v3.6.12-1/traefik"))
    assert image.entrypoint == ("/cache/traefik/v3.6.12-1/traefik",)
    assert image.root_paths == ("/usr", "/etc", "/cache/traefik/v3.6.12-1")
    assert set(runtime_images(None)) == {"runbook-operator", "runbook-demo-app"}
    assert runtime_images(Path("/b/traefik"))["traefik"] == gateway_image(Path("/b/traefik"))
