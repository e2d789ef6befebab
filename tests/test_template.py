"""The repository as a Copier template (copier.yml): `zenml init --template` with the defaults gives the demo
project, `copier copy` with answers for an unseen CSV gives a project whose `make run` step trains and serves that
model and whose fast tests pass, a wrong answer is refused at generation with `train`'s message, and `copier
update` brings a template change into a generated project without losing the user's edit."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import PROJECT_ROOT, free_port_block, make_churn_table, note

pytestmark = [
    pytest.mark.integration,
    pytest.mark.e2e,
    pytest.mark.skipif(
        not (PROJECT_ROOT / "copier.yml").is_file(),
        reason="a project generated from the template is not a template itself (copier.yml stays with the template)",
    ),
]
BIN = Path(sys.executable).parent


def sh(*args: str, cwd: Path, env: dict | None = None, timeout: float = 900) -> subprocess.CompletedProcess:
    done = subprocess.run(
        list(args), cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env or os.environ.copy()
    )
    return done


def ok(done: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert done.returncode == 0, f"{done.args}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def tracked_files(root: Path) -> set[str]:
    listed = ok(sh("git", "ls-files", "--cached", "--others", "--exclude-standard", cwd=root)).stdout.split("\n")
    return {name for name in listed if name and (root / name).is_file()}


def commit(repo: Path, message: str) -> None:
    ok(sh("git", "add", "-A", cwd=repo))
    ok(sh("git", "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-q", "-m", message, cwd=repo))


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """This repository's files as they are now, in a git repository of their own tagged v1 (Copier generates from
    git, and `copier update` moves between tags)."""
    repo = tmp_path_factory.mktemp("template") / "mlops-lifecycle"
    for name in tracked_files(PROJECT_ROOT):
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(PROJECT_ROOT / name, repo / name)
    ok(sh("git", "init", "-q", cwd=repo))
    commit(repo, "template v1")
    ok(sh("git", "tag", "v1", cwd=repo))
    return repo


def copier(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return sh(str(BIN / "copier"), *args, cwd=cwd)


def project_env(project: Path) -> dict[str, str]:
    """The generated project's own ZenML store (beside it), repository and state folder (as on a machine of its
    own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZENML_", "MLOPS_", "BENTOML_HOME", "PYTEST_"))}
    env.update(
        ZENML_CONFIG_PATH=str(project.parent / f"{project.name}-zenml-config"),
        ZENML_REPOSITORY_PATH=str(project),
        ZENML_ANALYTICS_OPT_IN="false",
        ZENML_DISABLE_INTERACTIVE_INPUT="true",
        ZENML_LOGGING_VERBOSITY="ERROR",
        BENTOML_HOME=str(project / ".state" / "bentoml"),
        NO_COLOR="1",
    )
    return env


