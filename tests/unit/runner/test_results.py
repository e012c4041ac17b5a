"""The result contract: light to import for its readers, and always small enough for a
termination message."""

import json
import subprocess
import sys

import pytest

from runbook_operator.runner.results import TERMINATION_MESSAGE_LIMIT, BackupResult, RunResult
from tests.support.streams import START

PIPELINE = ("zstandard", "cryptography", "boto3", "botocore", "runbook_operator.runner.pipeline")


def imported_by(module: str, prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of `prefixes` that importing `module` loads."""
    probe = (
        f"import json, sys, {module}\n"
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    return json.loads(done.stdout)


def test_results_import_neither_the_pipeline_nor_the_core() -> None:
    assert imported_by("runbook_operator.runner.results",
                       (*PIPELINE, "runbook_operator.core")) == []


@pytest.mark.parametrize("module", ["runbook_operator.runner.config",
                                    "runbook_operator.runner.results"])
def test_the_contract_modules_import_nothing_of_the_core(module: str) -> None:
    assert imported_by(module, ("runbook_operator.core", "kopf", "kubernetes")) == []


def test_to_json_caps_any_message() -> None:
    result = RunResult(
        ok=False,
        reason="DumpFailed",
        message="\x01☃" * 100_000,
        started_at=START,
        finished_at=START,
        duration_seconds=0,
    )
    text = result.to_json()
    assert len(text.encode()) <= TERMINATION_MESSAGE_LIMIT
    assert json.loads(text)["reason"] == "DumpFailed"


def test_backup_result_names_its_key_on_the_wire() -> None:
    result = BackupResult(ok=True, reason="Succeeded", started_at=START, finished_at=START,
                          duration_seconds=0, key_id="0123456789abcdef")
    assert json.loads(result.to_json())["keyId"] == "0123456789abcdef"
