"""The project's surroundings: `dashboard`, `team`, `compare`, `stacks up|list|down|compile`, `spark up|status|down`,
`cluster up|status|down`.

Workflows are imported inside the commands: importing ZenML takes seconds, and `--help` needs none of it."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import click

from cli.options import (
    chosen_model,
    config_option,
    model_name_option,
    remote_config_option,
    reports_errors,
    spark_config_option,
    summary_options,
    write_summaries,
)
from lifecycle.config import (
    DEFAULT_COMPARISON_CONFIG,
    DEFAULT_MONITORING_CONFIG,
    apply_overrides,
    load_comparison_config,
    load_config,
    load_monitoring_config,
)
from lifecycle.hints import run_hint, tool_hint
from lifecycle.validation import validate_file


@click.command()
@config_option("Training config: names the model whose runs are shown.")
@model_name_option()
@click.option("--port", type=int, default=8237, show_default=True, help="Port of ZenML's local server (127.0.0.1).")
@click.option("--stop", is_flag=True, help="Stop the dashboard's ZenML server.")
@reports_errors
def dashboard(config_path: str, model_name: str | None, port: int, stop: bool) -> None:
    """Open ZenML's dashboard on this project: start a ZenML server on this project's store (sign-in on, with a
    generated password; first-run form answered) and print the addresses of the model's latest training run,
    model card, data-quality and drift reports."""
    from workflows import dashboard as zenml_dashboard
    from workflows.report_files import reports_folder

    if stop:
        click.echo(zenml_dashboard.stop())
        return
    name = chosen_model(config_path, model_name).name
    reports = reports_folder(load_monitoring_config(str(DEFAULT_MONITORING_CONFIG)))
    started = zenml_dashboard.start(name, reports, port)
    click.echo(zenml_dashboard.describe(started))
    if zenml_dashboard.open_runs_page(started):
        click.echo("(opened the project's runs in your browser)")


@click.command()
@click.argument("action", type=click.Choice(["up", "down"]))
@click.option("--zenml-port", type=int, default=8238, show_default=True, help="Port of the ZenML server (up).")
@click.option("--mlflow-port", type=int, default=5000, show_default=True, help="Port of the MLflow server (up).")
@click.option(
    "--python",
    "python",
    default="",
    help="The environment the servers run in (up), e.g. .venv-cluster/bin/python: a ZenML server that is to "
    "register the cluster stacks needs their integrations (`make cluster-env`).",
)
@click.option(
    "--object-store",
    is_flag=True,
    help="Also start an S3 object store (SeaweedFS, the `remote` extra) and keep every artifact in its bucket: "
    "the `team_s3` stack, for clients that share no disk (up).",
)
@click.option("--s3-port", type=int, default=9446, show_default=True, help="S3 port of the object store (up).")
@reports_errors
def team(action: str, zenml_port: int, mlflow_port: int, python: str, object_store: bool, s3_port: int) -> None:
    """Start (up) or stop (down) a ZenML server and an MLflow server on 127.0.0.1, to try the shared set-up
    a team uses (their data stays in .state/team/); `up` prints what a client exports to use them."""
    from workflows import team as team_servers

    if action == "down":
        stopped = team_servers.down()
        click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))
        return
    store = team_servers.object_store_config(s3_port) if object_store else None
    started = team_servers.up(zenml_port=zenml_port, mlflow_port=mlflow_port, python=python, object_store=store)
    click.echo(team_servers.describe(started))


@click.command()
@click.argument("action", type=click.Choice(["up", "status", "down"]))
@click.option("--workers", type=int, help="Workers to start (up; default: cluster.workers in the Spark config).")
@spark_config_option()
@reports_errors
def spark(action: str, workers: int | None, spark_path: str) -> None:
    """Start (up), show (status) or stop (down) the project's Spark standalone cluster: a master and workers on
    loopback addresses, started from the pyspark package; `score --engine spark` scores on it."""
    from lifecycle.config import load_spark_config
    from workflows import spark_cluster

    if action == "down":
        stopped = spark_cluster.down()
        click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))
        return
    if action == "status":
        known = spark_cluster.running()
        click.echo(spark_cluster.describe(known) if known else "no Spark cluster is running (`python run.py spark up`)")
        return
    cluster = load_spark_config(spark_path).cluster
    if workers is not None:
        cluster = type(cluster).model_validate({**cluster.model_dump(), "workers": workers})
    click.echo(spark_cluster.describe(spark_cluster.up(cluster)))


@click.command()
@click.argument("action", type=click.Choice(["up", "status", "down"]))
@remote_config_option()
@reports_errors
def cluster(action: str, remote_path: str) -> None:
    """Start (up), show (status) or stop (down) the remote set-up on 127.0.0.1: a Docker engine of the project's
    own, a registry, an S3 object store and the team's ZenML and MLflow servers (configs/remote.yaml; data in
    .state/remote/). `down` stops every process it started and leaves nothing running."""
    from lifecycle.config import load_remote_config
    from workflows import remote_cluster, remote_images

    config = load_remote_config(remote_path)
    if action == "down":
        stopped = remote_cluster.down(config)
        click.echo("stopped: " + (", ".join(stopped) or "nothing was running"))
        return
    if action == "status":
        known = remote_cluster.running(config)
        click.echo(
            remote_cluster.describe(known) if known else "the remote set-up is not running (`python run.py cluster up`)"
        )
        return
    started = time.monotonic()
    known = remote_cluster.up(config, config_path=remote_path, prepare=remote_images.prepare)
    click.echo(remote_cluster.describe(known))
    click.echo(f"up in {time.monotonic() - started:.0f} s")


def comparison_progress(names: list[str]) -> Callable[[str, str], None]:
    """`[mm:ss] [███░░░] k/n stacks done · stack: stage` on stderr; a stack counts as done once its measuring
    process has ended (the comparison says `finished ...`), never while it still runs."""
    started = time.monotonic()
    finished: set[str] = set()

    def progress(where: str, what: str) -> None:
        elapsed = int(time.monotonic() - started)
        if where in names and what.startswith("finished"):
            finished.add(where)
        click.secho(progress_line(elapsed, len(finished), len(names), where, what), fg="cyan", err=True)

    return progress


def progress_line(elapsed: int, done: int, total: int, where: str, what: str) -> str:
    """One progress line of the comparison: elapsed time, the stacks done so far, what runs now."""
    from workflows.console import progress_bar

    return f"[{elapsed // 60:02d}:{elapsed % 60:02d}] {progress_bar(done, total)} stacks done · {where}: {what}"


@click.command()
@click.option("--stacks", "stack_names", help="Comma-separated stack files to compare (default: the config's).")
@click.option("--quick", is_flag=True, help="Small data and few requests (the `quick` size of the config).")
@config_option("Training config: the dataset, model and seed every stack trains with.")
@click.option("--data", help="CSV or Parquet file to compare on (replaces the config's dataset).")
@click.option("--target", help="Column to predict (with --data).")
@click.option(
    "--comparison-config",
    "comparison_path",
    type=click.Path(dir_okay=False),
    default=str(DEFAULT_COMPARISON_CONFIG),
    show_default=True,
    help="Stacks, data size, serving load.",
)
@click.option("--workspace", help="The comparison's own store and state (default: <state folder>/compare; replaced).")
@click.option("--output", "output_dir", help="Folder for comparison.md/.html/.json (default: reports/).")
@click.option(
    "--trainers",
    is_flag=True,
    help="Instead of the stacks: the configured estimator against the H2O AutoML leader on the same split "
    "(needs the `automl` extra); writes trainers.md/.json.",
)
@summary_options
@reports_errors
def compare(
    stack_names: str | None,
    quick: bool,
    config_path: str,
    data: str | None,
    target: str | None,
    comparison_path: str,
    workspace: str | None,
    output_dir: str | None,
    trainers: bool,
    summary_md: str | None,
    summary_json: str | None,
) -> None:
    """Run the same training, monitoring and serving on each stack and write a side-by-side report (with
    `--trainers`: the configured estimator against the H2O AutoML leader on the same split)."""
    from lifecycle.environment import state_dir
    from workflows.report_files import reports_folder

    comparison = load_comparison_config(comparison_path)
    config = apply_overrides(load_config(config_path), data=data, target=target)
    validate_file(config.dataset)
    output = Path(output_dir) if output_dir else reports_folder(load_monitoring_config())
    if trainers:
        from measurement.trainers import compare_trainers, trainers_markdown

        result = compare_trainers(config)
        markdown = trainers_markdown(result)
        output.mkdir(parents=True, exist_ok=True)
        (output / "trainers.md").write_text(markdown + "\n")
        (output / "trainers.json").write_text(json.dumps(result, indent=2) + "\n")
        click.echo(f"{markdown}\nreport: {output / 'trainers.md'}")
        write_summaries(result, markdown, summary_md, summary_json)
        return
    run_comparison = comparison_runner()
    names = [n.strip() for n in stack_names.split(",") if n.strip()] if stack_names else comparison.stacks
    workspace_root = Path(workspace) if workspace else state_dir() / "compare"
    paths = run_comparison(names, config, comparison, quick, workspace_root, output, comparison_progress(names))
    click.echo((paths["markdown"]).read_text())
    click.echo(f"report: {paths['markdown']}\npage (opens offline): {paths['html']}\nmeasurements: {paths['json']}")
    write_summaries(json.loads(paths["json"].read_text()), paths["markdown"].read_text(), summary_md, summary_json)


def comparison_runner() -> Callable[..., dict[str, Path]]:
    """`measurement.comparison.compare`, which a project generated without the comparison does not have."""
    try:
        from measurement.comparison import compare as run_comparison
    except ModuleNotFoundError:
        raise click.UsageError(
            "this project was generated without the backend comparison (copier.yml `benchmarks_and_comparison`). "
            "Fix: `copier update --trust --data benchmarks_and_comparison=true`."
        ) from None
    return run_comparison


@click.group()
def stacks() -> None:
    """Register, list and remove the stacks defined in stacks/*.yaml."""


@stacks.command("up")
@click.argument("names", nargs=-1)
@click.option(
    "--file",
    "files",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False),
    help="A stack file outside stacks/ (e.g. stacks/examples/kubernetes.yaml).",
)
@reports_errors
def stacks_up_command(names: tuple[str, ...], files: tuple[str, ...]) -> None:
    """Register stacks idempotently (default: every stack file not marked `default: false`)."""
    from stacks.manage import load_stack_file, on_shared_server, select, stack_specs, stacks_up

    extra = [load_stack_file(Path(f)) for f in files]
    specs = stack_specs(include_examples=True)
    chosen = extra + (select(list(names), specs, for_registration=True) if names or not extra else [])
    chosen, notes = on_shared_server(chosen, named=bool(names or files))
    changes = stacks_up(chosen)
    for line in notes + changes:
        click.echo(f"  {line}")
    click.echo(
        f"{', '.join(s.name for s in chosen)}: "
        + (f"{len(changes)} change(s)." if changes else "already registered, no changes.")
    )
    click.echo(f"Switch with `{tool_hint('zenml')} stack set NAME`; see them with `{run_hint()} stacks list`.")


@stacks.command("list")
@reports_errors
def stacks_list_command() -> None:
    """Each stack file: registered? active? what it offers."""
    from stacks.listing import stack_list_lines

    for line in stack_list_lines():
        click.echo(line)


@stacks.command("down")
@click.argument("names", nargs=-1)
@reports_errors
def stacks_down_command(names: tuple[str, ...]) -> None:
    """Stop the stacks' model servers, then remove the stacks and their own components."""
    from stacks.manage import select, stack_specs, stacks_down

    chosen = select(list(names), stack_specs(include_examples=True))
    chosen = [spec for spec in chosen if spec.name != "local" or names]
    changes = stacks_down(chosen)
    for change in changes:
        click.echo(f"  {change}")
    click.echo("Nothing to remove." if not changes else "Done.")


@stacks.command("compile")
@click.option("--image", required=True, help="The project image the pods would run (it must hold the code).")
@click.option("--output", "output_dir", default="reports/compiled", show_default=True, help="Folder for the file.")
@config_option("Training configuration (the pipeline's parameters).")
@reports_errors
def stacks_compile_command(image: str, output_dir: str, config_path: str) -> None:
    """Write what the active cluster stack (Kubeflow or Kubernetes) would submit for `train`, without a cluster."""
    from workflows.offline_compile import compile_training

    compiled = compile_training(load_config(config_path), image, Path(output_dir))
    click.echo(f"{compiled.flavor} spec of {len(compiled.steps)} steps on stack {compiled.stack}: {compiled.path}")
    click.echo(f"It runs snapshot `{compiled.snapshot}` (stored on the ZenML server); nothing was submitted.")


COMMANDS = [dashboard, team, compare, stacks, spark, cluster]
