"""What `promote` and `rollback` print about the server afterwards: a redeploy that replaced the server says so,
one that found production's version serving already (started by another command) does not claim a replacement."""

from __future__ import annotations

from lifecycle.hints import run_hint
from workflows.release import ReleaseOutcome
from workflows.reporting import release_summary


def outcome(redeployed: dict | None) -> ReleaseOutcome:
    return ReleaseOutcome(
        "bikes", 1, 2, redeployed=redeployed, answering_version="1", seconds_to_answer=3.25, notes=["a note"]
    )


def test_a_replaced_server_is_reported_as_replaced():
    text = release_summary(outcome({"predict_url": "http://127.0.0.1:8000/predict", "model_version": "1"}))
    assert "version 1 rolled back to production; version 2 archived" in text
    assert "server replaced without downtime: http://127.0.0.1:8000/predict answers with version 1, 3.2 s" in text


def test_a_server_that_was_serving_already_is_not_reported_as_replaced():
    redeployed = {"predict_url": "http://127.0.0.1:8000/predict", "model_version": "1", "already_serving": True}
    text = release_summary(outcome(redeployed))
    assert "replaced" not in text and "server already serving: http://127.0.0.1:8000/predict" in text


def test_no_server_says_how_to_start_one():
    assert f"`{run_hint('deploy')}` starts a server" in release_summary(outcome(None))
