"""Pure decisions for BackupPolicy, one concern per module.

`names` (labels, annotations and object names every part agrees on), `cronjob` (the CronJobs
and on-demand Jobs to render), `runner_config` (the runner's config model and the Secret-backed
env and volumes it needs), `job_outcome` (what a finished Job means and how it folds into
status), `notifications` (who hears about runs and RPO breaches), `status` (conditions, RPO and
the status a reconcile writes), `rpo` (the recovery point objective) and `restore_job` (a
person's restore into a named target).
"""
