"""Security checks on what the repository exposes: servers listen on loopback unless configured otherwise, and the
repository holds no credentials. Models loading only from the project's own stores are checked in
tests/test_security_models.py, bad data paths on the command line in tests/test_security_data_paths.py."""

from __future__ import annotations

import ast
import inspect
import ipaddress
import re
import shutil
import subprocess
from collections.abc import Iterator

import pytest
import yaml
from security_cases import PROJECT_ROOT, calls_in, keyword_in, parse, python_sources, relative

from lifecycle.config import DeploymentConfig, load_deployment_config


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


def test_every_server_gets_the_configured_host():
    """The deploy plumbing hands `DeploymentConfig.host` to each server it starts."""
    rollout, bentoml = PROJECT_ROOT / "serving" / "rollout.py", PROJECT_ROOT / "serving" / "backends" / "bentoml.py"
    inference = PROJECT_ROOT / "serving" / "backends" / "zenml_service.py"
    starts = [c for c in calls_in(rollout, "start") if ast.unparse(c.func) == "backend.start"]
    assert starts and all(ast.unparse(c.args[1]) == "config.host" for c in starts)
    assert [keyword_in(c, "host") for c in calls_in(bentoml, "BentoMLLocalDeploymentConfig")] == ["host"]
    assert [keyword_in(c, "address") for c in calls_in(inference, "LocalDeployerSettings")] == ["host"]
    # The BentoML daemon serves on the configured host, loopback when none is set.
    flavor = calls_in(PROJECT_ROOT / "stacks" / "bentoml_flavor.py", "serve_http")
    assert [keyword_in(c, "host") for c in flavor] == ["self.config.host or '127.0.0.1'"]


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
