"""airflow-aks: Apache Airflow 3 with the CeleryExecutor on AKS, sized from stack config."""

import pulumi

from components.config import read_stack_config
from components.image import AirflowImage
from components.platform import Platform

stack = pulumi.get_stack()
config = read_stack_config()

platform = Platform("airflow", settings=config.settings, plan=config.plan, dns_prefix=f"airflow-{stack}")
image = AirflowImage(
    "airflow-image",
    airflow_version=config.settings.airflow_version,
    registry_login_server=platform.registry_login_server,
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
