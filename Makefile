# Two commands do all the set-up: `make run` (train on the demo data) and `make test`.
# Each creates a project-local virtual environment on first use and re-installs only when
# pyproject.toml or constraints.txt change.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
# The cluster environment: the project plus ZenML's kubernetes, kubeflow and s3 integrations (kfp needs protobuf<7,
# which .venv cannot have), for registering the stacks in stacks/examples/.
CLUSTER_VENV ?= .venv-cluster
CLUSTER_INSTALLED := $(CLUSTER_VENV)/.installed
# The `automl` extra (H2O) in .venv, for the AutoML challenger and its tests.
AUTOML_INSTALLED := $(VENV)/.installed-automl
# The `remote` extra (SeaweedFS, ZenML's s3 integration, paramiko) in .venv, for the remote set-up.
REMOTE_INSTALLED := $(VENV)/.installed-remote
# The `s3` extra (ZenML's s3 integration) in .venv, for the `team_s3` stack.
S3_INSTALLED := $(VENV)/.installed-s3
# The Debian packages the remote set-up runs (the engine, the registry, the base image's maker).
REMOTE_DEBS := docker.io docker-registry debootstrap

export ZENML_ANALYTICS_OPT_IN ?= false
export DO_NOT_TRACK ?= true
export MLFLOW_DISABLE_TELEMETRY ?= true
export BENTOML_DO_NOT_TRACK ?= true
export ZENML_DISABLE_INTERACTIVE_INPUT ?= true

.PHONY: setup cluster-env automl-env s3-env test-automl run test test-template test-fast test-e2e test-team test-race test-canary test-follow test-cluster remote-env remote-up remote-down test-remote lint dashboard dashboard-stop team-up team-down follow clean

$(INSTALLED): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "Python >= 3.10 is needed")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,spark]'
	touch $@

.zen: $(INSTALLED)
	$(VENV)/bin/zenml init > /dev/null
	@echo "ZenML repository initialized here (.zen/); ZenML's store: \`$(VENV)/bin/zenml status\`"
	touch $@

setup: $(INSTALLED) .zen

