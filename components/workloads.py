"""Every Kubernetes object of the deployment, through the cluster's provider."""

from __future__ import annotations

from collections.abc import Sequence

import pulumi
import pulumi_kubernetes as kubernetes

from components import names
from components.airflow import Airflow
from components.config import StackConfig
from components.postgres import Postgres
from components.rabbitmq import RabbitMQ
from components.secrets import AirflowSecrets


class Workloads(pulumi.ComponentResource):
    """Namespace, secrets, PostgreSQL, RabbitMQ and Airflow."""

    namespace: pulumi.Output[str]
    api_server_service: pulumi.Output[str]
    admin_password: pulumi.Output[str]

    def __init__(
        self,
        name: str,
        config: StackConfig,
        provider: kubernetes.Provider,
        image: pulumi.Input[str],
        image_dependencies: Sequence[pulumi.Resource] = (),
        worker_dependencies: Sequence[pulumi.Resource] = (),
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:workloads:Workloads", name, None,
                         pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(providers=[provider])))
        settings, plan = config.settings, config.plan
        child = pulumi.ResourceOptions(parent=self)

        namespace = kubernetes.core.v1.Namespace(
            f"{name}-namespace",
            metadata={"name": settings.namespace, "labels": {"app.kubernetes.io/part-of": "airflow"}},
            opts=child,
        )
        ns = namespace.metadata.name
        secrets = AirflowSecrets(f"{name}-secrets", namespace=ns, namespace_name=settings.namespace, opts=child)
        postgres = Postgres(
            f"{name}-postgres", namespace=ns, plan=plan, password_secret=secrets.postgres_secret_name,
            image=settings.postgres_image, storage_gib=settings.postgres_storage_gib, opts=child,
        )
        rabbitmq = RabbitMQ(
            f"{name}-rabbitmq", namespace=ns, plan=plan, password_secret=secrets.rabbitmq_secret_name,
            longest_task_seconds=settings.longest_task_seconds, image=settings.rabbitmq_image,
            storage_gib=settings.rabbitmq_storage_gib, opts=child,
        )
        airflow = Airflow(
            f"{name}-airflow", namespace=ns, settings=settings, plan=plan, airflow_cfg=config.airflow_cfg,
            image=image, env_secret=secrets.env_secret_name, auth_secret=secrets.auth_secret_name,
            backends=[postgres.stateful_set, rabbitmq.stateful_set],
            image_dependencies=image_dependencies, worker_dependencies=worker_dependencies,
            # Only AKS has the labelled, tainted worker pool.
            worker_pool_placement=settings.target == "aks", opts=child,
        )

        self.namespace = ns
        self.api_server_service = airflow.api_server_service
        self.admin_password = secrets.admin_password
        self.register_outputs({"namespace": self.namespace, "api_server_service": self.api_server_service})


def port_forward_command(namespace: pulumi.Input[str]) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "kubectl --namespace ", namespace, f" port-forward svc/{names.API_SERVER} "
        f"{names.API_SERVER_PORT}:{names.API_SERVER_PORT}",
    )
