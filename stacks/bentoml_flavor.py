"""ZenML's BentoML model deployer, fixed for BentoML 1.4 services (flavor `bentoml_local`).

ZenML 0.98's local BentoML service picks the legacy (bentoml < 1.2) serving path with
`isinstance(svc, bentoml.Service)`; in BentoML 1.4 `bentoml.Service` is the new-style class, so a new-style
service goes down the legacy path and the daemon dies (`'Service' object has no attribute 'runners'`).
The service below asks the right question (`bentoml.legacy.Service`) and otherwise serves exactly as ZenML
does; the deployer creates it for local deployments. Everything else is the integration's own.
`tests/test_deployment.py` fails when ZenML's class no longer needs this (so it can be dropped) and when this
stops working. Registered with `python run.py stacks up` (`zenml model-deployer flavor register ...`).
"""

from __future__ import annotations

import contextlib
from typing import Any
from uuid import UUID

from zenml.integrations.bentoml.flavors.bentoml_model_deployer_flavor import BentoMLModelDeployerFlavor
from zenml.integrations.bentoml.model_deployers.bentoml_model_deployer import BentoMLModelDeployer
from zenml.integrations.bentoml.services.bentoml_local_deployment import (
    BentoMLLocalDeploymentConfig,
    BentoMLLocalDeploymentService,
    SSLBentoMLParametersConfig,
)
from zenml.services import ServiceType

FLAVOR_NAME = "bentoml_local"


class BentoMLServiceV14(BentoMLLocalDeploymentService):
    """The local BentoML service, serving new-style (BentoML >= 1.2) services on their own path."""

    SERVICE_TYPE = ServiceType(
        name="bentoml-local-deployment-v14",
        type="model-serving",
        flavor="bentoml",
        description="BentoML local prediction service (new-style services)",
        logo_url=BentoMLLocalDeploymentService.SERVICE_TYPE.logo_url,
    )

    def run(self) -> None:
        import bentoml
        from bentoml._internal.service.loader import load

        service = load(bento_identifier=self.config.bento_tag, working_dir=self.config.working_dir or ".")
        if isinstance(service, bentoml.legacy.Service):
            super().run()  # ZenML's legacy branch is right for legacy services
            return
        from _bentoml_impl.server import serve_http

        self.endpoint.prepare_for_start()
        ssl = self.config.ssl_parameters or SSLBentoMLParametersConfig()
        service.inject_config()
        with contextlib.suppress(KeyboardInterrupt):
            serve_http(
                self.config.bento_tag,
                working_dir=self.config.working_dir or ".",
                host=self.config.host or "127.0.0.1",
                port=self.config.port,
                backlog=self.config.backlog,
                ssl_certfile=ssl.ssl_certfile,
                ssl_keyfile=ssl.ssl_keyfile,
                ssl_keyfile_password=ssl.ssl_keyfile_password,
                ssl_version=ssl.ssl_version,
                ssl_cert_reqs=ssl.ssl_cert_reqs,
                ssl_ca_certs=ssl.ssl_ca_certs,
                ssl_ciphers=ssl.ssl_ciphers,
            )


class BentoMLLocalModelDeployer(BentoMLModelDeployer):
    """ZenML's BentoML model deployer; local deployments use `BentoMLServiceV14`."""

    def _create_new_service(self, id: UUID, timeout: int, config: Any):
        if not isinstance(config, BentoMLLocalDeploymentConfig):
            return super()._create_new_service(id, timeout, config)
        config.root_runtime_path = self.local_path
        # ZenML's services make their endpoint from the config when none is given; its pydantic model says required.
        service = BentoMLServiceV14(uuid=id, config=config)  # type: ignore[call-arg]
        service.start(timeout=timeout)
        return service


class BentoMLLocalModelDeployerFlavor(BentoMLModelDeployerFlavor):
    @property
    def name(self) -> str:
        return FLAVOR_NAME

    @property
    def implementation_class(self) -> type[BentoMLLocalModelDeployer]:
        return BentoMLLocalModelDeployer
