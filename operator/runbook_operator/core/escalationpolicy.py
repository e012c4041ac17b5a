"""An EscalationPolicy's status as a pure function of its spec, the NotificationChannels that
exist in its namespace and `now`: Ready when every channel it names exists and every level
reaches someone, Stalled with the missing names otherwise; who is on call in each rotation and
when that next changes (the controller wakes up then)."""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta

from runbook_operator.api.escalationpolicy import EscalationPolicyStatus, OnCall
from runbook_operator.core.conditions import Outcome, Phase, apply_outcome
from runbook_operator.core.incident.policy import CompiledPolicy
from runbook_operator.core.rotation import next_change


@dataclass(frozen=True)
class Judged:
    status: EscalationPolicyStatus
    outcome: Outcome
    next_handover: datetime | None


def unreachable_levels(policy: CompiledPolicy) -> list[str]:
    """Levels that page only a rotation some of whose members have no channel: on their
    turns, nobody would be paged."""
    problems = []
    for index, level in enumerate(policy.ladder.levels):
        rotation = policy.rotations_by_level[index]
        if level.channels or rotation is None:
            continue
        silent = [m.name for m in policy.rosters[rotation].members if m.channel is None]
        if silent:
            problems.append(f"L{index + 1} pages only rotation {rotation}, and "
                            f"{', '.join(silent)} ha{'s' if len(silent) == 1 else 've'} no "
                            "channel")
    return problems


def go_duration(delay: timedelta) -> str:
    """`1h30m`, `45s`, `0s`: how delays are written in the spec."""
    seconds = int(delay.total_seconds())
    parts = [f"{value}{unit}" for value, unit in (
        (seconds // 3600, "h"), (seconds % 3600 // 60, "m"), (seconds % 60, "s")) if value]
    return "".join(parts) or "0s"


def ladder_of(policy: CompiledPolicy) -> str:
    """The ladder in one line: `0s → 30m → 1h → 2h, 2 more from L2 every 3h`."""
    ladder = policy.ladder
    text = " → ".join(go_duration(level.after) for level in ladder.levels)
    if ladder.repeats:
        text += (f", {ladder.repeats} more from L{ladder.repeat_from + 1} every "
                 f"{go_duration(ladder.period)}")
    return text


def on_call_now(policy: CompiledPolicy, now: datetime) -> list[OnCall]:
    found = []
    for name in policy.rosters:
        on_call = policy.on_call(name, now)
        if on_call is not None:
            found.append(OnCall(rotation=name, member=on_call.member.name, until=on_call.until))
    return found


def judge(policy: CompiledPolicy, old: EscalationPolicyStatus, channels: Collection[str],
          now: datetime) -> Judged:
    """The status after checking the policy against the channels that exist."""
    missing = sorted(policy.channels() - set(channels))
    unreachable = unreachable_levels(policy)
    if missing:
        outcome = Outcome(Phase.STALLED, "ChannelsNotFound",
                          f"NotificationChannels not found: {', '.join(missing)}; pages to "
                          "them fail until they exist")
    elif unreachable:
        outcome = Outcome(Phase.STALLED, "NobodyPaged", "; ".join(unreachable))
    else:
        levels = len(policy.ladder.levels)
        outcome = Outcome(Phase.READY, "ChannelsFound",
                          f"{levels} level(s), {len(policy.channels())} channel(s) found")
    changes = [next_change(roster.rotation, now) for roster in policy.rosters.values()]
    on_call = on_call_now(policy, now)
    status = old.model_copy(update={
        "observed_generation": policy.generation,
        "conditions": apply_outcome(old.conditions, outcome, now, policy.generation),
        "on_call": on_call,
        "on_call_summary": ", ".join(f"{o.member} ({o.rotation})" for o in on_call) or None,
        "ladder": ladder_of(policy),
    })
    return Judged(status, outcome, min(changes) if changes else None)


def invalid(old: EscalationPolicyStatus, message: str, generation: int | None,
            now: datetime) -> Judged:
    """The status of a policy the operator cannot read."""
    outcome = Outcome(Phase.STALLED, "InvalidSpec", message)
    status = old.model_copy(update={
        "observed_generation": generation,
        "conditions": apply_outcome(old.conditions, outcome, now, generation),
        "on_call": [],
        "on_call_summary": None,
        "ladder": None,
    })
    return Judged(status, outcome, None)
