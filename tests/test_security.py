"""Security checks: servers listen on loopback unless configured otherwise, the repository holds no credentials,
models load only from the project's own stores, and bad data paths on the command line end in one-line errors."""

from __future__ import annotations

import ast
import inspect
import ipaddress
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from conftest import run_cli

from lifecycle.config import DeploymentConfig, load_deployment_config
from lifecycle.errors import LifecycleError
from lifecycle.packaging import copy_model_code
from serving.backends.bentoml import SERVICE_MODULES

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# The project's code: everything that starts servers, loads models or reads data (tests excluded).
CODE_DIRS = ("lifecycle", "serving", "pipelines", "stacks", "steps", "workflows", "measurement", "benchmarks")


def python_sources() -> list[Path]:
    files = [path for folder in CODE_DIRS for path in sorted((PROJECT_ROOT / folder).rglob("*.py"))]
    return [*files, PROJECT_ROOT / "run.py"]


def relative(path: Path) -> str:
    return str(path.relative_to(PROJECT_ROOT))


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def docstring_nodes(tree: ast.Module) -> set[int]:
    nodes = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                nodes.add(id(first.value))
    return nodes


def code_strings(tree: ast.Module) -> Iterator[ast.Constant]:
    """String literals of the code (docstrings and comments are prose, not binds)."""
    prose = docstring_nodes(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            yield node


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


# --- servers listen on loopback ----------------------------------------------------------------------------


def test_deployment_settings_default_to_loopback():
    assert DeploymentConfig().host == "127.0.0.1"
    assert load_deployment_config().host == "127.0.0.1"  # configs/deployment.yaml as shipped
    assert is_loopback(yaml.safe_load((PROJECT_ROOT / "configs" / "deployment.yaml").read_text())["host"])


HOST_NAMES = {"host", "address", "ip_address", "hostname", "bind"}
HOST_FLAGS = ("--host", "--address", "--bind")


def wide_binds(tree: ast.Module) -> list[str]:
    """`line: value` for each literal 0.0.0.0 / `::` in the code, and each literal host handed to a server
    (a `host=`-like keyword, a `host`-like variable or attribute, the value after `--host`) that is not loopback."""
    found = [
        f"{node.lineno}: {node.value!r}"
        for node in code_strings(tree)
        if "0.0.0.0" in node.value or node.value.strip("[]") == "::"
    ]
    for node in ast.walk(tree):
        values: list[ast.AST] = []
        if isinstance(node, ast.keyword) and node.arg in HOST_NAMES:
            values.append(node.value)
        if isinstance(node, ast.AnnAssign | ast.Assign) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(getattr(t, "id", getattr(t, "attr", None)) in HOST_NAMES for t in targets):
                values.append(node.value)
        if isinstance(node, ast.List | ast.Tuple):
            pairs = zip(node.elts, node.elts[1:], strict=False)
            values += [after for flag, after in pairs if isinstance(flag, ast.Constant) and flag.value in HOST_FLAGS]
        for value in values:
            for constant in ast.walk(value):
                literal = isinstance(constant, ast.Constant) and isinstance(constant.value, str)
                if literal and not is_loopback(constant.value):
                    found.append(f"{constant.lineno}: host {constant.value!r}")
    return sorted(set(found))


def test_wide_bind_scan_finds_what_it_looks_for():
    exposed = [
        'uvicorn.run(app, host="0.0.0.0", port=8000)',
        'subprocess.run(["mlflow", "server", "--host", "::"])',
        'class Settings:\n    host: str = "10.1.2.3"',
        'self.address = "example.org"',
        'serve(host=configured or "0.0.0.0")',
    ]
    for source in exposed:
        assert wide_binds(ast.parse(source)), source
    loopback = [
        'uvicorn.run(app, host="127.0.0.1")',
        'cmd = ["uvicorn", "app:app", "--host", "localhost"]',
        "serve(host=config.host)",
        '"""Set host to 0.0.0.0 to expose the server."""',
    ]
    for source in loopback:
        assert not wide_binds(ast.parse(source)), source


def test_no_code_or_config_binds_every_interface():
    """Exposing a server beyond this machine takes an explicit setting: no code or config value does it."""
    found = [f"{relative(path)}:{where}" for path in python_sources() for where in wide_binds(parse(path))]
    for path in sorted((PROJECT_ROOT / "configs").rglob("*.yaml")) + sorted((PROJECT_ROOT / "stacks").rglob("*.yaml")):
        for value in _yaml_strings(yaml.safe_load(path.read_text())):
            if "0.0.0.0" in value:
                found.append(f"{relative(path)}: {value!r}")
    assert not found, "binds to every interface:\n" + "\n".join(found)


def _yaml_strings(node) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield str(key)
            yield from _yaml_strings(value)
    elif isinstance(node, list):
        for item in node:
            yield from _yaml_strings(item)
    elif isinstance(node, str):
        yield node


def _calls(path: Path, name: str) -> list[ast.Call]:
    """Calls of `name` (a function, class or method name) in a file."""
    found = []
    for node in ast.walk(parse(path)):
        if isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if called == name:
                found.append(node)
    return found


def _keyword(call: ast.Call, name: str) -> str | None:
    return next((ast.unparse(k.value) for k in call.keywords if k.arg == name), None)


def test_every_server_gets_the_configured_host():
    """The deploy plumbing hands `DeploymentConfig.host` to each server it starts."""
    rollout, bentoml = PROJECT_ROOT / "serving" / "rollout.py", PROJECT_ROOT / "serving" / "backends" / "bentoml.py"
    inference = PROJECT_ROOT / "serving" / "backends" / "zenml_service.py"
    starts = [c for c in _calls(rollout, "start") if ast.unparse(c.func) == "backend.start"]
    assert starts and all(ast.unparse(c.args[1]) == "config.host" for c in starts)
    assert [_keyword(c, "host") for c in _calls(bentoml, "BentoMLLocalDeploymentConfig")] == ["host"]
    assert [_keyword(c, "address") for c in _calls(inference, "LocalDeployerSettings")] == ["host"]
    # The BentoML daemon serves on the configured host, loopback when none is set.
    flavor = _calls(PROJECT_ROOT / "stacks" / "bentoml_flavor.py", "serve_http")
    assert [_keyword(c, "host") for c in flavor] == ["self.config.host or '127.0.0.1'"]


def test_servers_started_by_zenml_default_to_loopback():
    """Where the project passes no host (MLflow's scoring server), ZenML's defaults must be loopback."""
    from zenml.constants import DEFAULT_LOCAL_SERVICE_IP_ADDRESS
    from zenml.deployers.local.local_deployer import LocalDeployerSettings
    from zenml.integrations.mlflow.services.mlflow_deployment import MLFlowDeploymentService
    from zenml.services.local.local_service_endpoint import LocalDaemonServiceEndpointConfig

    assert is_loopback(DEFAULT_LOCAL_SERVICE_IP_ADDRESS)
    assert is_loopback(LocalDeployerSettings().address)
    assert is_loopback(LocalDaemonServiceEndpointConfig().ip_address)
    assert 'host="localhost"' in inspect.getsource(MLFlowDeploymentService.run)


# --- no credentials in the repository ----------------------------------------------------------------------

SECRET_NAME = r"[\w.-]*(?:password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)[\w.-]*"
ASSIGNMENT = re.compile(
    rf"""(?i)(?P<name>{SECRET_NAME})["']?\s*(?::=|=|:)\s*(?P<quote>["']?)(?P<value>[^\s"'`,;)}}\]#]*)"""
)
PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
AWS_KEY = re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b")
URL_CREDENTIALS = re.compile(r"\b[a-z][a-z0-9+.-]*://(?P<user>[^\s:/@'\"`]+):(?P<password>[^\s/@'\"`]+)@")
PLAIN_TEXT_FORMATS = (".yaml", ".yml", ".toml", ".ini", ".cfg", ".env", ".sh", ".md", ".txt", ".json", "Makefile")
KEY_FILES = re.compile(r"(^|/)(\.env|id_rsa|id_ed25519|.*\.pem|.*\.key|.*\.p12|.*\.pfx|credentials\.json)$")


def is_placeholder(value: str) -> bool:
    """Environment references, documentation placeholders and declared test fakes, not credentials."""
    value = value.strip()
    return (
        not value
        or value.startswith(("$", "{{", "<"))
        or set(value) <= set(".*x")
        or value.lower() in {"none", "null", "true", "false", "password", "secret", "token", "changeme"}
        or any(marker in value.lower() for marker in ("not-a-real", "fake", "dummy", "example"))
        or re.fullmatch(r"[A-Z][A-Z0-9_]*", value) is not None  # the name of an environment variable
    )


def credentials_in(name: str, text: str) -> list[str]:
    """What looks like a literal credential in a file's text, as `line: kind`."""
    found = []
    literal_unquoted = name.endswith(PLAIN_TEXT_FORMATS)  # in code an unquoted value is an expression
    for number, line in enumerate(text.splitlines(), start=1):
        if PRIVATE_KEY.search(line):
            found.append(f"{number}: private key")
        if AWS_KEY.search(line):
            found.append(f"{number}: AWS access key")
        for match in URL_CREDENTIALS.finditer(line):
            if not is_placeholder(match["password"]):
                found.append(f"{number}: password in a URL")
        for match in ASSIGNMENT.finditer(line):
            if (match["quote"] or literal_unquoted) and not is_placeholder(match["value"]):
                found.append(f"{number}: `{match['name']}` holds a literal value")
    return found


def repository_files() -> list[str]:
    """Tracked files, and new files not ignored (they are about to be committed)."""
    if shutil.which("git") is None or not (PROJECT_ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return [name for name in listed.split("\0") if name and (PROJECT_ROOT / name).is_file()]


def test_credential_scan_finds_what_it_looks_for():
    # Built from pieces, so that this file itself holds none of them.
    leaks = {
        "config.yaml": "db_pass" + "word: hunter2",
        "app.py": "API_" + 'KEY = "sk-live-1234"',
        "settings.toml": "auth_tok" + 'en = "abc123"',
        "deploy.sh": "export AWS_SECRET_ACCESS_" + "KEY=wJalrXUtnFEMI",
        "notes.md": "postgresql://admin:" + "s3cr3t@db.internal/app",
        "key.txt": "-----BEGIN " + "RSA PRIVATE KEY-----",
        "aws.py": "KEY_ID = 'AKIA" + "ABCDEFGHIJKLMNOP'",
    }
    for name, text in leaks.items():
        assert credentials_in(name, text), (name, text)
    fine = {
        "stack.yaml": "pass" + "word: ${MLFLOW_TRACKING_PASSWORD}",
        "stack2.yaml": "tracking_pass" + 'word: "{{mlflow_server_credentials.password}}"',
        "README.md": "MLFLOW_TRACKING_PASS" + "WORD=...",
        "code.py": "pass" + "word = os.environ['DB_PASSWORD']",
        "code2.py": "sec" + "ret = client.get_secret(name)",
        "url.md": "https://user:" + "${TOKEN}@example.org",
    }
    for name, text in fine.items():
        assert not credentials_in(name, text), (name, text)


def test_repository_holds_no_credentials():
    """Every tracked (or about-to-be-tracked) text file; stacks/*.yaml also have their own, stricter check in
    tests/test_stacks.py (secrets only as ${ENV} or {{secret.key}} references)."""
    found = []
    for name in repository_files():
        if KEY_FILES.search(name):
            found.append(f"{name}: a key or environment file is tracked")
            continue
        content = (PROJECT_ROOT / name).read_bytes()
        if b"\0" in content[:8192]:
            continue  # binary: images, compressed data
        found += [f"{name}:{where}" for where in credentials_in(name, content.decode("utf-8", errors="replace"))]
    assert not found, "possible credentials:\n" + "\n".join(found)


# --- models load only from the project's own stores -------------------------------------------------------

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
    assert '"BARE_MODEL_PATH": str(model_path)' in (PROJECT_ROOT / "measurement" / "load.py").read_text()


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

    mlflow = _calls(PROJECT_ROOT / "serving" / "backends" / "mlflow.py", "MLFlowDeploymentConfig")
    assert [_keyword(c, "model_uri") for c in mlflow] == ["f'models:/{release.model_name}/{registered}'"]


def test_inference_service_takes_only_records_from_requests():
    """ZenML's deployment: requests carry rows; which model is served is fixed when the deployment starts."""
    from serving.backends.zenml_service import inference_service, load_serving_state

    assert list(inspect.signature(inference_service.entrypoint).parameters) == ["records"]
    assert list(inspect.signature(load_serving_state).parameters) == ["model_name", "model_version", "max_rows"]
    source = inspect.getsource(load_serving_state)
    assert "Client().get_model_version(model_name, model_version)" in source
    configured = _calls(PROJECT_ROOT / "serving" / "backends" / "zenml_service.py", "with_options")
    assert [_keyword(c, "on_init_kwargs") for c in configured] == [
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


# --- data paths on the command line -------------------------------------------------------------------------


def _unreadable_wrapper() -> list[str]:
    """Root reads every file: drop the two capabilities that let it (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH)."""
    if os.geteuid() != 0:
        return []
    wrapper = [shutil.which("setpriv") or "setpriv", "--bounding-set", "-dac_override,-dac_read_search"]
    try:
        usable = subprocess.run([*wrapper, "true"], capture_output=True, timeout=30).returncode == 0
    except OSError:
        usable = False
    if not usable:
        pytest.skip("running as root without a usable `setpriv` (util-linux): root would read a mode-000 file")
    return wrapper


def _bad_path(tmp_path: Path, kind: str) -> Path:
    if kind == "a directory":
        path = tmp_path / "table.csv"
        path.mkdir()
    elif kind == "a missing file":
        path = tmp_path / "absent.csv"
    elif kind == "an unsupported suffix":
        path = tmp_path / "table.xlsx"
        path.write_bytes(b"PK\x03\x04 not a table")
    elif kind == "an empty file":
        path = tmp_path / "empty.csv"
        path.write_bytes(b"")
    else:
        path = tmp_path / "locked.csv"
        path.write_text("cnt,temp\n1,2\n")
        path.chmod(0)
    return path


EXPECTED = {
    "a directory": "is a directory",
    "a missing file": "not found",
    "an unsupported suffix": "unsupported type",
    "an empty file": "is empty",
    "an unreadable file": "not readable",
}


@pytest.mark.parametrize(
    "command, kind",
    [
        ("train", "a directory"),
        ("train", "a missing file"),
        ("train", "an unsupported suffix"),
        ("train", "an empty file"),
        ("train", "an unreadable file"),
        ("monitor", "a directory"),
        ("predict", "a directory"),
    ],
)
def test_cli_rejects_bad_data_paths_in_one_line(zenml_client, tmp_path, command, kind):
    path = _bad_path(tmp_path, kind)
    wrapper = _unreadable_wrapper() if kind == "an unreadable file" else []
    option = {"train": "--data", "monitor": "--batch", "predict": "--input"}[command]
    extra = ["--target", "cnt"] if command == "train" else []
    done = run_cli(command, option, str(path), *extra, timeout=300, wrapper=tuple(wrapper))
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("error: ") and "Fix" in message, done.stderr[-3000:]
    if command == "predict":
        # `predict` looks for a live server before it reads --input: with none running, that is the error.
        assert str(path) in message or "no healthy" in message, message
    else:
        assert str(path) in message and EXPECTED[kind] in message, message
        assert done.stderr.strip() == message, "more than the one-line error on stderr"


@pytest.mark.parametrize("kind", ["a directory", "a missing file", "an unsupported suffix", "an empty file"])
def test_predict_input_rows_are_validated(tmp_path, kind):
    """What `python run.py predict --input` reads once a server is found (serving.client.read_request_rows)."""
    from serving.client import read_request_rows

    path = _bad_path(tmp_path, kind)
    with pytest.raises(LifecycleError) as error:
        read_request_rows(str(path))
    assert str(path) in str(error.value) and EXPECTED[kind] in str(error.value)


@pytest.mark.parametrize(
    "name, content, expected",
    [
        ("rows.json", None, "is a directory"),
        ("rows.json", b"{not json", "is not valid JSON"),
        ("rows.json", b'{"records": "all of them"}', "list of row objects"),
        ("rows.json", b"\xff\xfe\x00garbage", "rows.json"),
    ],
)
def test_predict_json_input_is_validated(tmp_path, name, content, expected):
    from serving.client import read_request_rows

    path = tmp_path / name
    if content is None:
        path.mkdir()
    else:
        path.write_bytes(content)
    with pytest.raises(LifecycleError, match=re.escape(expected)):
        read_request_rows(str(path))