def test_zenml_init_with_the_template_defaults_gives_the_demo_project(template, tmp_path):
    project = tmp_path / "demo"
    project.mkdir()
    env = project_env(project)
    made = ok(
        sh(str(BIN / "zenml"), "init", "--template", str(template), "--template-with-defaults", "--test",
           cwd=project, env=env)
    )  # fmt: skip
    assert "checked" in made.stdout + made.stderr and (project / ".zen").is_dir()
    answers = yaml.safe_load((project / ".copier-answers.yml").read_text())
    assert answers["model_name"] == "bike_demand" and answers["_commit"] == "v1"
    # Every file is the template's own, byte for byte, but the ones rendered from the answers: the generated
    # project's tests are this repository's (which this suite runs).
    sources = tracked_files(template)
    rendered = {name for name in sources if name.endswith(".jinja")}
    expected = (sources - rendered - {"copier.yml"}) | {"configs/demo.yaml", ".copier-answers.yml"}
    generated = {str(p.relative_to(project)) for p in project.rglob("*") if p.is_file() and ".zen" not in p.parts}
    assert generated == expected
    same = sources - rendered - {"copier.yml"}
    assert {n for n in same if (project / n).read_bytes() != (template / n).read_bytes()} == {
        "README.md",
        "configs/training.yaml",
        "pyproject.toml",  # the package is named after the project: its folder, `demo`
    }
    assert 'name = "demo"' in (project / "pyproject.toml").read_text()
    assert (project / "configs" / "demo.yaml").read_bytes() == (template / "configs" / "training.yaml").read_bytes()
    readme = (project / "README.md").read_text()
    assert readme.startswith("# demo\n\nThe model `bike_demand` predicts `cnt`")
    # The project's own page, short, linking to the guide's pages (copied into docs/) rather than pasting them.
    assert "## Keeping up with the template" in readme and "## Quickstart" not in readme
    guide = re.findall(r"\]\((docs/[\w.-]+\.md)\)", readme)
    assert len(guide) > 10 and all((project / page).is_file() for page in guide), guide
    assert {f"docs/{page.name}" for page in (template / "docs").glob("*.md")} == set(guide)
    demo = yaml.safe_load((template / "configs" / "training.yaml").read_text())
    rendered = yaml.safe_load((project / "configs" / "training.yaml").read_text())
    for section in ("split", "training", "evaluation", "promotion"):
        assert rendered[section] == demo[section], section
    for key in ("path", "target", "task", "drop_columns", "numeric_columns", "segment_columns"):
        assert rendered["dataset"][key] == demo["dataset"][key], key
    assert [c if isinstance(c, str) else c["column"] for c in rendered["dataset"]["time_columns"]] == ["dteday", "hr"]


def test_a_target_that_is_not_a_column_is_refused_at_generation(template, tmp_path):
    table = tmp_path / "customers.csv"
    make_churn_table().to_csv(table, index=False)
    refused = copier(
        "copy", "--trust", "--defaults", "--data", f"dataset_path={table}", "--data", "target=churn",
        str(template), str(tmp_path / "wrong"), cwd=tmp_path,
    )  # fmt: skip
    assert refused.returncode != 0
    assert "column `churn` (target) missing from" in refused.stderr and "churned" in refused.stderr, refused.stderr
    assert not (tmp_path / "wrong").exists()  # nothing half-made is left


