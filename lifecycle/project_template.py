"""Run by Copier in a project it has just generated from this template (copier.yml, `_tasks`): copy the data file
into `data/` when the answers ask for it, then check the file against the written `configs/training.yaml` with
`train`'s own checks, so that a target that is not a column of the file is refused at generation time with the
same message and fix as `python run.py train` would give.

    python -m lifecycle.project_template      # in the generated project (Copier runs it there)
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from lifecycle.hints import run_hint

ANSWERS_FILE = ".copier-answers.yml"
DEMO_DATASET = "data/bike_sharing_hourly.csv.gz"


class TemplateAnswerError(Exception):
    """An answer the generated project cannot work with."""


def locate_dataset(answer: str, template_root: str | None) -> Path:
    """The answered data file: an absolute (or ~) path, else relative to where Copier was started (the shell's
    PWD), else to the template."""
    path = Path(answer).expanduser()
    candidates = [path] if path.is_absolute() else []
    if not path.is_absolute():
        candidates += [Path(os.environ.get("PWD", ".")) / path]
        candidates += [Path(template_root) / path] if template_root else []
    for candidate in candidates:
        if candidate.is_file():
            return candidate.resolve()
    looked = ", ".join(str(c) for c in candidates)
    raise TemplateAnswerError(
        f"dataset_path `{answer}` is not a file (looked at {looked}). Fix: answer with the file's absolute path."
    )


def place_dataset(answers: dict, project: Path) -> Path | None:
    """Copy the answered file into the project's data/ (kept when already there); None when it is referenced."""
    answer = str(answers["dataset_path"])
    if answer == DEMO_DATASET or not answers.get("copy_dataset", True):
        return None
    target = project / "data" / Path(answer).name
    if target.is_file():
        return target  # an update: the copy made at generation (and perhaps edited since) stays
    source = locate_dataset(answer, answers.get("_src_path"))
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    return target


def check_project(project: Path) -> str:
    """Place the data, then check it against the project's training config; a one-line summary."""
    import yaml

    answers = yaml.safe_load((project / ANSWERS_FILE).read_text()) or {}
    copied = place_dataset(answers, project)
    from lifecycle.config import load_config
    from lifecycle.validation import validate_file

    config = load_config(project / "configs" / "training.yaml")
    report = validate_file(config.dataset)
    where = f"{copied.relative_to(project)} (copied from {answers['dataset_path']})" if copied else config.dataset.path
    task = config.dataset.task or "task inferred at training"
    return (
        f"checked {where}: {report.rows_out} of {report.rows_in} rows usable; target `{config.dataset.target}` "
        f"({task}); model `{config.model.name}`. Next: `make run` in the project."
    )


def main() -> None:
    project = Path.cwd()
    try:
        print(check_project(project))
    except ModuleNotFoundError as missing:  # Copier run from an environment without the project's packages
        print(
            f"The data was not checked here ({missing.name} is not installed where Copier runs); "
            "`make run` checks it first thing.",
            file=sys.stderr,
        )
    except Exception as error:  # noqa: BLE001 - the project's own errors carry their fix; Copier stops on exit 1
        print(
            f"error: {error}\n(The project was not generated. Answer again, e.g. `copier copy --trust --data "
            f"target=COLUMN ...`; the checks are `{run_hint()} train`'s.)",
            file=sys.stderr,
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
