"""Retention applied by the runner to real stored backups (local storage)."""

import json
from datetime import timedelta
from pathlib import Path

from runbook_operator.core.retention import Rules
from runbook_operator.runner import main as runner_main
from runbook_operator.runner.pipeline import list_backups, run_backup
from runbook_operator.runner.prune import prune
from runbook_operator.runner.storage.local import LocalStorage
from tests.support.streams import START, Clock, ShellSource, settings


def nightly_series(storage: LocalStorage, tmp_path: Path, days: int) -> list[str]:
    source = ShellSource("echo nightly dump", tmp_path)
    keys = []
    for day in range(days):
        result = run_backup(source, storage, settings(), Clock(START + timedelta(days=day)))
        assert result.ok, result.message
        keys.append(result.key)
    return keys


def test_series_is_pruned_exactly_as_declared(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    storage = LocalStorage(root)
    keys = nightly_series(storage, tmp_path, 12)
    now = START + timedelta(days=11, hours=1)

    dry = prune(storage, "db", "team-a", Rules(keep_last=3, max_age=timedelta(days=30)), now,
                dry_run=True)
    assert dry.dry_run and dry.deleted == list(reversed(keys[:9]))
    assert len(list_backups(storage, "db", "team-a")) == 12

    done = prune(storage, "db", "team-a", Rules(keep_last=3), now)
    assert done.deleted == list(reversed(keys[:9])) and done.kept == 3
    assert [b.key for b in list_backups(storage, "db", "team-a")] == keys[9:]
    assert not any(p.name.startswith(".partial") for p in root.rglob("*"))
    # Idempotent: a second prune deletes nothing.
    assert prune(storage, "db", "team-a", Rules(keep_last=3), now).deleted == []


def test_prune_stays_inside_the_policy_and_namespace(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    storage = LocalStorage(root)
    nightly_series(storage, tmp_path, 3)
    other = root / "dbx" / "20200101T000000Z"
    other.mkdir(parents=True)
    (other / "keep.me").write_text("not ours")
    prune(storage, "db", "team-a", Rules(keep_last=1), START + timedelta(days=5))
    assert (other / "keep.me").exists()
    assert len(list_backups(storage, "db", "team-a")) == 1


def test_runner_prunes_after_a_successful_backup(tmp_path: Path) -> None:
    root = tmp_path / "vol"
    root.mkdir()
    storage = LocalStorage(root)
    nightly_series(storage, tmp_path, 4)
    config = {
        "operation": "backup", "policy": "db", "namespace": "team-a",
        "encryption": {"mode": "none"}, "storage": {"local": {"path": str(root)}},
        "source": {"kind": "command", "settings": {"command": ["echo", "fresh"]}},
        "retention": {"keepLast": 2},
    }
    result_file = tmp_path / "result.json"
    code = runner_main.main(["--result-file", str(result_file)],
                            {"RUNBOOK_RUNNER_CONFIG": json.dumps(config)})
    result = json.loads(result_file.read_text())
    assert code == 0 and result["ok"], result
    assert result["prunedCount"] == 3 and len(result["pruned"]) == 3
    assert result["message"] == "pruned 3, kept 2"
    assert len(list_backups(storage, "db", "team-a")) == 2
