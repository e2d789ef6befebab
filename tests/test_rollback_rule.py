"""The rollback rule (`lifecycle.promotion.rollback_target`) on release histories built as the release commands
record them: by default, back to the most recent earlier production version that no rollback took out of
production; nothing left: refused, naming `--to`; `--to` a rolled-back version: allowed, and said."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lifecycle.promotion import RollbackRefused, release_order, rollback_target, rolled_back_versions

MODEL = "rule_model"


class History:
    """A model's release history, recorded the way `steps.training.releases.set_release_stage` records it: the
    version entering production, then the one it replaced being archived by the same command."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.production: int | None = None
        self.clock = 1_700_000_000 * 1_000_000_000  # nanoseconds; several changes may fall in one second

    def _record(self, version: int, stage: str, command: str) -> None:
        self.clock += 1_000  # one microsecond later
        second = self.clock // 1_000_000_000
        at = f"2023-11-14T22:{second // 60 % 60:02d}:{second % 60:02d}+00:00"
        self.events.append({"version": version, "stage": stage, "command": command, "at": at, "at_ns": self.clock})

    def enter(self, version: int, command: str) -> History:
        before = self.production
        self._record(version, "production", command)
        if before is not None and before != version:
            self._record(before, "archived", command)
        self.production = version
        return self

    def rollback(self, to: int | None = None) -> int:
        assert self.production is not None
        target = rollback_target(MODEL, self.events, self.production, to).version
        self.enter(target, "rollback")
        return target


def promoted(*versions: int) -> History:
    history = History()
    for version in versions:
        history.enter(version, "train" if not history.events else "promote")
    return history


def test_rolling_back_twice_goes_further_back_not_to_the_version_just_rolled_back():
    history = promoted(1, 2, 3)
    assert history.rollback() == 2
    assert history.rollback() == 1  # not 3, which the first rollback took out


def test_nothing_earlier_that_was_not_rolled_back_is_refused_with_the_fix():
    history = promoted(1, 2)
    assert history.rollback() == 1
    with pytest.raises(RollbackRefused) as refused:
        history.rollback()
    message = str(refused.value)
    assert "was itself rolled back: 2 (at " in message and "--to VERSION" in message
    assert history.production == 1  # nothing changed


def test_the_first_production_version_has_nothing_to_go_back_to():
    with pytest.raises(RollbackRefused, match="first production version on record.*--to VERSION"):
        rollback_target(MODEL, promoted(1).events, 1)


def test_to_a_rolled_back_version_is_allowed_and_says_so():
    history = promoted(1, 2)
    history.rollback()
    chosen = rollback_target(MODEL, history.events, 1, to=2)
    assert chosen.version == 2
    assert "version 2 was itself rolled back" in chosen.note and "--to names it" in chosen.note
    assert rollback_target(MODEL, promoted(1, 2).events, 2, to=1).note == ""  # 1 was replaced, not rolled back


def test_to_the_version_in_production_is_refused():
    with pytest.raises(RollbackRefused, match="already in production; nothing to do"):
        rollback_target(MODEL, promoted(1, 2).events, 2, to=2)


def test_a_rolled_back_version_promoted_again_is_still_skipped():
    history = promoted(1, 2)
    history.rollback()  # 2 out, 1 back
    history.enter(2, "promote").enter(3, "promote")  # someone re-promotes 2 deliberately, then 3 replaces it
    assert history.rollback() == 1


def test_a_production_version_without_history_goes_back_to_the_last_one_on_record():
    history = promoted(1, 2)
    assert rollback_target(MODEL, history.events, 5).version == 2  # 5 was set to production outside the commands


def test_events_in_one_second_keep_their_order_and_old_events_sort_by_second():
    history = promoted(1, 2, 3)
    history.rollback()
    shuffled = list(reversed(history.events))
    assert sorted(shuffled, key=release_order) == history.events
    old = [  # recorded before `at_ns` was kept: the same second, the entry first
        {"version": 1, "stage": "archived", "command": "promote", "at": "2023-01-01T00:00:00+00:00"},
        {"version": 2, "stage": "production", "command": "promote", "at": "2023-01-01T00:00:00+00:00"},
        {"version": 1, "stage": "production", "command": "train", "at": "2022-12-31T23:59:59+00:00"},
    ]
    ordered = sorted(old, key=release_order)
    assert [(e["version"], e["stage"]) for e in ordered] == [(1, "production"), (2, "production"), (1, "archived")]
    assert rolled_back_versions(history.events) == {3: history.events[-1]["at"]}


operations = st.lists(
    st.one_of(
        st.tuples(st.just("promote"), st.integers(1, 5)),
        st.tuples(st.just("rollback"), st.none()),
        st.tuples(st.just("rollback"), st.integers(1, 5)),
    ),
    max_size=25,
)


@given(operations)
def test_a_default_rollback_never_returns_to_a_rolled_back_version(steps):
    """Any sequence of promotions and rollbacks: a default rollback goes to a version that was in production
    before the current one and that no rollback ever took out; when it refuses, no such version exists."""
    history = promoted(1)
    for action, version in steps:
        if action == "promote":
            if version != history.production:
                history.enter(version, "promote")
            continue
        current, rolled_back = history.production, set(rolled_back_versions(history.events))
        entered = [e["version"] for e in history.events if e["stage"] == "production"]
        last_entry = max(i for i, v in enumerate(entered) if v == current)
        allowed = {v for v in entered[:last_entry] if v != current} - rolled_back
        try:
            target = history.rollback(version)
        except RollbackRefused:
            assert version == current if version is not None else not allowed
            continue
        if version is None:
            assert target in allowed and target not in rolled_back
        else:
            assert target == version
