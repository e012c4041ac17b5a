from __future__ import annotations

import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.devcluster.runtime.images import (
    image_repository,
    is_project_image,
    kwok_exclusion,
    operator_image,
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


def test_only_the_projects_repositories_are_project_images() -> None:
    assert is_project_image("runbook-operator:0.1.0")
    assert is_project_image("runbook-operator:dev")
    assert not is_project_image("busybox:1.36")
    assert not is_project_image("example.com/runbook-operator-fork:1")


def test_kwok_exclusion_is_a_not_in_requirement_on_every_containers_repository() -> None:
    requirement = kwok_exclusion()
    assert requirement["operator"] == "NotIn"
    assert requirement["values"] == ["runbook-operator"]
    assert str(requirement["key"]).startswith(".spec.containers.[].image")


def test_the_operator_image_runs_from_this_interpreters_environment() -> None:
    image = operator_image()
    assert image.entrypoint == ("runbook-operator",)
    assert (image.uid, image.gid) == (65532, 65532)
    env = dict(image.env)
    assert env["PATH"].startswith(f"{sys.prefix}/bin:")
    assert sys.prefix in image.root_paths and "/usr" in image.root_paths
