"""The Airflow image: app/ (Dockerfile, DAGs, requirements) built and pushed to ACR."""

from __future__ import annotations

from pathlib import Path

import pulumi
import pulumi_docker_build as docker_build
from pulumi_azure_native import authorization

from components.azure import image_context
from components.azure.acr_auth import TOKEN_USERNAME, registry_password

PROJECT_DIR = Path(__file__).resolve().parents[2]
APP_DIR = PROJECT_DIR / "app"
# Where the program copies a build context with its file modes fixed (see
# components/azure/image_context.py): under build/, which git ignores, at the
# same place in every checkout, so that docker-build sees the same relative path.
PREPARED_CONTEXTS = Path("build") / "image-context"
IMAGE_REPOSITORY = "airflow"
LOCAL_IMAGE = "airflow-aks/airflow"


def context_revision(context_dir: Path = APP_DIR) -> str:
    """A short hash of the build context the program prepares from context_dir.

    A locally built image has no registry digest; tagging it with this makes a
    changed DAG a new tag, which rolls the pods like a new digest does on AKS.
    It is read from context_dir without copying, so an offline render writes
    nothing and gets the tag `pulumi up` would build.
    """
    return image_context.revision(context_dir)


def build_context_path(context_dir: Path = APP_DIR, project_dir: Path = PROJECT_DIR) -> str:
    """The build context as a POSIX path relative to the project directory."""
    return context_dir.resolve().relative_to(project_dir.resolve()).as_posix()


def prepare_build_context(context_dir: Path = APP_DIR, project_dir: Path = PROJECT_DIR) -> str:
    """Copy context_dir to build/image-context/<its name> with fixed modes; return that path.

    docker-build hashes each file's mode into its context hash
    (provider/internal/context.go, hashFile) and rebuilds when the hash changes,
    so building from app/ itself rebuilt whenever the checkout's umask differed.
    """
    dest = project_dir / PREPARED_CONTEXTS / context_dir.name
    image_context.prepare(context_dir, dest)
    return build_context_path(dest, project_dir)


class AirflowImage(pulumi.ComponentResource):
    """Builds app/Dockerfile FROM apache/airflow:<airflowVersion> and pushes it.

    ``ref`` is the pushed tag with its digest: a changed DAG gives a new digest
    and rolls the pods that use it; an unchanged build keeps the same ref.
    Without a registry (``target: local``) the image is loaded into the local
    Docker daemon instead, tagged with a hash of app/. Either way docker-build
    builds from the copy prepare_build_context makes, not from app/ itself.
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
        context = prepare_build_context(context_dir)
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
