"""Retention applied by the runner to real stored backups (local storage)."""

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from runbook_operator.core.retention import Rules
from runbook_operator.runner import config as runner_config
from runbook_operator.runner import main as runner_main
from runbook_operator.runner.catalog import list_backups
from runbook_operator.runner.pipeline import BackupSettings, run_backup
from runbook_operator.runner.prune import prune
from runbook_operator.runner.results import BackupResult, RestoreResult
from runbook_operator.runner.storage.local import LocalStorage
from tests.support.streams import START, Clock, ShellSource, settings


def nightly_series(storage: LocalStorage, tmp_path: Path, days: int,
                   backup_settings: BackupSettings | None = None, first_day: int = 0) -> list[str]:
    source = ShellSource("echo nightly dump", tmp_path)
    keys = []
    for day in range(first_day, first_day + days):
        clock = Clock(START + timedelta(days=day))
        result = run_backup(source, storage, backup_settings or settings(), clock)
        assert result.ok, result.message
        keys.append(result.key)
    return keys


def volume(tmp_path: Path) -> Path:
    root = tmp_path / "vol"
    root.mkdir()
    return root


def test_series_is_pruned_exactly_as_declared(tmp_path: Path) -> None:
    root = volume(tmp_path)
    storage = LocalStorage(root, "team-a")
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


def stored_files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def test_prune_stays_inside_the_policy_and_namespace(tmp_path: Path) -> None:
    """Older committed backups that a careless prune would take: a sibling policy whose name
    extends this one's (`dbx`), the same policy name in another namespace on the same volume,
    and a manifest of that other namespace copied into this policy's directory."""
    root = volume(tmp_path)
    team_a, team_b = LocalStorage(root, "team-a"), LocalStorage(root, "team-b")
    sibling = BackupSettings(policy="dbx", namespace="team-a", encryption="none")
    namesake = BackupSettings(policy="db", namespace="team-b", encryption="none")
    nightly_series(team_a, tmp_path, 2, sibling)
    nightly_series(team_b, tmp_path, 2, namesake)
    foreign = run_backup(ShellSource("echo theirs", tmp_path), team_a,
                         BackupSettings(policy="db", namespace="team-b", encryption="none"),
                         Clock(START - timedelta(days=30)))
    assert foreign.ok, foreign.message
    others = stored_files(root)
    ours = nightly_series(team_a, tmp_path, 3, first_day=5)

    done = prune(team_a, "db", "team-a", Rules(keep_last=1), START + timedelta(days=9))
    assert done.deleted == list(reversed(ours[:2]))
    assert stored_files(root) >= others
    assert [b.key for b in list_backups(team_a, "db", "team-a")] == ours[2:]
    assert len(list_backups(team_a, "dbx", "team-a")) == 2
    assert len(list_backups(team_b, "db", "team-b")) == 2


def run(config: dict[str, Any], clock: Clock) -> Any:
    return runner_main.run(runner_config.parse_config(json.dumps(config)), {}, clock)


def runner_config_for(root: Path, namespace: str, operation: str, **extra: Any) -> dict[str, Any]:
    return {
        "operation": operation, "policy": "db", "namespace": namespace,
        "encryption": {"mode": "none"}, "storage": {"local": {"path": str(root)}}, **extra,
    }


SOURCE = {"kind": "command", "settings": {"command": ["echo", "fresh"]}}


def test_same_policy_in_two_namespaces_shares_a_volume_without_collisions(
    tmp_path: Path,
) -> None:
    root = volume(tmp_path)
    results = {}
    for namespace in ("team-a", "team-b"):
        config = runner_config_for(root, namespace, "backup", source=SOURCE,
                                   retention={"keepLast": 1})
        results[namespace] = [run(config, Clock(START + timedelta(days=d))) for d in range(3)]
    for namespace, made in results.items():
        assert all(r.ok for r in made), [r.message for r in made]
        assert [r.pruned_count for r in made] == [0, 1, 1]
        assert made[0].location == f"{(root / namespace).as_uri()}/{made[0].key}"
        assert [b.key for b in list_backups(LocalStorage(root, namespace), "db")] == [
            made[2].key]
    assert [r.key for r in results["team-a"]] == [r.key for r in results["team-b"]]


def test_runner_prunes_after_a_successful_backup(tmp_path: Path) -> None:
    root = volume(tmp_path)
    storage = LocalStorage(root, "team-a")
    nightly_series(storage, tmp_path, 4)
    config = runner_config_for(root, "team-a", "backup", source=SOURCE,
                               retention={"keepLast": 2})
    result_file = tmp_path / "result.json"
    code = runner_main.main(["--result-file", str(result_file)],
                            {"RUNBOOK_RUNNER_CONFIG": json.dumps(config)})
    result = json.loads(result_file.read_text())
    assert code == 0 and result["ok"], result
    assert result["prunedCount"] == 3 and len(result["pruned"]) == 3
    assert result["message"] == "pruned 3, kept 2"
    assert len(list_backups(storage, "db", "team-a")) == 2


def test_the_newest_restore_tested_backup_outlives_the_rules(tmp_path: Path) -> None:
    """A real restore by the runner records itself beside the backup it restored; later
    backups and prunes, dry or not, keep that backup although keepLast no longer does."""
    root = volume(tmp_path)
    storage = LocalStorage(root, "team-a")
    plain = settings(key=None)
    first, second = nightly_series(storage, tmp_path, 2, plain)
    restored_file = tmp_path / "restored"
    target = {"kind": "command",
              "settings": {"command": ["sh", "-c", f"cat > {restored_file}"]}}
    failing = {"kind": "command", "settings": {"command": ["sh", "-c", "cat >/dev/null; exit 1"]}}
    restore = runner_config_for(root, "team-a", "restore", backupKey=first, restoreTarget=target)
    tested = run(restore, Clock(START + timedelta(days=2)))
    assert isinstance(tested, RestoreResult) and tested.ok, tested.message
    assert restored_file.read_bytes() == b"nightly dump\n"
    broken = run({**restore, "backupKey": second, "restoreTarget": failing},
                 Clock(START + timedelta(days=2, hours=1)))
    assert not broken.ok
    listed = {b.key: b for b in list_backups(storage, "db", "team-a")}
    assert listed[first].restore_tested_at == tested.finished_at
    assert listed[second].restore_tested_at is None
    assert listed[first].verified and listed[second].verified

    nightly_series(storage, tmp_path, 3, plain, first_day=3)
    for day, dry_run in ((10, True), (11, False)):
        config = runner_config_for(root, "team-a", "backup", source=SOURCE,
                                   retention={"keepLast": 1, "dryRun": dry_run})
        made = run(config, Clock(START + timedelta(days=day)))
        assert isinstance(made, BackupResult) and made.ok, made.message
        assert first not in made.pruned and second in made.pruned
        assert made.prune_dry_run is dry_run
    assert [b.key for b in list_backups(storage, "db", "team-a")] == [first, made.key]
