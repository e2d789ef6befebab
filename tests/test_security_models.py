"""Security checks on loading models: nothing deserializes pickles or evaluates code but the project's own
measurement files, artifacts load only from Model Control Plane versions (MLflow serves a registry URI, BentoML a
store tag), and the served model is fixed when a deployment starts, never chosen by a request."""

from __future__ import annotations

import ast
import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from security_cases import PROJECT_ROOT, calls_in, keyword_in, parse, python_sources, relative

from lifecycle.packaging import copy_model_code
from serving.backends.bentoml import SERVICE_MODULES

UNSAFE_LOADERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("dill", "load"),
    ("dill", "loads"),
    ("joblib", "load"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
    ("yaml", "load"),
    ("yaml", "unsafe_load"),
    ("torch", "load"),
    ("pd", "read_pickle"),
    ("pandas", "read_pickle"),
}
# Unpickling allowed only of files the project has just written itself, for its measurements (not deployments):
# (file, call) -> (the file that writes what is read, the line that writes it).
ALLOWED_UNSAFE = {
    # The bare baseline server reads BARE_MODEL_PATH, set by bare_http_server to the model it pickled a moment
    # earlier into its own temporary folder.
    ("measurement/bare_server.py", "pickle.load"): (
        "measurement/load.py",
        "model_path.write_bytes(pickle.dumps(model))",
    ),
    # `python run.py compare`: the production model pickled by the comparison's own child into its workspace.
    ("measurement/comparison.py", "pickle.loads"): (
        "measurement/comparison_stack.py",
        'workspace.served_model.write_bytes(pickle.dumps({"model": model, "schema": schema}))',
    ),
    # The MLflow model's own artifact (as MLflow's sklearn flavour stores a pipeline): written when the version is
    # logged to the registry, read by the model's wrapper in MLflow's scoring server.
    ("serving/backends/mlflow_service.py", "cloudpickle.load"): (
        "serving/backends/mlflow.py",
        "pipeline.write_bytes(cloudpickle.dumps(logged.model))",
    ),
}


def _runs_code(call: ast.Call) -> bool:
    """eval / exec, or __import__ of a module name that is not a literal."""
    name = getattr(call.func, "id", None)
    literal = all(isinstance(arg, ast.Constant) for arg in call.args)
    return name in ("eval", "exec") or (name == "__import__" and not literal)


def test_nothing_deserializes_pickles_or_evaluates_code_except_own_measurement_files():
    found = set()
    for path in python_sources():
        for node in ast.walk(parse(path)):
            if isinstance(node, ast.Call):
                func = node.func
                if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
                    if (func.value.id, func.attr) in UNSAFE_LOADERS:
                        found.add((relative(path), f"{func.value.id}.{func.attr}"))
                elif _runs_code(node):
                    found.add((relative(path), func.id))
            if isinstance(node, ast.ImportFrom) and node.module in {module for module, _ in UNSAFE_LOADERS}:
                for alias in node.names:
                    if (node.module, alias.name) in UNSAFE_LOADERS:
                        found.add((relative(path), f"from {node.module} import {alias.name}"))
    allowed = {place: why for place, why in ALLOWED_UNSAFE.items() if (PROJECT_ROOT / place[0]).is_file()}
    assert found == set(allowed)  # (a project generated without the comparison has no measurement/comparison.py)
    for writer, line in allowed.values():
        assert line in (PROJECT_ROOT / writer).read_text(), f"{writer} no longer writes what is unpickled"
    # the bare server and the floor read only the file bare_model_file has just written
    load = (PROJECT_ROOT / "measurement" / "load.py").read_text()
    written = '"BARE_MODEL_PATH": str(bare_model_file(model, folder))'
    assert load.count('"BARE_MODEL_PATH": ') == load.count(written) == 2


def test_model_artifacts_are_loaded_from_model_control_plane_versions():
    """Every artifact `.load()` reads an artifact of a Model Control Plane version (or a step output of a
    pipeline run), i.e. from ZenML's artifact store; MLflow serves a registry URI; BentoML a store tag."""
    loads = []
    for path in python_sources():
        for node in ast.walk(parse(path)):
            is_load = isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "load"
            if is_load and not node.args and not node.keywords:
                loads.append((relative(path), ast.unparse(node.func.value)))
    assert loads
    run_output = "outputs[0] if isinstance(outputs, list) else outputs"  # workflows.runner.step_output
    helpers = {("workflows/runner.py", run_output), ("lifecycle/model_versions.py", "artifact")}
    for path, receiver in loads:
        from_version = re.search(r"\.get_(model_)?artifact\(\w+\)$", receiver)
        assert from_version or (path, receiver) in helpers, f"{path}: {receiver}.load()"
    from lifecycle import model_versions
    from workflows.runner import step_output

    assert "run.steps[step_name].outputs[artifact_name]" in inspect.getsource(step_output)
    versions = inspect.getsource(model_versions)  # `artifact` is a version's, or the helper raises
    assert "_loaded(version.get_artifact(name), version, name)" in versions
    assert "_loaded(version.get_model_artifact(name), version, name)" in versions
    assert versions.count("_loaded(") == 3

    mlflow = calls_in(PROJECT_ROOT / "serving" / "backends" / "mlflow.py", "MLFlowDeploymentConfig")
    assert [keyword_in(c, "model_uri") for c in mlflow] == ["f'models:/{release.model_name}/{registered}'"]


