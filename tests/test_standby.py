"""The warm-standby record (serving/standby.py): which replaced production servers wait, for how long, how many,
and which are due to be stopped. Plain files under the state folder; the servers themselves are exercised on
every backend in tests/test_deployment.py and through the CLI in tests/test_release.py."""

from __future__ import annotations

import time

import pytest

from lifecycle.config import DeploymentConfig, StandbyConfig, load_deployment_config
from lifecycle.errors import ConfigError
from serving import standby
from serving.backends.base import Endpoint

MODEL = "standby_bike"


@pytest.fixture(autouse=True)
def own_state(tmp_path, monkeypatch):
    monkeypatch.setenv("MLOPS_STATE_DIR", str(tmp_path))


def server(version: str, name: str | None = None) -> Endpoint:
    return Endpoint(
        "zenml", name or f"{MODEL}-v{version}-abc12{version}", MODEL, version, f"http://127.0.0.1:81{version}0",
        "/predict", "/health", running=True, pid=None,
    )  # fmt: skip


def test_a_replaced_server_waits_until_it_expires_then_is_due():
    config = StandbyConfig(count=1, seconds=60)
    assert standby.keep(MODEL, server("1"), config, serving_version="2", now=1000.0) == []
    waiting = standby.standbys(MODEL)
    assert [(s.model_version, s.since, s.expires) for s in waiting] == [("1", 1000.0, 1060.0)]
    assert standby.names([MODEL]) == {server("1").name}
    assert standby.due(MODEL, config, "2", now=1059.0) == []  # still wanted
    assert [e.name for e in standby.due(MODEL, config, "2", now=1061.0)] == [server("1").name]
    assert standby.standbys(MODEL) == []  # taken out of the record: the caller stops it


def test_beyond_count_the_oldest_goes_and_one_of_the_serving_version_is_due_at_once():
    config = StandbyConfig(count=2, seconds=600)
    assert standby.keep(MODEL, server("1"), config, "2", now=0.0) == []
    assert standby.keep(MODEL, server("2"), config, "3", now=10.0) == []
    gone = standby.keep(MODEL, server("3"), config, "4", now=20.0)
    assert [e.model_version for e in gone] == ["1"]  # the oldest of three, with count 2
    assert [s.model_version for s in standby.standbys(MODEL)] == ["3", "2"]  # newest first
    # production went back to version 2 some other way (a new server): its standby is of no use any more
    assert [e.model_version for e in standby.due(MODEL, config, "2", now=30.0)] == ["2"]


def test_off_means_nothing_waits():
    for off in (StandbyConfig(count=0, seconds=600), StandbyConfig(count=1, seconds=0)):
        assert not off.enabled
        assert [e.model_version for e in standby.keep(MODEL, server("1"), off, "2", now=0.0)] == ["1"]
        assert standby.standbys(MODEL) == []


def test_take_finds_a_usable_unexpired_standby_of_the_version_and_put_back_restores_it():
    config, now = StandbyConfig(count=2, seconds=600), time.time()  # `take` asks the clock what has expired
    standby.keep(MODEL, server("1"), config, "3", now=now)
    standby.keep(MODEL, server("2"), config, "3", now=now + 1)
    assert standby.take(MODEL, "1", usable=lambda e: False) is None  # not healthy: left where it is
    assert standby.take(MODEL, "4", usable=lambda e: True) is None
    taken = standby.take(MODEL, "1", usable=lambda e: True)
    assert taken is not None and taken.endpoint == server("1")
    assert [s.model_version for s in standby.standbys(MODEL)] == ["2"]
    standby.put_back(MODEL, taken)
    assert sorted(s.model_version for s in standby.standbys(MODEL)) == ["1", "2"]
    standby.forget(MODEL, [server("2").name])
    assert [s.model_version for s in standby.standbys(MODEL)] == ["1"]
    standby.forget(MODEL)
    assert standby.standbys(MODEL) == []


def test_the_shipped_settings_keep_one_standby_and_unknown_keys_are_refused(tmp_path):
    shipped = load_deployment_config()
    assert shipped.standby.enabled and shipped.standby.count == 1 and shipped.follow.poll_seconds > 0
    assert DeploymentConfig().standby == shipped.standby  # the code's defaults are the shipped file's
    wrong = tmp_path / "deployment.yaml"
    wrong.write_text("standby:\n  minutes: 5\n")
    with pytest.raises(ConfigError, match="minutes"):
        load_deployment_config(wrong)
