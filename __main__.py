"""airflow-aks: Apache Airflow 3 with the CeleryExecutor on AKS, sized from stack config."""

import pulumi

from components.config import read_stack_config
from components.image import AirflowImage
from components.names import ADMIN_USER
from components.platform import Platform
from components.workloads import Workloads, port_forward_command

stack = pulumi.get_stack()
config = read_stack_config()

platform = Platform("airflow", settings=config.settings, plan=config.plan, dns_prefix=f"airflow-{stack}")
image = AirflowImage(
    "airflow-image",
    airflow_version=config.settings.airflow_version,
    registry_login_server=platform.registry_login_server,
)
workloads = Workloads(
    "workloads",
    config=config,
    provider=platform.provider,
    image=image.ref,
    # Pods pull the image with the kubelet identity: the push and AcrPull come first.
    image_dependencies=[image, platform.acr_pull],
    worker_dependencies=[platform.worker_pool],
)

pulumi.export("capacityPlan", config.plan.to_output())
pulumi.export("capacitySummary", config.plan.summary())
pulumi.export("resourceGroupName", platform.resource_group_name)
pulumi.export("registryLoginServer", platform.registry_login_server)
pulumi.export("clusterName", platform.cluster_name)
pulumi.export("image", image.ref)
pulumi.export(
    "getCredentialsCommand",
    pulumi.Output.concat(
        "az aks get-credentials --resource-group ", platform.resource_group_name,
        " --name ", platform.cluster_name,
    ),
)
pulumi.export("namespace", workloads.namespace)
pulumi.export("portForwardCommand", port_forward_command(workloads.namespace))
pulumi.export("adminUser", ADMIN_USER)
pulumi.export("adminPassword", workloads.admin_password)
