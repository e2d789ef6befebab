"""Release commands as a user runs them on the default stack: a staging candidate leaves production alone,
`promote` moves production and the server follows, `rollback` brings the previous version back while requests keep
succeeding, `history` shows all of it; bad input changes nothing and names the fix."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time

import pandas as pd
import pytest
import yaml
from conftest import DEMO_CONFIG, free_port_block, note, run_cli, wait_until

from serving import front_door, standby
from serving.contract import json_records

pytestmark = [pytest.mark.integration, pytest.mark.e2e]
MODEL = "released_bike"


def stages(client) -> dict[int, str]:
    return {v.number: str(v.stage) for v in client.list_model_versions(MODEL, size=50).items}


def one_line_error(run) -> str:
    assert run.returncode == 2, run.stdout[-2000:] + run.stderr[-2000:]
    errors = [line for line in run.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Fix:" in errors[0] or "nothing to do" in errors[0], run.stderr
    return errors[0]


@pytest.fixture(scope="module")
def configs(bike_slice, tmp_path_factory):
    """The first two months of the slice (version 1) and all four (the better candidate)."""
    folder = tmp_path_factory.mktemp("release")
    table = pd.read_csv(bike_slice)
    early = folder / "early.csv"
    table[pd.to_datetime(table["dteday"]) < pd.to_datetime(table["dteday"]).min() + pd.Timedelta(days=60)].to_csv(
        early, index=False
    )
    paths = {}
    for name, data in (("early", early), ("all", bike_slice)):
        config = yaml.safe_load(DEMO_CONFIG.read_text())
        config["dataset"]["path"], config["model"]["name"] = str(data), MODEL
        paths[name] = folder / f"{name}.yaml"
        paths[name].write_text(yaml.safe_dump(config))
    return paths


def test_release_flow_staging_promote_rollback_history(zenml_client, configs):
    from serving.backends.zenml import ZenMLBackend
    from serving.rollout import live_endpoint, undeploy
    from serving.stack_backend import active_backend

    # Nothing yet: each command says what is missing, and how to fix it.
    assert "has no versions" in one_line_error(run_cli("history", "--model-name", MODEL))
    assert "nothing to roll back" in one_line_error(run_cli("rollback", "--model-name", MODEL))

    first = run_cli("train", "--config", str(configs["early"]))
    assert first.returncode == 0, first.stderr[-3000:]
    assert stages(zenml_client) == {1: "production"}
    assert "no earlier one" in one_line_error(run_cli("rollback", "--model-name", MODEL))
    assert "no version of `released_bike` is in staging" in one_line_error(run_cli("promote", "--model-name", MODEL))
    assert "has no version 9 (its versions: 1)" in one_line_error(
        run_cli("promote", "--model-name", MODEL, "--version", "9")
    )
    assert "--force needs --reason" in run_cli("promote", "--model-name", MODEL, "--version", "1", "--force").stderr
    assert stages(zenml_client) == {1: "production"}

    deployed = run_cli("deploy", "--model-name", MODEL, "--port", str(free_port_block()))
    assert deployed.returncode == 0, deployed.stderr[-3000:]
    try:
        summary_md, summary_json = configs["all"].with_suffix(".md"), configs["all"].with_suffix(".json")
        candidate = run_cli(
            "train", "--config", str(configs["all"]), "--stage", "staging", "--require-promotion",
            "--summary-md", str(summary_md), "--summary-json", str(summary_json),
        )  # fmt: skip
        assert candidate.returncode == 0, candidate.stderr[-3000:]
        assert "PROMOTED to staging" in candidate.stdout, candidate.stdout
        record = json.loads(summary_json.read_text())
        assert record["promoted"] and record["stage"] == "staging" and record["production_version_now"] == "1"
        assert record["metrics"]["rmse"]["production"] is not None and len(record["data"]["sha256"]) == 64
        assert [gate["name"] for gate in record["gates"]] == ["naive_baseline", "segments", "minimum_metric"]
        markdown = summary_md.read_text()
        assert markdown.startswith("### `released_bike` version 2: **promoted to staging**")
        assert "| rmse (decides) |" in markdown and "| naive_baseline | enabled | passed |" in markdown
        assert stages(zenml_client) == {1: "production", 2: "staging"}  # production untouched

        with_door = front_door.nginx_binary() is not None
        if with_door:  # the candidate as a canary first: the promotion ends it
            canary = run_cli("deploy", "--model-name", MODEL, "--canary", "2", "--weight", "20")
            assert canary.returncode == 0, canary.stderr[-3000:]
            assert "version 2 as canary" in canary.stdout and "20 % of the requests" in canary.stdout, canary.stdout
            status = run_cli("status", "--model-name", MODEL).stdout
            assert "canary: version 2" in status and ": 80 %" in status, status

        promoted = run_cli("promote", "--model-name", MODEL)
        assert promoted.returncode == 0, promoted.stderr[-3000:]
        assert "version 2 promoted to production; version 1 archived" in promoted.stdout, promoted.stdout
        if with_door:
            assert "the canary (version 2) ended" in promoted.stdout, promoted.stdout
            assert front_door.current(MODEL).route("canary") is None
            # version 2 answers; version 1's server waits as a warm standby (configs/deployment.yaml), no traffic
            running = [e for e in active_backend().endpoints(MODEL) if e.running]
            assert sorted((e.role, e.model_version) for e in running) == [("production", "1"), ("production", "2")]
            assert [s.model_version for s in standby.standbys(MODEL)] == ["1"]
            # (a rollback settles trials through the same code, `workflows.release._follow`)
        assert re.search(r"answers with version 2, [\d.]+ s after the command started", promoted.stdout)
        assert stages(zenml_client) == {1: "archived", 2: "production"}

        backend = active_backend()
        assert isinstance(backend, ZenMLBackend)
        version = zenml_client.get_model_version(MODEL, 2)
        records = json_records(
            version.get_artifact("test_set").load().head(3), version.get_artifact("feature_schema").load()
        )
        answers, failures, stop = [], [], threading.Event()
        door = front_door.current(MODEL)  # the address the first deploy printed, kept through the promotion
        assert (door is not None) == (front_door.nginx_binary() is not None)
        assert door is None or (door.model_version == "2" and door.url in deployed.stdout)
        door_answers: list[str] = []

        def poll(through_the_door: bool) -> None:
            while not stop.is_set():
                try:
                    endpoint = live_endpoint(backend, MODEL)
                    if through_the_door:
                        endpoint = dataclasses.replace(endpoint, url=door.url)
                    _, body = backend.predict(endpoint, records, timeout=30)
                    (door_answers if through_the_door else answers).append(str(body["model_version"]))
                except Exception as exc:  # a lost request
                    failures.append(repr(exc))
                time.sleep(0.05)

        pollers = [threading.Thread(target=poll, args=(False,))]
        pollers += [threading.Thread(target=poll, args=(True,))] if door else []
        for poller in pollers:
            poller.start()
        try:
            wait_until(lambda: len(answers) >= 3, 60, "answers from version 2")
            rolled = run_cli("rollback", "--model-name", MODEL, "--reason", "complaints from the ops team")
            after = len(answers)
            wait_until(lambda: len(answers) >= after + 3, 60, "answers after the rollback")
        finally:
            stop.set()
            for poller in pollers:
                poller.join(timeout=60)
        assert rolled.returncode == 0, rolled.stderr[-3000:]
        assert "version 1 rolled back to production; version 2 archived" in rolled.stdout, rolled.stdout
        seconds = float(re.search(r"answers with version 1, ([\d.]+) s after the command started", rolled.stdout)[1])
        assert failures == [] and answers[0] == "2" and answers[-1] == "1" and len(answers) > 10
        if door:
            assert door_answers[-1] == "1" and len(door_answers) > 10
            assert front_door.current(MODEL).url == door.url
            # the warm standby answered: no server started, and version 2 waits as the standby now
            assert "answers again from its warm standby" in rolled.stdout, rolled.stdout
            assert [s.model_version for s in standby.standbys(MODEL)] == ["2"]
        assert stages(zenml_client) == {1: "production", 2: "archived"}
    finally:
        undeploy(active_backend(), MODEL)

    shown = run_cli("history", "--model-name", MODEL)
    assert shown.returncode == 0, shown.stderr[-3000:]
    lines = [line.split() for line in shown.stdout.splitlines()[2:]]
    assert [(line[1], line[2], line[3]) for line in lines] == [
        ("1", "production", "train"),
        ("2", "staging", "train"),
        ("2", "production", "promote"),
        ("1", "archived", "promote"),
        ("1", "production", "rollback"),
        ("2", "archived", "rollback"),
    ], shown.stdout
    assert "rollback from version 2: complaints from the ops team" in shown.stdout

    # CI's exit codes: 4 = not promoted with --require-promotion (the same data again ties production),
    # 3 = infrastructure (a stack that is not registered), 2 = bad input (above).
    again = run_cli("train", "--config", str(configs["early"]), "--require-promotion")
    assert again.returncode == 4 and "NOT promoted" in again.stdout, again.stdout[-2000:] + again.stderr[-2000:]
    assert run_cli("train", "--config", str(configs["early"]), "--stack", "no_such_stack").returncode == 3
    assert stages(zenml_client) == {1: "production", 2: "archived", 3: "None"}

    # Every version's model card, as `python run.py card --version N` builds it: its stage and release history.
    from lifecycle.model_card import render_markdown
    from workflows.model_card import card_for

    for number, stage in {1: "production", 2: "archived", 3: "none (not promoted)"}.items():
        card = render_markdown(card_for(MODEL, number))
        assert card.startswith(f"# Model card: {MODEL} version {number}\n") and f"Stage: **{stage}**" in card
        assert ("rollback from version 2: complaints from the ops team" in card) == (number == 1), card
        assert ("replaced in production by version 1" in card) == (number == 2), card

    # Rolling back again would return to version 2, which a rollback took out: refused, naming --to.
    refused = one_line_error(run_cli("rollback", "--model-name", MODEL))
    assert "was itself rolled back: 2 (at " in refused and "--to VERSION" in refused, refused
    assert stages(zenml_client) == {1: "production", 2: "archived", 3: "None"}
    named = run_cli("rollback", "--model-name", MODEL, "--to", "2", "--reason", "fixed upstream")
    assert named.returncode == 0, named.stderr[-3000:]
    assert "version 2 rolled back to production; version 1 archived" in named.stdout, named.stdout
    assert "version 2 was itself rolled back (taken out of production by `rollback` at " in named.stdout
    assert stages(zenml_client) == {1: "archived", 2: "production", 3: "None"}
    shown = run_cli("history", "--model-name", MODEL).stdout
    assert "rollback from version 1: fixed upstream (version 2 was itself rolled back" in shown, shown
    note(
        f"rollback: {seconds:.2f} s from the command to version 1 answering (its warm standby); "
        f"{len(answers)} requests, 0 lost"
        + (f"; {len(door_answers)} through the front door {door.url}, 0 lost" if door else "")
    )
