"""AlertRule's decisions, pure functions of the compiled rule, status, observations and `now`:

- `rule`: the spec compiled into core types, once per spec change;
- `state`: the instance state machine (Prometheus' `for` / `keepFiringFor`, Grafana's
  no-data and error handling);
- `decide`: one evaluation's next instances, due notifications (with escalation) and actions;
- `messages` and `templates`: an alert's labels and texts, per alert and as a group;
- `status`: what to write, and when it is worth a write;
- `quiet`: when a quiet rule's evaluation needs no decision at all;
- `actions`: cooldown, scaling bounds and the action log.
"""
