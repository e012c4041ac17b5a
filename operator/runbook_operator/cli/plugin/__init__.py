"""`kubectl-runbook`: the kubectl plugin for runbook resources, one module per command.

`status` (every kind's health), `alerts` (AlertRules), `backup` (one BackupPolicy's backups);
`connection` holds the shared flags and clients, `errors` the exit codes and one-line error
messages, `table` the one table printer and the number formats; `main` wires them together.

Exit codes: 0 success; 1 some resource is not Ready (`status --fail-unready`), or a backup or
restore waited for failed or did not finish in time; 2 usage error, a request that cannot be
made, or the cluster could not be read.
"""
