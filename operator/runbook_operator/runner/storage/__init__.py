"""Where backups are kept: one module per backend, each implementing `interfaces.Storage`.

Backends are imported by name where they are used, so the runner does not load an S3 client
for a backup that goes to a volume."""

from runbook_operator.runner.storage.local import LocalStorage

__all__ = ["LocalStorage"]
