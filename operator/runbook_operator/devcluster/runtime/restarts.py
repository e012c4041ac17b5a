"""When a container that exited starts again: the pod's restartPolicy and the kubelet's
crash-loop back-off (10 s, doubling, capped at 5 min, reset after 10 min of running)."""

from __future__ import annotations

from datetime import timedelta

INITIAL_BACKOFF = timedelta(seconds=10)
MAX_BACKOFF = timedelta(minutes=5)
BACKOFF_RESET = timedelta(minutes=10)


def should_restart(restart_policy: str, exit_code: int) -> bool:
    if restart_policy == "Always":
        return True
    if restart_policy == "OnFailure":
        return exit_code != 0
    return False


def next_backoff(previous: timedelta | None, ran_for: timedelta) -> timedelta:
    """The delay before the next start: the first, or the one after a long healthy run, is
    :data:`INITIAL_BACKOFF`; each following one doubles up to :data:`MAX_BACKOFF`."""
    if previous is None or ran_for >= BACKOFF_RESET:
        return INITIAL_BACKOFF
    return max(INITIAL_BACKOFF, min(previous * 2, MAX_BACKOFF))


def backoff_message(delay: timedelta, container: str, pod: str, namespace: str,
                    uid: str) -> str:
    return (f"back-off {int(delay.total_seconds())}s restarting failed "
            f"container={container} pod={pod}_{namespace}({uid})")
