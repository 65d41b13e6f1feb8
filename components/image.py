"""The Airflow image: app/ (Dockerfile, DAGs, requirements) built and pushed to ACR."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from pulumi_azure_native import authorization

from components.acr_auth import TOKEN_USERNAME, registry_password

APP_DIR = Path(__file__).resolve().parent.parent / "app"
IMAGE_REPOSITORY = "airflow"


class AirflowImage(pulumi.ComponentResource):
    """Builds app/Dockerfile FROM apache/airflow:<airflowVersion> and pushes it.

    ``ref`` is the pushed tag with its digest: a changed DAG gives a new digest
    and rolls the pods that use it; an unchanged build keeps the same ref.
    """

    ref: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        airflow_version: str,
        registry_login_server: pulumi.Input[str],
        context_dir: Path = APP_DIR,
        platform: docker_build.Platform = docker_build.Platform.LINUX_AMD64,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:image:AirflowImage", name, None, opts)

        client = authorization.get_client_config_output()
        token = authorization.get_client_token_output()
        password = registry_password(registry_login_server, client.tenant_id, token.token)

        image = docker_build.Image(
            f"{name}-build",
            context={"location": str(context_dir)},
            dockerfile={"location": str(context_dir / "Dockerfile")},
            build_args={"AIRFLOW_VERSION": airflow_version},
            platforms=[platform],
            # Previews (also in pull requests) need neither Docker nor a push.
            build_on_preview=False,
            push=True,
            tags=[pulumi.Output.concat(registry_login_server, f"/{IMAGE_REPOSITORY}:{airflow_version}")],
            registries=[{
                "address": registry_login_server,
                "username": TOKEN_USERNAME,
                "password": password,
            }],
            opts=pulumi.ResourceOptions(parent=self),
        )

        self.ref = image.ref
        self.register_outputs({"ref": self.ref})
