"""The generator helpers: plain iterators of Operation that compose."""

import time

from bounds import hang_bound
from shakedown.workloads import (
    Operation,
    each,
    limit,
    mix,
    once,
    phases,
    rate_limit,
    repeat,
    sequential,
    time_limit,
)


def test_once_repeat_and_limit() -> None:
    assert list(once("read")) == [Operation("read")]
    assert list(limit(repeat("read", 1), 3)) == [Operation("read", 1)] * 3


def test_sequential_values_are_unique() -> None:
    assert [op.value for op in limit(sequential("add", 10), 3)] == [10, 11, 12]


def test_each_makes_a_fresh_operation_per_draw() -> None:
    counter = iter(range(100))
    assert [op.value for op in limit(each(lambda: Operation("w", next(counter))), 3)] == [0, 1, 2]


def test_mix_draws_from_every_generator_and_is_reproducible() -> None:
    drawn = [op.f for op in limit(mix(repeat("read"), repeat("write"), seed=7), 200)]
    assert {"read", "write"} == set(drawn)
    again = [op.f for op in limit(mix(repeat("read"), repeat("write"), seed=7), 200)]
    assert drawn == again


def test_mix_respects_weights() -> None:
    drawn = [op.f for op in limit(mix(repeat("r"), repeat("w"), weights=[1, 0], seed=1), 50)]
    assert set(drawn) == {"r"}


def test_mix_ends_when_a_chosen_generator_ends() -> None:
    assert len(list(mix(once("a"), seed=1))) == 1


def test_time_limit_stops_after_the_time_from_the_first_draw() -> None:
    started = time.monotonic()
    drawn = sum(1 for _ in rate_limit(time_limit(repeat("r"), 0.3), 100))
    elapsed = time.monotonic() - started
    assert 0.29 < elapsed < hang_bound(5.0)
    assert 10 <= drawn <= 31  # at most 100/s


def test_rate_limit_spaces_operations() -> None:
    started = time.monotonic()
    assert len(list(rate_limit(limit(repeat("r"), 11), 50))) == 11
    assert time.monotonic() - started >= 0.19


def test_phases_keep_their_generators_in_order() -> None:
    first, second = limit(repeat("a"), 1), once("b")
    assert phases(first, second).steps == (first, second)
