"""Team scale: the lifecycle through a live ZenML server (its REST API) and a shared MLflow server, from two
clients that share nothing but those servers: each has its own ZenML configuration folder, its own copy of the
project and its own state folder, as two laptops or two CI runners would.

The race: in each of ten rounds both clients train the same, better configuration at the same moment. Both
candidates beat the production version of the round before and tie with each other, so without a lock shared
through the store both would promote. With it, exactly one does; the other is told that it does not beat the
version the first one promoted; MLflow's `champion` alias is on that version's twin."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import requests
import yaml
from conftest import DEMO_CONFIG, PROJECT_ROOT, free_port_block, note

pytestmark = [pytest.mark.integration, pytest.mark.team]

MODEL = "team_bike"
# Ten rounds take about four minutes of both cores: `make test-team` (and CI) runs them, and two when run on its own.
ROUNDS = int(os.environ.get("MLOPS_TEAM_RACE_ROUNDS", "2"))
COPIED = ["run.py", "lifecycle", "steps", "pipelines", "serving", "stacks", "workflows", "configs", "data"]


def iterations(round_number: int) -> int:
    """A configuration that improves every round: more boosting iterations at a low learning rate (checked by
    the first assertion of every round: the winner beat the production version of the round before)."""
    return 20 * (round_number + 1)


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    from workflows import team

    root = tmp_path_factory.mktemp("team-servers")
    started = team.up(root, zenml_port=free_port_block(), mlflow_port=free_port_block())
    try:
        yield started
    finally:
        team.down(root)


def client(root: Path, name: str, servers) -> dict[str, str]:
    """A client of its own: a copy of the project, a ZenML configuration folder and a state folder."""
    home = root / name
    project = home / "project"
    project.mkdir(parents=True)
    for entry in COPIED:
        source = PROJECT_ROOT / entry
        if source.is_dir():
            shutil.copytree(source, project / entry, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, project / entry)
    (project / ".zen").mkdir()
    own = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLOPS_", "MLFLOW_", "BENTOML_"))}
    return {
        **own,
        **servers.environment(),
        "ZENML_CONFIG_PATH": str(home / "zenml"),
        "ZENML_REPOSITORY_PATH": str(project),
        "ZENML_CUSTOM_SOURCE_ROOT": str(project),
        "ZENML_LOGGING_VERBOSITY": "WARN",
        "ZENML_ANALYTICS_OPT_IN": "false",
        "MLOPS_STATE_DIR": str(home / "state"),
        "MLOPS_REPORTS_DIR": str(home / "reports"),
        "BENTOML_HOME": str(home / "state" / "bentoml"),
        "NO_COLOR": "1",
        "PWD": str(project),
    }


def start(env: dict[str, str], *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "run.py", *args],
        cwd=env["PWD"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished(process: subprocess.Popen) -> str:
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-4000:]
    return output


def production_versions(servers, stage: str | None = "production") -> list[int]:
    """Asked of the ZenML server's REST API directly, as any other client would see it (None: every version)."""
    api, signed_in = f"{servers.zenml_url}/api/v1", servers.zenml_api()
    model = signed_in.get(f"{api}/models", params={"name": MODEL}, timeout=10).json()["items"][0]
    asked = {"model": model["id"], "size": 100, **({"stage": stage} if stage else {})}
    versions = signed_in.get(f"{api}/model_versions", params=asked, timeout=10).json()["items"]
    return sorted(int(v["body"]["number"]) for v in versions)


def champion_twin(servers) -> str:
    from mlflow import MlflowClient

    environment = servers.environment()
    with pytest.MonkeyPatch.context() as patch:  # MLflow's client reads its credentials from the environment
        for name in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
            patch.setenv(name, environment[name])
        twin = MlflowClient(servers.mlflow_url).get_model_version_by_alias(MODEL, "champion")
    return twin.tags["zenml_model_version"]


