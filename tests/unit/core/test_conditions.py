from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.core.conditions import (
    Outcome,
    Phase,
    apply_outcome,
    condition_status,
    set_condition,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)


def test_transition_time_kept_while_status_unchanged() -> None:
    first = set_condition([], "Ready", "False", "A", "m", T0, 1)
    second = set_condition(first, "Ready", "False", "B", "other", T1, 2)
    assert second[0].last_transition_time == T0
    assert (second[0].reason, second[0].message, second[0].observed_generation) == ("B", "other", 2)


def test_transition_time_moves_when_status_changes() -> None:
    first = set_condition([], "Ready", "False", "A", "m", T0, 1)
    assert set_condition(first, "Ready", "True", "A", "m", T1, 1)[0].last_transition_time == T1


def test_position_of_existing_condition_is_kept() -> None:
    conditions = apply_outcome([], Outcome(Phase.READY, "Ok", ""), T0, 1)
    again = apply_outcome(conditions, Outcome(Phase.STALLED, "Bad", "why"), T1, 1)
    assert [c.type for c in again] == ["Ready", "Reconciling", "Stalled"]


@given(st.sampled_from(list(Phase)), st.sampled_from(list(Phase)))
def test_exactly_one_kstatus_condition_is_true(first: Phase, second: Phase) -> None:
    conditions = apply_outcome([], Outcome(first, "R1", "m1"), T0, 1)
    conditions = apply_outcome(conditions, Outcome(second, "R2", "m2"), T1, 2)
    true = [c.type for c in conditions if c.status == "True"]
    assert true == [second.value]
    assert len(conditions) == 3
    assert all(c.observed_generation == 2 for c in conditions)


def test_stalled_carries_reason_and_message_on_ready_and_stalled() -> None:
    conditions = apply_outcome([], Outcome(Phase.STALLED, "SecretNotFound", "no s"), T0, 3)
    by_type = {c.type: c for c in conditions}
    assert by_type["Ready"].reason == by_type["Stalled"].reason == "SecretNotFound"
    assert by_type["Stalled"].message == "no s"
    assert by_type["Reconciling"].status == "False"
    assert condition_status(conditions, "Ready") == "False"
    assert condition_status(conditions, "Missing") is None


CONDITION_FIELDS = st.tuples(st.sampled_from(["Ready", "Reconciling", "Stalled"]),
                             st.sampled_from(["True", "False"]), st.sampled_from(["A", "B"]),
                             st.sampled_from(["", "m"]), st.sampled_from([None, 1, 2]))


@given(st.lists(CONDITION_FIELDS, max_size=4), CONDITION_FIELDS)
def test_setting_a_condition_changes_that_condition_only(
        existing: list[tuple], wanted: tuple) -> None:
    """Whether the condition changes or is set exactly as it was (then nothing is rebuilt),
    the result has it as asked, the others untouched and in place, and a new list."""
    conditions: list = []
    for type_, status, reason, message, generation in existing:
        conditions = set_condition(conditions, type_, status, reason, message, T0, generation)
    type_, status, reason, message, generation = wanted
    before = list(conditions)
    result = set_condition(conditions, type_, status, reason, message, T1, generation)
    previous = next((c for c in before if c.type == type_), None)
    (updated,) = [c for c in result if c.type == type_]
    assert (updated.status, updated.reason, updated.message, updated.observed_generation) == (
        status, reason, message, generation)
    assert updated.last_transition_time == (
        previous.last_transition_time if previous and previous.status == status else T1)
    assert [c for c in result if c.type != type_] == [c for c in before if c.type != type_]
    assert [c.type for c in result][:len(before)] == [c.type for c in before]
    assert result is not conditions and conditions == before
