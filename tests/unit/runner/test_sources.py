"""The table of source kinds: every kind builds both parts, and an unknown one is named."""

from __future__ import annotations

import pytest

from runbook_operator.runner.interfaces import RunnerError
from runbook_operator.runner.sources import KINDS, build_restore_target, build_source

MINIMAL_SETTINGS = {
    "postgres": {"user": "u", "database": "orders"},
    "mysql": {"user": "u", "database": "orders"},
    "files": {"path": "/data"},
    "command": {"command": ["cat"]},
}


def test_every_kind_has_minimal_settings_here() -> None:
    assert set(MINIMAL_SETTINGS) == set(KINDS)


@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_builds_a_source_and_a_restore_target_of_its_kind(kind: str) -> None:
    assert build_source(kind, MINIMAL_SETTINGS[kind]).kind == kind
    assert build_restore_target(kind, MINIMAL_SETTINGS[kind]).kind == kind


@pytest.mark.parametrize(("build", "role"), [
    (build_source, "source"), (build_restore_target, "restore target"),
])
def test_settings_errors_name_the_kind_and_role(build, role: str) -> None:
    with pytest.raises(RunnerError, match=f"invalid files {role} settings: path: Field required"):
        build("files", {})


@pytest.mark.parametrize(("build", "role"), [
    (build_source, "source"), (build_restore_target, "restore target"),
])
def test_an_unknown_kind_lists_the_known_ones(build, role: str) -> None:
    with pytest.raises(RunnerError, match=f"unknown {role} kind 'tape'.*postgres, mysql") as error:
        build("tape", {})
    assert error.value.reason == "InvalidSettings"
