"""One rule for model names (lifecycle.names.check_model_name), applied where a name comes in: a config file,
`--model-name` on every command that takes it, and the template's question for a generated project."""

from __future__ import annotations

import click
import pytest
import yaml
from click.testing import CliRunner
from conftest import DEMO_CONFIG, PROJECT_ROOT

from lifecycle.config import apply_overrides, load_config, model_name_from_path
from lifecycle.errors import ConfigError
from lifecycle.names import MODEL_NAME_RULE, check_model_name

GOOD = ["bike_demand", "Churn-2024.v2", "a", "7", "a" * 64, "x.y-z_1"]
BAD = [
    "",
    ".",
    "..",
    "../etc",
    "a/b",
    "_hidden",
    "-h",
    "a" * 65,
    "x; id",
    'x"; touch INJECTED; echo "',
    "$(id)",
    "name with spaces",
    "bike_demand\n",
    "naïve",
]


@pytest.mark.parametrize("name", GOOD)
def test_a_good_name_passes_unchanged(name):
    assert check_model_name(name) == name


@pytest.mark.parametrize("name", BAD)
def test_a_bad_name_is_refused_with_the_rule_and_a_name_that_follows_it(name):
    with pytest.raises(ConfigError) as refused:
        check_model_name(name)
    message = str(refused.value)
    assert repr(name) in message and MODEL_NAME_RULE in message and "Fix:" in message
    suggestion = message.rsplit("e.g. `", 1)[1].rstrip("`.")
    assert check_model_name(suggestion) == suggestion


def test_a_config_file_with_a_bad_model_name_is_refused_where_it_says_so(tmp_path):
    path = tmp_path / "training.yaml"
    raw = yaml.safe_load(DEMO_CONFIG.read_text())
    raw["model"]["name"] = "../../outside"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as refused:
        load_config(path)
    assert "`model.name`" in str(refused.value) and MODEL_NAME_RULE in str(refused.value)
    with pytest.raises(ConfigError, match="x; id"):
        apply_overrides(load_config(DEMO_CONFIG), model_name="x; id")


def test_a_name_derived_from_a_long_file_name_follows_the_rule():
    name = model_name_from_path("/data/" + "Customer Churn Export " * 6 + ".csv")
    assert check_model_name(name) == name and len(name) == 64


def commands_with_model_name(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from commands_with_model_name(command, (*prefix, name))
        elif any("--model-name" in param.opts for param in command.params):
            yield (*prefix, name)


def test_every_model_name_option_refuses_a_bad_name_before_the_command_runs():
    from cli import cli

    commands = list(commands_with_model_name(cli))
    assert {("train",), ("promote",), ("monitor",), ("deploy",), ("rollback",)} <= set(commands), commands
    for words in commands:
        result = CliRunner().invoke(cli, [*words, "--model-name", "x; id"])
        assert result.exit_code == 2, (words, result.output)
        assert "'x; id' is not allowed" in result.output and MODEL_NAME_RULE in result.output, (words, result.output)
        assert "Invalid value for '--model-name'" in result.output, (words, result.output)


@pytest.mark.skipif(not (PROJECT_ROOT / "copier.yml").is_file(), reason="a generated project has no copier.yml")
def test_the_templates_question_applies_the_same_rule():
    import jinja2

    copier = yaml.safe_load((PROJECT_ROOT / "copier.yml").read_text())
    environment = jinja2.Environment(
        extensions=["jinja2_ansible_filters.AnsibleCoreFiltersExtension"], **copier["_envops"]
    )
    validator = environment.from_string(copier["model_name"]["validator"])
    # The default: the demo's name for the demo data, else the project's name made a model name (else the file's).
    default = environment.from_string(copier["model_name"]["default"])
    demo = default.render(dataset_path="data/bike_sharing_hourly.csv.gz", project_name="x")
    made = {
        (project, data): default.render(dataset_path=data, project_name=project)
        for project, data in [
            ("Seattle Weather!", "/d/w.csv"),
            ("churn-watch", "/d/c.csv"),
            ("Ünïcode ✓", "/d/Sales 2024.csv.gz"),
            ("x" * 80, "/d/x.csv"),
        ]
    }
    assert demo == "bike_demand"
    assert made[("Seattle Weather!", "/d/w.csv")] == "seattle_weather"
    assert made[("churn-watch", "/d/c.csv")] == "churn_watch"
    assert made[("Ünïcode ✓", "/d/Sales 2024.csv.gz")] == "n_code"
    assert made[("x" * 80, "/d/x.csv")] == "x" * 64
    for name in [demo, *made.values()]:
        assert validator.render(model_name=name) == "", name
    for name in GOOD:
        assert validator.render(model_name=name) == "", name
    for name in BAD:
        if name.endswith("\n"):
            continue  # a question's answer is one line
        refused = validator.render(model_name=name)
        assert MODEL_NAME_RULE in refused and "Fix:" in refused, name
