"""The Azure side: resource group, container registry, AKS with its node pools, AcrPull."""

from __future__ import annotations

import base64

import pulumi
import pulumi_kubernetes as kubernetes
from pulumi_azure_native import authorization, containerregistry, containerservice, resources

from components.capacity import CapacityPlan
from components.settings import Settings

# Built-in role "AcrPull": lets the kubelet identity pull without a registry password.
ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"

# The worker pool carries this label and a NoSchedule taint with the same key,
# so Celery workers (which tolerate it and select it) are the only pods there.
WORKER_POOL_LABEL_KEY = "airflow-aks/pool"
WORKER_POOL_LABEL_VALUE = "celery-workers"
WORKER_POOL_TAINT = f"{WORKER_POOL_LABEL_KEY}={WORKER_POOL_LABEL_VALUE}:NoSchedule"

SYSTEM_POOL_NAME = "system"
WORKER_POOL_NAME = "workers"


def role_definition_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
    )


def _decode_kubeconfig(kubeconfigs: list) -> str:
    if not kubeconfigs:
        raise ValueError("AKS returned no user kubeconfig for the cluster")
    return base64.b64decode(kubeconfigs[0].value).decode()


class Platform(pulumi.ComponentResource):
    """Resource group, ACR, AKS (system pool + worker pool), AcrPull, and a Kubernetes provider."""

    resource_group_name: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: kubernetes.Provider
    worker_pool: containerservice.AgentPool
    acr_pull: authorization.RoleAssignment

    def __init__(
        self,
        name: str,
        settings: Settings,
        plan: CapacityPlan,
        dns_prefix: str | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("airflow-aks:platform:Platform", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        guarded = pulumi.ResourceOptions(parent=self, protect=settings.protect)

        group = resources.ResourceGroup(f"{name}-rg", opts=child)

        # Registry names are alphanumeric only, and auto-naming adds a suffix
        # to the logical name, so the logical name carries no dash.
        registry = containerregistry.Registry(
            f"{name.replace('-', '')}acr",
            resource_group_name=group.name,
            sku={"name": settings.acr_sku},
            admin_user_enabled=False,
            opts=guarded,
        )

        system = settings.system_pool
        cluster = containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group.name,
            dns_prefix=dns_prefix or name,
            kubernetes_version=settings.kubernetes_version,
            enable_rbac=True,
            identity={"type": containerservice.ResourceIdentityType.SYSTEM_ASSIGNED},
            agent_pool_profiles=[{
                "name": SYSTEM_POOL_NAME,
                "mode": containerservice.AgentPoolMode.SYSTEM,
                "vm_size": system.vm_size,
                "count": system.min_count,
                "max_pods": system.max_pods,
                "os_type": containerservice.OSType.LINUX,
                "type": containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
                "orchestrator_version": settings.kubernetes_version,
            }],
            network_profile={
                "network_plugin": containerservice.NetworkPlugin.AZURE,
                "network_plugin_mode": containerservice.NetworkPluginMode.OVERLAY,
            },
            opts=guarded,
        )

        nodes = plan.worker_nodes
        autoscale = nodes.autoscale
        worker_pool = containerservice.AgentPool(
            f"{name}-workers",
            resource_group_name=group.name,
            resource_name_=cluster.name,
            agent_pool_name=WORKER_POOL_NAME,
            mode=containerservice.AgentPoolMode.USER,
            vm_size=nodes.vm_size,
            max_pods=nodes.max_pods,
            os_type=containerservice.OSType.LINUX,
            type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            orchestrator_version=settings.kubernetes_version,
            node_labels={WORKER_POOL_LABEL_KEY: WORKER_POOL_LABEL_VALUE},
            node_taints=[WORKER_POOL_TAINT],
            # With the autoscaler, start with the nodes the plan needs (within
            # the bounds) and let the autoscaler own the count afterwards.
            count=min(max(nodes.nodes_needed, nodes.min_count), nodes.max_count),
            enable_auto_scaling=autoscale,
            min_count=nodes.min_count if autoscale else None,
            max_count=nodes.max_count if autoscale else None,
            opts=pulumi.ResourceOptions(parent=self, ignore_changes=["count"] if autoscale else None),
        )

        client = authorization.get_client_config_output()
        kubelet_object_id = cluster.identity_profile.apply(
            lambda profile: profile["kubeletidentity"].object_id
        )
        acr_pull = authorization.RoleAssignment(
            f"{name}-acr-pull",
            principal_id=kubelet_object_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(client.subscription_id, ACR_PULL_ROLE),
            scope=registry.id,
            opts=child,
        )

        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name, resource_name=cluster.name
        )
        kubeconfig = pulumi.Output.secret(credentials.kubeconfigs.apply(_decode_kubeconfig))
        provider = kubernetes.Provider(f"{name}-k8s", kubeconfig=kubeconfig, opts=child)

        self.resource_group_name = group.name
        self.registry_id = registry.id
        self.registry_login_server = registry.login_server
        self.cluster_name = cluster.name
        self.kubeconfig = kubeconfig
        self.provider = provider
        self.worker_pool = worker_pool
        self.acr_pull = acr_pull
        self.register_outputs({
            "resource_group_name": self.resource_group_name,
            "registry_login_server": self.registry_login_server,
            "cluster_name": self.cluster_name,
            "kubeconfig": self.kubeconfig,
        })
