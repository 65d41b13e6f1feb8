"""The Airflow image: app/ (Dockerfile, DAGs, requirements) built and pushed to ACR."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from pulumi_azure_native import authorization

from components.azure.acr_auth import TOKEN_USERNAME, registry_password

PROJECT_DIR = Path(__file__).resolve().parents[2]
APP_DIR = PROJECT_DIR / "app"
IMAGE_REPOSITORY = "airflow"
LOCAL_IMAGE = "airflow-aks/airflow"


def context_revision(context_dir: Path = APP_DIR) -> str:
    """A short hash of every file in the build context.

    A locally built image has no registry digest; tagging it with this makes a
    changed DAG a new tag, which rolls the pods like a new digest does on AKS.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in context_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(context_dir)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def build_context_path(context_dir: Path = APP_DIR, project_dir: Path = PROJECT_DIR) -> str:
    """The build context as a POSIX path relative to the project directory."""
    return context_dir.resolve().relative_to(project_dir.resolve()).as_posix()


class AirflowImage(pulumi.ComponentResource):
    """Builds app/Dockerfile FROM apache/airflow:<airflowVersion> and pushes it.

    ``ref`` is the pushed tag with its digest: a changed DAG gives a new digest
    and rolls the pods that use it; an unchanged build keeps the same ref.
    Without a registry (``target: local``) the image is loaded into the local
    Docker daemon instead, tagged with a hash of app/.
    """

    ref: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        airflow_version: str,
        registry_login_server: pulumi.Input[str] | None = None,
        context_dir: Path = APP_DIR,
        platform: docker_build.Platform = docker_build.Platform.LINUX_AMD64,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:image:AirflowImage", name, None, opts)

        # Relative to the project directory, where `pulumi` runs the program:
        # docker-build compares these strings as inputs, so an absolute path
        # would differ between a laptop's checkout and CI's and show a changed
        # build (and a rebuild, a new digest and rolled pods) on every switch.
        context = build_context_path(context_dir)
        build = {
            "context": {"location": context},
            "dockerfile": {"location": f"{context}/Dockerfile"},
            "build_args": {"AIRFLOW_VERSION": airflow_version},
            "platforms": [platform],
            # Previews (also in pull requests) need neither Docker nor a push.
            "build_on_preview": False,
        }
        if registry_login_server is None:
            image = docker_build.Image(
                f"{name}-build",
                push=False,
                load=True,
                tags=[f"{LOCAL_IMAGE}:{airflow_version}-{context_revision(context_dir)}"],
                opts=pulumi.ResourceOptions(parent=self),
                **build,
            )
        else:
            client = authorization.get_client_config_output()
            token = authorization.get_client_token_output()
            password = registry_password(registry_login_server, client.tenant_id, token.token)
            image = docker_build.Image(
                f"{name}-build",
                push=True,
                tags=[pulumi.Output.concat(registry_login_server, f"/{IMAGE_REPOSITORY}:{airflow_version}")],
                registries=[{
                    "address": registry_login_server,
                    "username": TOKEN_USERNAME,
                    "password": password,
                }],
                opts=pulumi.ResourceOptions(parent=self),
                **build,
            )

        self.ref = image.ref
        self.register_outputs({"ref": self.ref})