def test_two_clients_promote_at_the_same_moment_and_one_wins_each_time(servers, bike_slice, tmp_path):
    clients = [client(tmp_path, name, servers) for name in ("laptop", "ci_runner")]
    registered = subprocess.run(
        [sys.executable, "run.py", "stacks", "up", "team"],
        cwd=clients[0]["PWD"],
        env=clients[0],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]
    config = yaml.safe_load(DEMO_CONFIG.read_text())
    config["model"]["name"] = MODEL
    config["dataset"]["path"] = str(bike_slice)
    config["dataset"]["segment_columns"] = []
    config["promotion"]["gates"]["naive_baseline"]["mode"] = "dry_run"  # the first rounds' models are weak
    previous = None
    outcomes = []
    for round_number in range(ROUNDS):
        config["training"]["estimator"]["params"] = {"max_iter": iterations(round_number), "learning_rate": 0.03}
        path = tmp_path / f"round-{round_number}.yaml"
        path.write_text(yaml.safe_dump(config))
        summaries = [tmp_path / f"round-{round_number}-{n}.json" for n in range(2)]
        both = [
            start(env, "train", "--config", str(path), "--stack", "team", "--summary-json", str(summary))
            for env, summary in zip(clients, summaries, strict=True)
        ]
        outputs = [finished(process) for process in both]
        records = [json.loads(summary.read_text()) for summary in summaries]
        winners = [r for r in records if r["promoted"]]
        assert len(winners) == 1, (round_number, [r["reason"] for r in records], outputs)
        winner, loser = winners[0], next(r for r in records if not r["promoted"])
        assert winner["production_version_compared"] == previous, (round_number, winner)
        assert loser["production_version_compared"] == winner["version"], (round_number, loser)
        assert f"does not beat production version {winner['version']}" in loser["reason"], loser["reason"]
        assert production_versions(servers) == [int(winner["version"])], round_number
        assert champion_twin(servers) == str(winner["version"]), round_number
        previous = winner["version"]
        outcomes.append(f"v{winner['version']} over v{loser['version']}")
    note(f"team race: {ROUNDS} rounds, one promotion each: " + ", ".join(outcomes))

    # The release commands through the server, from the other client: back to the previous version, and the
    # history both clients wrote.
    assert ROUNDS >= 2, "the rollback needs two promoted versions"
    rolled = subprocess.run(
        [sys.executable, "run.py", "rollback", "--model-name", MODEL, "--stack", "team", "--reason", "team drill"],
        cwd=clients[1]["PWD"], env=clients[1], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert rolled.returncode == 0, rolled.stdout[-2000:] + rolled.stderr[-2000:]
    back = int(outcomes[-2].split()[0][1:])  # the winner of the round before the last
    assert production_versions(servers) == [back] and champion_twin(servers) == str(back)
    history = subprocess.run(
        [sys.executable, "run.py", "history", "--model-name", MODEL],
        cwd=clients[0]["PWD"], env=clients[0], capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert history.returncode == 0 and "team drill" in history.stdout, history.stdout[-2000:]


def test_the_team_servers_ask_for_the_generated_credentials(servers):
    """Both servers refuse a client without the team's credentials; the credentials are generated, kept 0600 in
    the team folder (and in team.env, which a shell can source), and said in full only by the `up` that made
    them."""
    import stat

    from workflows import team

    environment = servers.environment()
    assert requests.get(f"{servers.zenml_url}/api/v1/current-user", timeout=10).status_code == 401
    assert servers.zenml_api().get(f"{servers.zenml_url}/api/v1/current-user", timeout=10).status_code == 200
    experiments = f"{servers.mlflow_url}/api/2.0/mlflow/experiments/search?max_results=1"
    assert requests.get(experiments, timeout=10).status_code == 401
    credentials = (environment["MLFLOW_TRACKING_USERNAME"], environment["MLFLOW_TRACKING_PASSWORD"])
    assert requests.get(experiments, auth=credentials, timeout=10).status_code == 200
    assert requests.get(experiments, auth=(credentials[0], "wrong"), timeout=10).status_code == 401
    root = Path(servers.root)
    exported = team.environment_file(root)
    for kept in (exported, root / "zenml-credentials.json", root / "mlflow-credentials.json"):
        assert stat.S_IMODE(kept.stat().st_mode) == 0o600, kept
    sourced = subprocess.run(
        ["bash", "-c", f"source {exported} && env"], capture_output=True, text=True, check=True, env={}
    ).stdout
    for name, value in environment.items():
        assert f"{name}={value}\n" in sourced
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    first = team.describe(servers)
    assert servers.new_credentials and environment["ZENML_STORE_PASSWORD"] in first, first
    again = team.up(root)  # already running: the same servers, the passwords no longer printed
    assert again.zenml_pid == servers.zenml_pid and not again.new_credentials
    assert environment["ZENML_STORE_PASSWORD"] not in team.describe(again)
    assert environment["MLFLOW_TRACKING_PASSWORD"] not in team.describe(again)


def test_a_second_checkout_never_rewrites_the_team_servers_components(servers, tmp_path):
    """Two checkouts on one team server: the second one's `stacks up` with other values stops and names the
    difference (the first one's component stays as it was); with the team's values it changes nothing; stacks that
    keep state in a checkout (SQLite MLflow, BentoML's home) are skipped by the default set and refused by name."""

    def stacks_up(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
        command = [sys.executable, "run.py", "stacks", "up", *names]
        return subprocess.run(command, cwd=env["PWD"], env=env, capture_output=True, text=True, timeout=600)

    def component(name: str) -> dict:
        found = servers.zenml_api().get(
            f"{servers.zenml_url}/api/v1/components", params={"name": name, "hydrate": True}, timeout=10
        )
        return found.json()["items"]

    first, second = (client(tmp_path, name, servers) for name in ("checkout_a", "checkout_b"))
    registered = stacks_up(first, "team")
    assert registered.returncode == 0, registered.stdout + registered.stderr
    path_before = component("team_artifacts")[0]["metadata"]["configuration"]["path"]
    refused = stacks_up({**second, "TEAM_ARTIFACT_STORE": str(tmp_path / "elsewhere")}, "team")
    said = refused.stderr.strip()
    assert refused.returncode == 3 and len(said.splitlines()) == 1, refused.stdout + refused.stderr
    assert "team_artifacts" in said and "does not rewrite" in said and str(tmp_path / "elsewhere") in said
    assert component("team_artifacts")[0]["metadata"]["configuration"]["path"] == path_before
    again = stacks_up(second, "team")
    assert again.returncode == 0 and "no changes" in again.stdout, again.stdout + again.stderr
    default_set = stacks_up(second)
    assert default_set.returncode == 0, default_set.stdout + default_set.stderr
    assert "skipped `bentoml`, `full`, `mlflow` keep state in this checkout" in default_set.stdout
    named = stacks_up(second, "mlflow")
    assert named.returncode == 3 and "`mlflow` keeps state in this checkout" in named.stderr, named.stderr
    assert component("mlflow_tracker") == []  # no checkout's SQLite database on the team's server


def object_store_port() -> int:
    """An S3 port whose object store's seven other ports (three below it, each with its gRPC port 10000 above)
    are free too."""
    import socket

    for _ in range(50):
        s3_port = free_port_block()
        if not (s3_port - 3 > 1024 and s3_port <= 55535):  # the gRPC ports are 10000 above
            continue
        ports = [*range(s3_port - 3, s3_port + 1), *range(s3_port + 9997, s3_port + 10001)]
        with contextlib.ExitStack() as held:
            try:
                for port in ports:
                    sock = held.enter_context(socket.socket())
                    sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        return s3_port
    raise RuntimeError("no free block of ports for the object store")


def test_the_team_s3_stack_keeps_every_artifact_in_the_bucket_where_another_client_loads_it(bike_slice, tmp_path):
    """GitHub-hosted runners share no disk: with `team up --object-store` (an S3 store beside the servers) one
    client trains on the `team_s3` stack and a second one, in another folder with nothing of the first's, scores
    a batch with the version the first promoted: the model, its schema and MLflow's copy are all in the bucket."""
    from workflows import object_store, team

    root = tmp_path / "team-s3"
    servers = team.up(
        root,
        zenml_port=free_port_block(),
        mlflow_port=free_port_block(),
        object_store=team.object_store_config(object_store_port()),
    )
    try:
        exports = servers.environment()
        assert exports["TEAM_ARTIFACT_STORE"] == f"s3://{servers.bucket}/zenml" and servers.stack() == "team_s3"
        assert "stacks up team_s3" in team.describe(servers)
        trainer, scorer = (client(tmp_path, name, servers) for name in ("runner_a", "runner_b"))
        config = yaml.safe_load(DEMO_CONFIG.read_text())
        config["model"]["name"] = "team_s3_bike"
        config["dataset"]["path"] = str(bike_slice)
        config["dataset"]["segment_columns"] = []
        config["promotion"]["gates"]["naive_baseline"]["mode"] = "dry_run"
        config_path = tmp_path / "training.yaml"
        config_path.write_text(yaml.safe_dump(config))
        for env in (trainer, scorer):
            registered = subprocess.run(
                [sys.executable, "run.py", "stacks", "up", "team_s3"],
                cwd=env["PWD"], env=env, capture_output=True, text=True, timeout=600,
            )  # fmt: skip
            assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]
        finished(start(trainer, "train", "--config", str(config_path), "--stack", "team_s3"))
        batch = tmp_path / "batch.csv"
        pd.read_csv(bike_slice).tail(200).to_csv(batch, index=False)
        output = tmp_path / "runner_b" / "scored.csv"
        scored = subprocess.run(
            [sys.executable, "run.py", "score", "--input", str(batch), "--output", str(output),
             "--config", str(config_path), "--stack", "team_s3"],
            cwd=scorer["PWD"], env=scorer, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        assert scored.returncode == 0, scored.stdout[-3000:] + scored.stderr[-3000:]
        assert len(pd.read_csv(output)) == 200
        keys = object_store.s3_client(servers.s3_endpoint, object_store.credentials_in(root)).list_objects_v2(
            Bucket=servers.bucket, MaxKeys=1000
        )
        names = [entry["Key"] for entry in keys.get("Contents", [])]
        assert any(name.startswith("zenml/") for name in names), names[:20]
        assert any(name.startswith("mlflow/") for name in names), names[:20]  # MLflow's artifacts too
        api, signed_in = f"{servers.zenml_url}/api/v1", servers.zenml_api()
        artifacts = signed_in.get(f"{api}/artifact_versions", params={"size": 100}, timeout=10).json()["items"]
        uris = [item["body"]["uri"] for item in artifacts]
        assert uris and all(uri.startswith(f"s3://{servers.bucket}/zenml/") for uri in uris), uris[:5]
        note(f"team_s3: {len(names)} objects in s3://{servers.bucket}; {len(uris)} ZenML artifacts, all in it")
    finally:
        stopped = team.down(root)
        assert any("object store" in what for what in stopped), stopped


@pytest.mark.follow
def test_a_follower_keeps_its_front_door_on_production_through_another_clients_releases(servers, tmp_path):
    """`serve --follow` on a serving machine (a client of its own) with the team's store as the source of truth:
    a second client promotes (a new server) and rolls back (the warm standby), each with `--wait-served`; the
    follower's front door answers each new production version, a client holding it loses no request; while the
    store is down, the door keeps answering and the follower says so once. Needs the versions the race above
    trained. About 2 minutes (the follower's first deploy, a promote, a rollback, a store restart)."""
    import threading
    import time

    from serving.client import post_records, read_request_rows
    from workflows import team

    before = production_versions(servers)
    production, newer = before[0], max(production_versions(servers, stage=None))  # the newest: not production
    assert len(before) == 1 and newer != production, "the race above ends with a rollback to an earlier version"
    machine, releaser = (client(tmp_path, name, servers) for name in ("serving_machine", "release_machine"))
    deployment = yaml.safe_load((PROJECT_ROOT / "configs" / "deployment.yaml").read_text())
    door_port = free_port_block()
    deployment.update(port=free_port_block(), drain_seconds=1)
    deployment["front_door"]["port"] = door_port
    deployment["follow"]["poll_seconds"] = 1
    settings = tmp_path / "deployment.yaml"
    settings.write_text(yaml.safe_dump(deployment))
    log = tmp_path / "follower.log"
    with open(log, "w") as output:
        follower = subprocess.Popen(
            [sys.executable, "run.py", "serve", "--follow", "--model-name", MODEL, "--stack", "team",
             "--deployment-config", str(settings)],
            cwd=machine["PWD"], env=machine, stdout=output, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    answers: list[tuple[float, str]] = []
    failures: list[str] = []
    stop = threading.Event()
    door = f"http://127.0.0.1:{door_port}/predict"

    def hold_the_front_door(records: list) -> None:
        while not stop.is_set():
            try:
                body = post_records(door, {"records": records}, timeout=30)
                answers.append((time.perf_counter(), str(body["model_version"])))
            except Exception as exc:  # a lost request
                failures.append(f"{time.strftime('%X')} {exc!r}")
            time.sleep(0.05)

    def released(*args: str) -> tuple[float, float]:
        """Run a release command on the other client; (seconds the command took, from its start to the door
        answering the new version)."""
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "run.py", *args, "--model-name", MODEL, "--stack", "team", "--wait-served", "300"],
            cwd=releaser["PWD"], env=releaser, capture_output=True, text=True, timeout=900,
        )  # fmt: skip
        took = time.perf_counter() - started
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:] + log.read_text()[-3000:]
        assert " answers at http://127.0.0.1:" in done.stdout, done.stdout
        target = args[-1]
        wait_until_answered = time.monotonic() + 30
        while not any(t > started and v == target for t, v in answers) and time.monotonic() < wait_until_answered:
            time.sleep(0.05)
        first = next(t for t, v in answers if t > started and v == target)
        return took, first - started

    client_thread = None
    try:
        deadline = time.monotonic() + 600
        while f"version {production} of `{MODEL}` answers at" not in log.read_text():
            assert follower.poll() is None and time.monotonic() < deadline, log.read_text()[-4000:]
            time.sleep(0.5)
        example = Path(machine["MLOPS_STATE_DIR"]) / "requests" / f"{MODEL}.json"
        client_thread = threading.Thread(target=hold_the_front_door, args=(read_request_rows(str(example))[:3],))
        client_thread.start()
        promote = released("promote", "--force", "--reason", "follower drill", "--version", str(newer))
        rollback = released("rollback", "--reason", "follower drill", "--to", str(production))
        assert production_versions(servers) == [production]
        # The store goes away for a while: what serves keeps answering; the follower says so once, then resumes.
        answered = len(answers)
        team.down(Path(servers.root))
        deadline = time.monotonic() + 60
        while "the ZenML store does not answer" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(3)
        assert len(answers) > answered + 10 and {v for _, v in answers[answered:]} == {str(production)}
        team.up(Path(servers.root), zenml_port=int(servers.zenml_url.rsplit(":", 1)[1]),
                mlflow_port=int(servers.mlflow_url.rsplit(":", 1)[1]))  # fmt: skip
        deadline = time.monotonic() + 120
        while "the ZenML store answers again" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        said = log.read_text()
        assert said.count("the ZenML store does not answer") == 1, said
    finally:
        stop.set()
        if client_thread is not None:
            client_thread.join(timeout=60)
        follower.terminate()
        follower.wait(timeout=60)
        stopped = subprocess.run(
            [sys.executable, "run.py", "undeploy", "--model-name", MODEL, "--stack", "team"],
            cwd=machine["PWD"], env=machine, capture_output=True, text=True, timeout=600,
        )  # fmt: skip
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert failures == [], failures[:5]
    assert [v for _, v in answers][-1] == str(production) and len(answers) > 50
    assert "its warm standby" in said, said  # the rollback went back to the standby the promotion left
    note(
        f"serve --follow: promote (new server) answered through the follower's door {promote[1]:.1f} s after the "
        f"command started (the command, waiting for the report, took {promote[0]:.1f} s); rollback (warm standby) "
        f"{rollback[1]:.1f} s ({rollback[0]:.1f} s); {len(answers)} requests through the door, 0 failed; the "
        "store down and back: the door kept answering"
    )