def test_a_project_for_an_unseen_csv_trains_serves_passes_its_fast_tests_and_takes_updates(template, tmp_path):
    table = tmp_path / "exports" / "customers.csv"
    table.parent.mkdir()
    make_churn_table().to_csv(table, index=False)
    project = tmp_path / "churn-watch"
    ok(
        copier(
            "copy", "--trust", "--defaults", "--vcs-ref", "v1",
            "--data", "project_name=churn-watch", "--data", "model_name=churn",
            "--data", f"dataset_path={table}", "--data", "target=churned",
            "--data", "drop_columns=[customer_id]", "--data", "segment_columns=[plan]",
            "--data", "stacks=[mlflow]", "--data", "benchmarks_and_comparison=false",
            str(template), str(project), cwd=tmp_path,
        )
    )  # fmt: skip
    assert (project / "data" / "customers.csv").read_bytes() == table.read_bytes()
    assert not (project / "benchmarks").exists() and not (project / "stacks" / "bentoml.yaml").exists()
    assert (project / "stacks" / "mlflow.yaml").is_file() and (project / "stacks" / "local.yaml").is_file()
    readme = (project / "README.md").read_text()
    assert readme.startswith("# churn-watch\n\nThe model `churn` predicts `churned` from\n`data/customers.csv`")
    config = yaml.safe_load((project / "configs" / "training.yaml").read_text())
    assert config["model"]["name"] == "churn" and config["dataset"]["path"] == "data/customers.csv"
    # Named after the user's project everywhere, with nothing of the demo's: the package, the workflows' defaults,
    # the replay's model line, the config's comments.
    assert 'name = "churn-watch"' in (project / "pyproject.toml").read_text()
    assert "default: churn\n" in (project / ".github" / "workflows" / "release.yml").read_text()
    assert "vars.MODEL_NAME || 'churn' }}" in (project / ".github" / "workflows" / "monitor.yml").read_text()
    assert "model_name: churn_replay " in (project / "configs" / "monitoring.yaml").read_text()
    for name in ("configs/training.yaml", "configs/monitoring.yaml", ".github/workflows/release.yml"):
        assert not re.search(r"bike|\bcnt\b|\(demo\)", (project / name).read_text(), flags=re.I), name
    assert config["promotion"]["metric"] is None  # picked by the inferred task

    # `make run` after its set-up: train, promote and serve, on ports of this test's own.
    env = project_env(project)
    ok(sh(str(BIN / "zenml"), "init", cwd=project, env=env))
    deployment = project / "configs" / "deployment.yaml"
    settings = yaml.safe_load(deployment.read_text())
    settings["port"], settings["front_door"]["port"] = free_port_block(), free_port_block()
    deployment.write_text(yaml.safe_dump(settings))
    python = str(BIN / "python")
    try:
        ran = ok(sh(python, "run.py", cwd=project, env=env))
        assert "model `churn` version 1" in ran.stdout and "PROMOTED to production" in ran.stdout, ran.stdout
        predicted = ok(sh(python, "run.py", "predict", "--input", ".state/requests/churn.json", cwd=project, env=env))
        assert "`churn` version 1 served by zenml" in predicted.stderr, predicted.stderr
        assert predicted.stdout.count("\t") == 3  # three rows: a label and a probability each
    finally:
        sh(python, "run.py", "undeploy", cwd=project, env=env)

    # Its `make test`: its own model on its own data (tests/test_project.py) and the tests that read its own files,
    # as the project's Makefile lists them (run here with this environment's Python rather than a new .venv).
    makefile = (project / "Makefile").read_text()
    listed = re.search(r"^PROJECT_TESTS := (.*?[^\\])$", makefile, flags=re.M | re.S)
    assert listed and "tests/test_project.py" in listed.group(1)
    own_files = listed.group(1).replace("\\\n", " ").split()
    fast = sh(python, "-m", "pytest", "-m", "not integration", "-q", "-p", "no:cacheprovider", "-x", *own_files,
              cwd=project, env={**env, "PYTHONDONTWRITEBYTECODE": "1"})  # fmt: skip
    assert fast.returncode == 0, fast.stdout[-4000:]
    note(f"generated project (unseen CSV): {fast.stdout.strip().splitlines()[-1]}")

    # A user's edit, committed; then the template changes (a new line in a file the user did not touch) and is
    # tagged v2; `copier update` brings the change and keeps the edit.
    ok(sh("git", "init", "-q", cwd=project, env=env))
    commit(project, "generated")
    edited = (project / "configs" / "training.yaml").read_text().replace("seed: 42", "seed: 7")
    (project / "configs" / "training.yaml").write_text(edited)
    commit(project, "our seed")
    monitoring = template / "configs" / "monitoring.yaml"
    monitoring.write_text(monitoring.read_text() + "# a note from template v2\n")
    commit(template, "template v2")
    ok(sh("git", "tag", "v2", cwd=template))
    ok(copier("update", "--trust", "--defaults", "--vcs-ref", "v2", cwd=project))
    assert (project / "configs" / "monitoring.yaml").read_text().endswith("# a note from template v2\n")
    assert "seed: 7" in (project / "configs" / "training.yaml").read_text()
    assert yaml.safe_load((project / ".copier-answers.yml").read_text())["_commit"] == "v2"


def test_a_data_file_name_with_yaml_characters_is_written_quoted(template, tmp_path):
    """`: ` and ` #` in a file name would end a YAML value or start a comment if written unquoted."""
    table = tmp_path / "churn: export #2.csv"
    make_churn_table().to_csv(table, index=False)
    ok(
        copier(
            "copy", "--trust", "--defaults", "--data", f"dataset_path={table}", "--data", "target=churned",
            str(template), str(tmp_path / "quoted"), cwd=tmp_path,
        )
    )  # fmt: skip
    config = yaml.safe_load((tmp_path / "quoted" / "configs" / "training.yaml").read_text())
    assert Path(config["dataset"]["path"]).name == "churn: export #2.csv"
    assert (tmp_path / "quoted" / config["dataset"]["path"]).is_file() or Path(config["dataset"]["path"]).is_file()