def test_inference_service_takes_only_records_from_requests():
    """ZenML's deployment: requests carry rows; which model is served is fixed when the deployment starts."""
    from serving.backends.zenml_service import inference_service, load_serving_state

    assert list(inspect.signature(inference_service.entrypoint).parameters) == ["records"]
    assert list(inspect.signature(load_serving_state).parameters) == ["model_name", "model_version", "max_rows"]
    source = inspect.getsource(load_serving_state)
    assert "Client().get_model_version(model_name, model_version)" in source
    configured = calls_in(PROJECT_ROOT / "serving" / "backends" / "zenml_service.py", "with_options")
    assert [keyword_in(c, "on_init_kwargs") for c in configured] == [
        "{'model_name': release.model_name, 'model_version': release.model_version, "
        "'max_rows': config.max_rows_per_request}"
    ]


BENTO_PROBE = """
import json, sys
import bentoml
import pandas as pd
from bentoml.exceptions import BentoMLException, NotFound
from sklearn.dummy import DummyRegressor

from lifecycle.validation import FeatureSchema

schema = FeatureSchema(target="y", task="regression", numeric_features=["x"], categorical_features=[])
model = DummyRegressor().fit(pd.DataFrame({"x": [1.0, 2.0]}), [3.0, 5.0])
bentoml.sklearn.save_model("probe_model:v1", model, custom_objects={"feature_schema": schema.model_dump()})
with open("bento_model.json", "w") as handle:
    json.dump({"tag": "probe_model:v1", "model_name": "probe", "model_version": "1"}, handle)

import serving.backends.bentoml_service as service

result = {"module": service.__file__, "reference": service.model_reference()}
instance = service.TabularModel()
result["model_path"] = instance.bento_model.path
result["prediction"] = instance.predict(records=[{"x": 1.0}], ctx=bentoml.Context())["predictions"]
rejected = []
for value in ({"__reduce__": "os.system"}, ["a"], "gASVCgAAAAAAAACMBnBpY2tsZZQu"):
    try:
        instance.predict(records=[{"x": value}], ctx=bentoml.Context())
    except service.BadRequest as error:
        rejected.append(str(error))
result["rejected"] = rejected
resolved = {}
for tag in ("absent_model:v1", "../../etc/passwd", "/tmp/model.pkl"):
    try:  # what the service does with the tag of bento_model.json (BentoModel.__get__ resolves it)
        bentoml.models.BentoModel(tag).resolve()
        resolved[tag] = "loaded"
    except (NotFound, BentoMLException, ValueError) as error:
        resolved[tag] = f"{type(error).__name__}: {error}"
result["other_tags"] = resolved
print(json.dumps(result))
"""


def test_bento_service_loads_its_model_from_the_bentoml_store(tmp_path):
    """The BentoML service, run from a bento-like folder: the model is the one `bento_model.json` names, resolved
    in the BentoML store under BENTOML_HOME; a tag not in the store, or a path, is not loaded from anywhere else;
    request values never become objects."""
    build, home = tmp_path / "build", tmp_path / "bentoml"
    copy_model_code(build, SERVICE_MODULES)
    env = {**os.environ, "BENTOML_HOME": str(home), "PYTHONPATH": str(build), "BENTOML_DO_NOT_TRACK": "true"}
    done = subprocess.run(
        [sys.executable, "-c", BENTO_PROBE], cwd=build, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(result["module"]).resolve() == (build / "serving" / "backends" / "bentoml_service.py").resolve()
    assert result["reference"]["tag"] == "probe_model:v1"
    assert Path(result["model_path"]).resolve() == (home / "models" / "probe_model" / "v1").resolve()
    assert result["prediction"] == [4.0]
    assert len(result["rejected"]) == 3 and all("`x`" in message for message in result["rejected"])
    # Not in the store: BentoML's only fallback is a pull from BentoCloud, and no cloud context is configured.
    assert "could not be found locally" in result["other_tags"]["absent_model:v1"]
    assert all(tag.startswith("ValueError") for tag in list(result["other_tags"].values())[1:]), result
