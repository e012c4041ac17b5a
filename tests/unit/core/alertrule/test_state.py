"""core.alertrule.state: the instance state machine, per-series evaluation, the summary."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from runbook_operator.api.alertrule import AlertInstance
from runbook_operator.core.alertrule.state import (
    RESOLVED_RETENTION,
    Observation,
    QueryError,
    RuleTiming,
    compare,
    evaluate_rule,
    format_value,
    lasted,
    next_instance,
    summarize,
)
from runbook_operator.core.delivery import fingerprint

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
HANDLINGS = ["Normal", "Alerting", "KeepLast", "Error"]

HOLD = Observation(value=10.0, active=True)
CLEAR = Observation(value=1.0)
NODATA = Observation()
ERROR = Observation(error="bad_data: parse error")


def run(observations, rule, start=T0, step=MIN, prev=None):
    """Feed observations one per step; return the instance after each."""
    out = []
    for n, obs in enumerate(observations):
        prev = next_instance(prev, obs, rule, start + n * step)
        out.append(prev)
    return out


def states(instances):
    return [i.state for i in instances]


def restart(instance: AlertInstance) -> AlertInstance:
    """What the controller reads back from status after a restart."""
    return AlertInstance.model_validate(instance.to_wire())


# --- compare ---------------------------------------------------------------------------------


@pytest.mark.parametrize("op, value, threshold, expected", [
    ("gt", 2, 1, True), ("gt", 1, 1, False), ("ge", 1, 1, True), ("ge", 0, 1, False),
    ("lt", 0, 1, True), ("lt", 1, 1, False), ("le", 1, 1, True), ("le", 2, 1, False),
    ("eq", 1, 1, True), ("eq", 2, 1, False), ("ne", 2, 1, True), ("ne", 1, 1, False),
    ("gt", math.inf, 1, True), ("lt", -math.inf, 1, True),
])
def test_compare(op, value, threshold, expected) -> None:
    assert compare(op, value, threshold) is expected


@pytest.mark.parametrize("op", ["gt", "ge", "lt", "le", "eq"])
@given(threshold=st.floats(allow_nan=True))
def test_nan_satisfies_no_comparison_but_ne_as_in_promql(op, threshold) -> None:
    """PromQL compares as IEEE 754 does: `NaN != 10` keeps the series (a Prometheus rule
    fires), every other comparison with NaN drops it."""
    assert not compare(op, math.nan, threshold)
    assert not compare(op, 1.0, math.nan)
    assert compare("ne", math.nan, threshold) and compare("ne", 1.0, math.nan)


def test_an_observation_without_a_value_cannot_be_active() -> None:
    for bad in ({}, {"value": 1.0, "error": "x"}):
        with pytest.raises(ValueError):
            Observation(active=True, **bad)


def test_a_nan_series_fires_a_ne_rule_as_prometheus_does() -> None:
    seq = [evaluate_rule([], [({"pod": "a"}, math.nan)], RuleTiming(), T0,
                         holds=lambda v: compare("ne", v, 10.0))]
    seq.append(evaluate_rule(seq[0], [({"pod": "a"}, 10.0)], RuleTiming(), T0 + MIN,
                             holds=lambda v: compare("ne", v, 10.0)))
    assert [i[0].state for i in seq] == ["Firing", "Normal"]
    assert seq[0][0].last_value == seq[0][0].active_value == "NaN"


@pytest.mark.parametrize("value, text", [
    (None, None), (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (5.0, "5"),
    (0.25, "0.25"), (-3.0, "-3"), (1e20, "1e+20"),
])
def test_format_value_is_prometheus_like_and_json_safe(value, text) -> None:
    assert format_value(value) == text


# --- the state machine: examples -----------------------------------------------------------


def test_pending_then_firing_after_for_then_resolved() -> None:
    rule = RuleTiming(for_=3 * MIN)
    seq = run([HOLD] * 5 + [CLEAR], rule)
    assert states(seq) == ["Pending", "Pending", "Pending", "Firing", "Firing", "Normal"]
    assert seq[0].pending_since == seq[3].pending_since == T0 == seq[0].active_since
    assert seq[3].firing_since == T0 + 3 * MIN
    last = seq[-1]
    assert last.resolved_at == T0 + 5 * MIN
    assert (last.active_since, last.pending_since, last.firing_since) == (None, None, None)


def test_for_zero_fires_at_once() -> None:
    first = next_instance(None, HOLD, RuleTiming(), T0)
    assert first.state == "Firing" and first.firing_since == first.pending_since == T0


def test_pending_that_clears_returns_to_normal_without_a_resolution() -> None:
    seq = run([HOLD, HOLD, CLEAR], RuleTiming(for_=5 * MIN))
    assert states(seq) == ["Pending", "Pending", "Normal"]
    assert seq[-1].resolved_at is None and seq[-1].pending_since is None


def test_pending_restarts_its_clock_after_a_gap() -> None:
    seq = run([HOLD, HOLD, CLEAR, HOLD, HOLD, HOLD], RuleTiming(for_=2 * MIN))
    assert states(seq) == ["Pending", "Pending", "Normal", "Pending", "Pending", "Firing"]
    assert seq[3].pending_since == T0 + 3 * MIN


def test_keep_firing_for_recovers_then_resolves() -> None:
    rule = RuleTiming(keep_firing_for=2 * MIN)
    seq = run([HOLD, CLEAR, CLEAR, CLEAR], rule)
    assert states(seq) == ["Firing", "Recovering", "Recovering", "Normal"]
    assert seq[1].recovering_since == T0 + MIN and seq[1].firing_since == T0
    assert seq[3].resolved_at == T0 + 3 * MIN


def test_flap_during_keep_firing_for_returns_to_firing_with_the_same_start() -> None:
    rule = RuleTiming(keep_firing_for=5 * MIN)
    seq = run([HOLD, CLEAR, HOLD, CLEAR], rule)
    assert states(seq) == ["Firing", "Recovering", "Firing", "Recovering"]
    assert {i.firing_since for i in seq} == {T0}
    assert seq[2].recovering_since is None and seq[3].recovering_since == T0 + 3 * MIN


def test_a_nan_value_that_does_not_satisfy_the_condition_clears_it() -> None:
    seq = run([HOLD, Observation(value=math.nan)], RuleTiming())
    assert states(seq) == ["Firing", "Normal"] and seq[1].last_value == "NaN"


@pytest.mark.parametrize("handling, expected", [
    ("Normal", ["Firing", "NoData"]),
    ("Alerting", ["Firing", "Firing"]),
    ("KeepLast", ["Firing", "Firing"]),
    ("Error", ["Firing", "Error"]),
])
def test_no_data_handling(handling, expected) -> None:
    seq = run([HOLD, NODATA], RuleTiming(no_data_state=handling))
    assert states(seq) == expected
    if handling == "Error":
        assert seq[1].last_error == "no data" and seq[1].active_since == T0 + MIN


@pytest.mark.parametrize("handling, expected", [
    ("Normal", ["Firing", "Normal"]),
    ("Alerting", ["Firing", "Firing"]),
    ("KeepLast", ["Firing", "Firing"]),
    ("Error", ["Firing", "Error"]),
])
def test_error_handling(handling, expected) -> None:
    seq = run([HOLD, ERROR], RuleTiming(error_state=handling))
    assert states(seq) == expected
    assert seq[1].last_error == ERROR.error


def test_keep_last_freezes_state_times_and_value() -> None:
    rule = RuleTiming(for_=2 * MIN, no_data_state="KeepLast", error_state="KeepLast")
    seq = run([HOLD, NODATA, ERROR, NODATA], rule)
    assert states(seq) == ["Pending"] * 4
    assert {i.pending_since for i in seq} == {T0} and {i.last_value for i in seq} == {"10"}
    assert seq[-1].last_evaluation == T0 + 3 * MIN


def test_keep_last_without_history_is_normal_handling() -> None:
    rule = RuleTiming(no_data_state="KeepLast", error_state="KeepLast")
    assert next_instance(None, NODATA, rule, T0).state == "NoData"
    assert next_instance(None, ERROR, rule, T0).state == "Normal"


def test_alerting_handling_still_waits_for() -> None:
    seq = run([NODATA] * 3, RuleTiming(for_=2 * MIN, no_data_state="Alerting"))
    assert states(seq) == ["Pending", "Pending", "Firing"]


def test_error_state_keeps_its_start_and_leaves_to_a_fresh_episode() -> None:
    seq = run([ERROR, ERROR, HOLD, CLEAR], RuleTiming(for_=MIN))
    assert states(seq) == ["Error", "Error", "Pending", "Normal"]
    assert seq[1].active_since == T0 and seq[2].pending_since == T0 + 2 * MIN


def test_resolving_an_error_records_resolved_at() -> None:
    seq = run([ERROR, CLEAR], RuleTiming())
    assert seq[1].state == "Normal" and seq[1].resolved_at == T0 + MIN


def test_no_data_with_normal_handling_recovers_through_keep_firing_for() -> None:
    seq = run([HOLD, NODATA, NODATA, NODATA], RuleTiming(keep_firing_for=2 * MIN))
    assert states(seq) == ["Firing", "Recovering", "Recovering", "NoData"]


def test_restart_keeps_pending_clock_and_firing_start() -> None:
    rule = RuleTiming(for_=3 * MIN, keep_firing_for=MIN)
    first = run([HOLD, HOLD], rule)
    resumed = run([HOLD, HOLD, CLEAR], rule, start=T0 + 2 * MIN, prev=restart(first[-1]))
    assert states(resumed) == ["Pending", "Firing", "Recovering"]
    assert resumed[1].pending_since == T0 and resumed[1].firing_since == T0 + 3 * MIN


def test_a_problem_keeps_its_start_and_last_firing_value_after_it_resolves() -> None:
    rule = RuleTiming(for_=MIN, keep_firing_for=MIN)
    seq = run([HOLD, Observation(value=12.0, active=True), CLEAR, CLEAR, HOLD], rule)
    assert states(seq) == ["Pending", "Firing", "Recovering", "Normal", "Pending"]
    assert seq[0].active_value is None  # pending: nothing was sent with a value
    assert [i.started_at for i in seq[1:4]] == [T0 + MIN] * 3
    assert [i.active_value for i in seq[1:]] == ["12", "12", "12", "12"]
    assert seq[2].last_value == "1"  # what it recovered with is the last value, not the text's
    errors = run([ERROR, CLEAR], rule, start=T0 + 10 * MIN, prev=seq[-1])
    assert errors[0].started_at == T0 + 10 * MIN and errors[0].active_value is None
    assert errors[1].started_at == T0 + 10 * MIN  # kept after the error resolved


@pytest.mark.parametrize("elapsed, interval, duration, expected", [
    (timedelta(seconds=4.2), timedelta(seconds=5), timedelta(seconds=5), True),
    (timedelta(seconds=7.4), timedelta(seconds=5), timedelta(seconds=10), False),
    (timedelta(seconds=7.6), timedelta(seconds=5), timedelta(seconds=10), True),
    (timedelta(seconds=5), timedelta(seconds=5), timedelta(seconds=7), False),
    (timedelta(seconds=9.6), timedelta(seconds=5), timedelta(seconds=7), True),
    (timedelta(seconds=4.2), timedelta(0), timedelta(seconds=5), False),
    (timedelta(0), timedelta(seconds=5), timedelta(0), True),
])
def test_lasted_counts_whole_evaluation_intervals(elapsed, interval, duration,
                                                   expected) -> None:
    assert lasted(T0, T0 + elapsed, duration, interval) is expected


def test_a_for_equal_to_the_interval_fires_at_the_next_evaluation_despite_lag() -> None:
    """The first evaluation ran 0.9 s late, the next one 0.1 s late: 4.2 s apart on the
    wall clock, one interval on the schedule. Measured on the wall clock, `for: 5s` would
    have fired one interval late."""
    rule = RuleTiming(for_=timedelta(seconds=5), interval=timedelta(seconds=5))
    pending = next_instance(None, HOLD, rule, T0 + timedelta(seconds=0.9))
    firing = next_instance(pending, HOLD, rule, T0 + timedelta(seconds=5.1))
    assert (pending.state, firing.state) == ("Pending", "Firing")


@settings(max_examples=200, deadline=None)
@given(intervals=st.integers(0, 5), seconds=st.integers(5, 120),
       lags=st.lists(st.floats(0, 0.49), min_size=14, max_size=14))
def test_for_and_keep_firing_for_take_exactly_their_evaluations_under_lag(
        intervals: int, seconds: int, lags: list[float]) -> None:
    """Evaluations on a drift-free schedule, each late by less than half an interval: an
    instance fires at the evaluation `for` after the one it became pending at, and resolves
    at the evaluation `keepFiringFor` after the condition cleared, as on Prometheus' fixed
    evaluation grid."""
    interval = timedelta(seconds=seconds)
    rule = RuleTiming(for_=intervals * interval, keep_firing_for=intervals * interval,
                      interval=interval)
    held = intervals + 1
    observations = [HOLD] * held + [CLEAR] * (len(lags) - held)
    prev, seen = None, []
    for k, (obs, lag) in enumerate(zip(observations, lags, strict=True)):
        prev = next_instance(prev, obs, rule, T0 + k * interval + lag * interval)
        seen.append(prev.state)
    firing = seen.index("Firing") if "Firing" in seen else None
    assert firing == intervals
    resolved = seen.index("Normal")
    assert resolved == held + intervals


# --- the state machine: properties over random sequences -------------------------------------

observations = st.sampled_from([HOLD, CLEAR, NODATA, ERROR, Observation(value=math.nan)])
durations = st.integers(0, 6).map(lambda n: n * MIN)
handling = st.sampled_from(HANDLINGS)
rules = st.builds(RuleTiming, for_=durations, keep_firing_for=durations,
                  no_data_state=handling, error_state=handling)
steps = st.lists(st.tuples(observations, st.integers(1, 240), st.booleans()), max_size=40)


def holds_under(obs: Observation, rule: RuleTiming, prev_state: str | None) -> bool | None:
    """Whether an observation counts as the condition holding (None: state frozen)."""
    if obs.error is None and obs.value is not None:
        return obs.active
    setting = rule.error_state if obs.error is not None else rule.no_data_state
    if setting == "KeepLast" and prev_state is not None:
        return None
    return setting == "Alerting"


@settings(max_examples=300, deadline=None)
@given(rule=rules, sequence=steps)
def test_state_machine_invariants(rule: RuleTiming, sequence) -> None:
    prev: AlertInstance | None = None
    now = T0
    held_since: datetime | None = None  # start of the current unbroken run of "holds"
    clear_since: datetime | None = None  # start of the current unbroken run of "clear"
    for obs, seconds, restarted in sequence:
        now += timedelta(seconds=seconds)
        if prev is not None and restarted:
            prev = restart(prev)
        holds = holds_under(obs, rule, prev.state if prev else None)
        frozen = holds is None
        settings_error = (obs.error is not None and rule.error_state == "Error") or (
            obs.error is None and obs.value is None and rule.no_data_state == "Error")
        inst = next_instance(prev, obs, rule, now)
        if frozen:
            assert inst.model_dump(exclude={"last_evaluation", "last_error"}) == \
                prev.model_dump(exclude={"last_evaluation", "last_error"})
            prev = inst
            continue
        if settings_error:
            assert inst.state == "Error"
            held_since = clear_since = None
        elif holds:
            held_since = held_since or now
            clear_since = None
        else:
            clear_since = clear_since or now
            held_since = None
        # Never Firing before the condition held continuously for `for`.
        if inst.state == "Firing" and (prev is None or prev.state != "Recovering") and \
                (prev is None or prev.state != "Firing"):
            assert held_since is not None and now - held_since >= rule.for_
            assert inst.firing_since == now
        if inst.state == "Pending":
            assert held_since is not None and inst.pending_since is not None
            assert now - inst.pending_since < rule.for_
        # A problem stops only after keepFiringFor of continuous "clear".
        if prev is not None and prev.state in ("Firing", "Recovering") and \
                inst.state in ("Normal", "NoData"):
            assert clear_since is not None and now - clear_since >= rule.keep_firing_for
            assert inst.resolved_at == now
        if inst.state == "Recovering":
            assert inst.recovering_since is not None and inst.firing_since is not None
            assert now - inst.recovering_since < rule.keep_firing_for
        # Times are monotone within an episode: a start is never moved once set.
        active = ("Pending", "Firing", "Recovering")
        same_episode = prev is not None and (
            (prev.state in active and inst.state in active)
            or prev.state == inst.state == "Error")
        if same_episode:
            for field in ("pending_since", "firing_since", "active_since"):
                before, after = getattr(prev, field), getattr(inst, field)
                if before is not None and after is not None:
                    assert after == before
        # Quiet states carry no active times; active states carry theirs.
        if inst.state in ("Normal", "NoData"):
            assert inst.active_since is inst.pending_since is inst.firing_since is None
        if inst.state in ("Pending", "Firing", "Recovering"):
            assert inst.active_since == inst.pending_since is not None
        if inst.state in ("Firing", "Recovering"):
            assert inst.firing_since is not None and inst.firing_since >= inst.pending_since
        # NaN never fires by itself.
        if obs.value is not None and math.isnan(obs.value) and (prev is None or prev.state
                                                                  in ("Normal", "NoData")):
            assert inst.state not in ("Pending", "Firing")
        prev = inst


@settings(max_examples=100, deadline=None)
@given(rule=rules, sequence=st.lists(observations, max_size=30), cut=st.integers(0, 30))
def test_restart_is_invisible(rule: RuleTiming, sequence, cut: int) -> None:
    straight = run(sequence, rule)
    if not 0 < cut < len(sequence):
        return
    first = run(sequence[:cut], rule)
    second = run(sequence[cut:], rule, start=T0 + cut * MIN, prev=restart(first[-1]))
    assert [i.model_dump() for i in first + second] == [i.model_dump() for i in straight]


# --- evaluate_rule ---------------------------------------------------------------------------

IDENTITY = ("AlertRule", "shop", "high-5xx")


def above(threshold: float):
    return lambda v: compare("gt", v, threshold)


DEFAULT_RULE = RuleTiming()


def evaluate(prev, samples, rule=DEFAULT_RULE, now=T0, **kw):
    return evaluate_rule(prev, samples, rule, now, holds=above(5), identity=IDENTITY, **kw)


def test_one_instance_per_series_with_stable_fingerprints() -> None:
    samples = [({"__name__": "x", "pod": "a"}, 10.0), ({"pod": "b"}, 1.0)]
    out = evaluate([], samples)
    by_pod = {i.labels["pod"]: i for i in out}
    assert by_pod["a"].state == "Firing" and by_pod["b"].state == "Normal"
    assert by_pod["a"].labels == {"pod": "a"}  # __name__ dropped, as Prometheus does
    assert by_pod["a"].fingerprint == fingerprint(*IDENTITY, labels={"pod": "a"})
    assert [i.state for i in out] == ["Firing", "Normal"]  # worst first
    again = evaluate(out, list(reversed(samples)), now=T0 + MIN)
    assert {i.fingerprint for i in again} == {i.fingerprint for i in out}


def test_fingerprints_differ_between_rules() -> None:
    a = evaluate_rule([], [({"pod": "a"}, 1.0)], RuleTiming(), T0, holds=above(5),
                      identity=("AlertRule", "ns", "one"))
    b = evaluate_rule([], [({"pod": "a"}, 1.0)], RuleTiming(), T0, holds=above(5),
                      identity=("AlertRule", "ns", "two"))
    assert a[0].fingerprint != b[0].fingerprint


def test_duplicate_labelsets_are_an_error_as_in_prometheus() -> None:
    out = evaluate([], [({"__name__": "a", "pod": "x"}, 1.0), ({"__name__": "b", "pod": "x"}, 2.0)])
    assert [i.state for i in out] == ["Error"] and "same labelset" in out[0].last_error


def test_a_vanished_series_resolves_and_is_dropped_after_retention() -> None:
    firing = evaluate([], [({"pod": "a"}, 10.0), ({"pod": "b"}, 1.0)])
    later = evaluate(firing, [({"pod": "b"}, 1.0)], now=T0 + MIN)
    gone = next(i for i in later if i.labels == {"pod": "a"})
    assert gone.state == "Normal" and gone.resolved_at == T0 + MIN
    dropped = evaluate(later, [({"pod": "b"}, 1.0)], now=T0 + MIN + RESOLVED_RETENTION)
    assert [i.labels for i in dropped] == [{"pod": "b"}]


def test_a_vanished_series_honours_keep_firing_for() -> None:
    rule = RuleTiming(keep_firing_for=2 * MIN)
    firing = evaluate([], [({"pod": "a"}, 10.0), ({"pod": "b"}, 1.0)], rule)
    later = evaluate(firing, [({"pod": "b"}, 1.0)], rule, now=T0 + MIN)
    assert later[0].labels == {"pod": "a"} and later[0].state == "Recovering"


def test_a_vanished_normal_series_is_dropped_at_once() -> None:
    out = evaluate([], [({"pod": "a"}, 1.0), ({"pod": "b"}, 1.0)])
    assert [i.labels for i in evaluate(out, [({"pod": "b"}, 1.0)], now=T0 + MIN)] == [
        {"pod": "b"}]


@pytest.mark.parametrize("setting, expected", [
    ("Normal", "NoData"), ("Alerting", "Firing"), ("KeepLast", "Firing"), ("Error", "Error")])
def test_empty_result_is_no_data_for_every_instance(setting, expected) -> None:
    rule = RuleTiming(no_data_state=setting)
    firing = evaluate([], [({"pod": "a"}, 10.0), ({"pod": "b"}, 10.0)], rule)
    assert [i.state for i in evaluate(firing, [], rule, now=T0 + MIN)] == [expected] * 2


@pytest.mark.parametrize("setting, expected", [
    ("Normal", "Normal"), ("Alerting", "Firing"), ("KeepLast", "Normal"), ("Error", "Error")])
def test_query_error_without_instances_uses_one_rule_level_instance(setting, expected) -> None:
    out = evaluate([], QueryError("timeout"), RuleTiming(error_state=setting))
    assert len(out) == 1 and out[0].labels == {} and out[0].state == expected
    assert out[0].fingerprint == fingerprint(*IDENTITY, labels={})
    assert out[0].last_error == "timeout"


def test_no_data_without_instances_is_reported() -> None:
    assert [i.state for i in evaluate([], [])] == ["NoData"]


def test_rule_level_instance_goes_away_when_series_return() -> None:
    errored = evaluate([], QueryError("timeout"))
    back = evaluate(errored, [({"pod": "a"}, 1.0)], now=T0 + MIN)
    resolved = next(i for i in back if i.labels == {})
    assert resolved.state == "Normal" and resolved.resolved_at == T0 + MIN
    later = evaluate(back, [({"pod": "a"}, 1.0)], now=T0 + MIN + RESOLVED_RETENTION)
    assert [i.labels for i in later] == [{"pod": "a"}]


@given(values=st.lists(st.floats(allow_nan=True), min_size=0, max_size=120))
def test_instances_are_capped_worst_first(values) -> None:
    samples = [({"i": str(n)}, v) for n, v in enumerate(values)]
    out = evaluate([], samples, limit=50)
    assert len(out) == min(len(values), 50) or (not values and len(out) == 1)
    firing = sum(1 for v in values if v > 5)
    assert sum(1 for i in out if i.state == "Firing") == min(firing, 50)
    ranks = [i.state != "Firing" for i in out]
    assert ranks == sorted(ranks)


def test_summary_reports_the_worst_instance() -> None:
    rule = RuleTiming(for_=MIN)
    out = evaluate([], [({"pod": "a"}, 10.0), ({"pod": "b"}, 1.0)], rule)
    out = evaluate(out, [({"pod": "a"}, 10.0), ({"pod": "b"}, 1.0)], rule, now=T0 + MIN)
    summary = summarize(out)
    assert (summary.state, summary.active_since, summary.last_value, summary.firing) == (
        "Firing", T0, "10", 1)
    assert summarize([]).state == "Normal"