$(CLUSTER_INSTALLED): pyproject.toml constraints-cluster.txt
	test -x $(CLUSTER_VENV)/bin/python || $(PYTHON) -m venv $(CLUSTER_VENV)
	$(CLUSTER_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(CLUSTER_VENV)/bin/python -m pip install --quiet -c constraints-cluster.txt -e '.[cluster]'
	touch $@

cluster-env: $(CLUSTER_INSTALLED)

$(AUTOML_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,automl]'
	touch $@

automl-env: setup $(AUTOML_INSTALLED)

run: setup
	$(PY) run.py $(ARGS)

# A project generated from the template (it has configs/demo.yaml) tests its own model on its own data: a smoke
# train on a sample, the serving contract on its columns (tests/test_project.py), and the tests that read its own
# files (config, README and docs commands, workflows, layers). `make test-template` runs the template's suite.
PROJECT_TESTS := tests/test_project.py tests/test_config.py tests/test_hints.py tests/test_architecture.py \
	tests/test_workflows.py tests/test_ci_workflows.py
GENERATED := $(wildcard configs/demo.yaml)

# Two workers, one test file each at a time: servers start and models train in one file while the other waits on
# its own servers, in the order tests/conftest.py gives (the longest files first; xdist would otherwise start the
# files with the most tests first). Each worker has its own throw-away ZenML store. The long journeys (marked
# e2e) and the team race run in their own suites below; `.ci/run` runs every suite.
ifneq ($(GENERATED),)
test: setup
	$(PY) -m pytest -m "not integration" $(PROJECT_TESTS) $(PYTEST_ARGS)
else
test: test-template
endif

test-template: setup
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "not e2e and not team and not automl and not remote and not canary" $(PYTEST_ARGS)

# The long end-to-end journeys: a generated project's own tests, the backend comparison, the CLI on every stack,
# the shared MLflow server, the release flow and the release race (three rounds), the shipped CI workflows' commands,
# the monitoring replay, and the judged canaries on every backend (tests/test_canary.py, also `make test-canary`).
test-e2e: setup
	$(PY) -m pytest -n 2 --dist loadfile --no-loadscope-reorder -m "e2e or canary" $(PYTEST_ARGS)

# Unit and in-process tests only: no server, no stack switch, no comparison (the loop while changing code).
test-fast: setup
	$(PY) -m pytest -m "not integration and not automl and not remote and not canary" $(PYTEST_ARGS)

# The two-client promotion race through a live ZenML server, TEAM_RACE_ROUNDS rounds (five by default).
# The `team_s3` stack's test starts an object store (SeaweedFS, the `remote` extra).
TEAM_RACE_ROUNDS ?= 5
test-team: setup $(REMOTE_INSTALLED)
	MLOPS_TEAM_RACE_ROUNDS=$(TEAM_RACE_ROUNDS) $(PY) -m pytest -m team tests/test_team.py $(PYTEST_ARGS)

# The team suite with two race rounds: quicker, for a serving machine's follower (through another client's promote
# and rollback, and a store outage) and the team_s3 stack.
test-follow: setup $(REMOTE_INSTALLED)
	MLOPS_TEAM_RACE_ROUNDS=2 $(PY) -m pytest -m team tests/test_team.py $(PYTEST_ARGS)

# Promote, rollback and deploy started together, twenty rounds (`make test-e2e` runs three); about 15 minutes.
test-race: setup
	MLOPS_RACE_ROUNDS=20 $(PY) -m pytest tests/test_release_race.py $(PYTEST_ARGS)

# Canaries judged on live traffic on every backend (tests marked canary): a wrong, a slow, a dying and a good one.
test-canary: setup
	$(PY) -m pytest -m canary tests/test_canary.py $(PYTEST_ARGS)

# The H2O AutoML challenger (tests marked automl): the `automl` extra installed into .venv, one small AutoML search
# shared by the suite's tests.
test-automl: automl-env
	$(PY) -m pytest -m automl $(PYTEST_ARGS)

$(S3_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[s3]'
	touch $@

# ZenML's s3 integration, for the `team_s3` stack (stacks/team_s3.yaml): the workflows install it on a team whose
# artifacts are in a bucket.
s3-env: $(S3_INSTALLED)

$(REMOTE_INSTALLED): $(INSTALLED)
	$(PY) -m pip install --quiet -c constraints.txt -e '.[dev,spark,remote]'
	touch $@

# The remote set-up's programs: Debian's engine, registry and debootstrap (installing starts no service here), and
# the `remote` extra in .venv.
remote-env: setup $(REMOTE_INSTALLED)
	@command -v dockerd >/dev/null 2>&1 && command -v docker-registry >/dev/null 2>&1 && \
		command -v debootstrap >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(REMOTE_DEBS) >/dev/null; }

# The whole remote set-up on 127.0.0.1 (configs/remote.yaml): engine, registry, object store, ZenML and MLflow servers.
remote-up: remote-env
	$(PY) run.py cluster up $(ARGS)

remote-down: setup
	$(PY) run.py cluster down

# The remote set-up for real: up, pipelines in containers, down leaves nothing (tests marked remote).
test-remote: remote-env
	$(PY) -m pytest -m remote $(PYTEST_ARGS)

# The cluster stacks (stacks/examples/) registered from the cluster environment through a live local ZenML server.
test-cluster: setup cluster-env
	MLOPS_CLUSTER_PYTHON=$(CLUSTER_VENV)/bin/python $(PY) -m pytest tests/test_cluster_stacks.py $(PYTEST_ARGS)

# The same checks as .pre-commit-config.yaml: lint, format and types.
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

# ZenML's dashboard on this project's runs (a ZenML server with sign-in on 127.0.0.1:8237; ARGS="--port N" moves
# it). `make setup` installs the server (the dev extra holds the server extra's packages).
dashboard: setup
	$(PY) run.py dashboard $(ARGS)

dashboard-stop: setup
	$(PY) run.py dashboard --stop

# A ZenML server and an MLflow server on 127.0.0.1 (ports 8238 and 5000), to try the shared set-up of a team;
# ARGS=--object-store adds an S3 object store for every artifact (the `team_s3` stack; the `remote` extra).
team-up: setup $(if $(findstring --object-store,$(ARGS)),$(REMOTE_INSTALLED))
	$(PY) run.py team up $(ARGS)

team-down: setup
	$(PY) run.py team down

# Follow production of the model (the ZenML store the environment points at: `make team-up` prints its exports) and
# keep it served behind its front door; Ctrl-C stops following (the servers stay: `run.py undeploy` stops them).
# ARGS="--model-name NAME --stack STACK" picks the model and the stack that serves it.
follow: setup
	$(PY) run.py serve --follow $(ARGS)

clean:
	rm -rf $(VENV) $(CLUSTER_VENV) .zen *.egg-info .pytest_cache .ruff_cache
