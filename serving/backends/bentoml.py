"""BentoML: this project's BentoML service (`bentoml_service.py`) built into a bento per model version, run by
the stack's BentoML model deployer (this project's `bentoml_local` flavor, see stacks/bentoml_flavor.py)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from lifecycle.config import DeploymentConfig
from lifecycle.packaging import MODEL_MODULES, copy_model_code
from serving.backends.base import DeploymentFailed, Endpoint, Release
from serving.backends.model_deployer import ModelDeployerBackend

SERVICE_MODULE = "serving.backends.bentoml_service"
SERVICE_MODULES = (*MODEL_MODULES, SERVICE_MODULE)  # the code a bento ships: the model's and the service's


class BentoMLBackend(ModelDeployerBackend):
    name = "bentoml"
    predict_path = "/predict"
    health_path = "/readyz"

    def service_class(self) -> Any:
        from stacks.bentoml_flavor import BentoMLServiceV14

        return BentoMLServiceV14

    def bento_for(self, release: Release, config: DeploymentConfig) -> Any:
        """Save the model to the BentoML store and build its bento, offline (once per MCP version and serving
        settings)."""
        import bentoml
        from bentoml.exceptions import NotFound

        safe = re.sub(r"[^a-z0-9_]+", "_", release.model_name.lower()).strip("_") or "model"
        version = f"v{release.model_version}-{release.model_version_id.replace('-', '')[:12]}"
        model_tag = f"{safe}:{version}"
        try:
            bentoml.models.get(model_tag)
        except NotFound:
            bentoml.sklearn.save_model(
                model_tag,
                release.model,
                custom_objects={"feature_schema": release.schema.model_dump()},
                metadata={"zenml_model": release.model_name, "zenml_version": release.model_version},
                labels={"zenml_version_id": release.model_version_id},
            )
        reference = {
            "tag": model_tag,
            "model_name": release.model_name,
            "model_version": release.model_version,
            "max_rows": config.max_rows_per_request,
            "max_body_bytes": config.max_body_bytes,
            "log": config.log.settings(release.role),
        }
        # One bento per version and serving settings: a changed limit or log setting builds a new one.
        settings = hashlib.sha256(json.dumps(reference, sort_keys=True).encode()).hexdigest()[:8]
        bento_tag = f"{safe}_service:{version}-{settings}"
        with contextlib.suppress(NotFound):
            return bentoml.bentos.get(bento_tag)
        with tempfile.TemporaryDirectory(prefix="bento-build-") as build:
            copy_model_code(Path(build), SERVICE_MODULES)
            (Path(build) / "bento_model.json").write_text(json.dumps(reference))
            (Path(build) / "bentofile.yaml").write_text(
                json.dumps(
                    {
                        "name": bento_tag.split(":")[0],
                        "service": f"{SERVICE_MODULE}:TabularModel",
                        "include": ["**/*.py", "bento_model.json"],
                        "python": {"lock_packages": False, "packages": []},
                        "labels": {"zenml_model": release.model_name, "zenml_version": release.model_version},
                    }
                )
            )
            # A fresh interpreter imports this bento's own copy of the service and its model reference.
            result = subprocess.run(
                [sys.executable, "-m", "bentoml", "build", ".", "--version", bento_tag.split(":")[1]],
                cwd=build,
                capture_output=True,
                text=True,
                env={**os.environ, "PYTHONPATH": build},
            )
            if result.returncode != 0:
                raise DeploymentFailed(f"bentoml build failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
        return bentoml.bentos.get(bento_tag)

    def start(self, release: Release, host: str, port: int, timeout: int, config: DeploymentConfig) -> Endpoint:
        from zenml.integrations.bentoml.services.bentoml_local_deployment import BentoMLLocalDeploymentConfig

        bento = self.bento_for(release, config)
        service_config = BentoMLLocalDeploymentConfig(
            model_name=release.model_name,
            model_version=release.model_version,
            model_uri=str(bento.path),
            bento_tag=str(bento.tag),
            bento_uri=str(bento.path),
            working_dir=str(bento.path_of("src")),
            apis=["predict"],
            workers=1,
            port=port,
            host=host,
            service_name=release.server_name(),
            description=f"{release.model_name} version {release.model_version}",
        )
        service = self._deploy(service_config, timeout)
        return self._endpoint(service)
