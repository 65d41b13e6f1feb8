"""The Azure side: resource group, container registry, AKS with its node pools, AcrPull."""

from __future__ import annotations

import base64
from collections.abc import Mapping, Sequence
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
from pulumi.output import Unknown
from pulumi_azure_native import authorization, containerregistry, containerservice, resources

from components.azure.network import DatabaseNetwork
from components.azure.pools import (
    SYSTEM_POOL_NAME,
    PoolSize,
    busy_pool_delete_refused,
    max_pods_refused,
    system_pool_change_refused,
    worker_pool_name,
    worker_pool_size,
    workers_shrink_first,
)
from components.kubernetes import k8s
from components.model.capacity import CapacityPlan, NodePoolPlan, worker_upgrade_settings
from components.model.kubeconfig import entra_kubeconfig
from components.model.names import WORKER_POOL_LABEL_KEY, WORKER_POOL_LABEL_VALUE, WORKER_POOL_TAINT
from components.model.settings import ConfigError, Settings

# Built-in role "AcrPull": lets the kubelet identity pull without a registry password.
ACR_PULL_ROLE = "7f951dda-4ed3-4680-a7ca-43fe172d538d"
# Built-in role "Network Contributor": the cluster identity's on the node subnet
# of a VNet the program declares (`database: azure`).
NETWORK_CONTRIBUTOR_ROLE = "4d97b98b-1d4f-4787-a291-c67834d212e7"
# Built-in role "Azure Kubernetes Service RBAC Cluster Admin": every Kubernetes
# action on the cluster under Azure RBAC (dataActions
# Microsoft.ContainerService/managedClusters/*), plus listing the user
# kubeconfig (MicrosoftDocs/azure-docs articles/role-based-access-control/
# built-in-roles/containers.md). The deploying identity's, for the program's
# Kubernetes provider.
AKS_RBAC_CLUSTER_ADMIN_ROLE = "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b"


def role_definition_id(subscription_id: pulumi.Input[str], role: str) -> pulumi.Output[str]:
    return pulumi.Output.concat(
        "/subscriptions/", subscription_id, "/providers/Microsoft.Authorization/roleDefinitions/", role
    )


def live_problems(cluster: Any, settings: Settings, plan: CapacityPlan) -> list[tuple[str, str]]:
    """Every refusal that depends on what the cluster runs now (pools.py, network_engine_problems)."""
    profiles = cluster.agent_pool_profiles
    nodes = plan.worker_nodes
    worker_pool = worker_pool_name(nodes.vm_size)
    refused = system_pool_change_refused([(p.name, p.vm_size) for p in profiles or []], settings.system_pool.vm_size)
    return [
        *(refused.problems if refused else []),
        *max_pods_refused(profiles, [("systemPool", SYSTEM_POOL_NAME, settings.system_pool.max_pods),
                                     ("workerPool", worker_pool, nodes.max_pods)]),
        *busy_pool_delete_refused(profiles, worker_pool, settings.longest_task_seconds),
        *network_engine_problems(getattr(cluster, "network_profile", None)),
        *private_cluster_problems(getattr(cluster, "api_server_access_profile", None), settings.api_server_private),
    ]


def private_cluster_problems(profile: Any, wanted: bool) -> list[tuple[str, str]]:
    """apiServerPrivate changed for a cluster AKS cannot switch.

    pulumi-azure-native updates apiServerAccessProfile in place (it is not in
    provider/pkg/gen/replacement.go, and the AKS spec marks no part of it
    create-only), but AKS turns private mode on or off only for a cluster with
    API Server VNet Integration (azure-aks-docs articles/aks/private-clusters.md,
    api-server-vnet-integration.md "Enable or disable private cluster mode on
    an existing cluster"); for any other cluster the update would fail half
    way. Refused at preview instead, with what to do (docs/aks-access.md).
    """
    if profile is None and not wanted:
        return []
    live = bool(getattr(profile, "enable_private_cluster", None))
    if live == wanted or getattr(profile, "enable_vnet_integration", None):
        return []
    now = "private" if live else "public"
    return [("apiServerPrivate", (
        f"the cluster's API server is {now} and AKS cannot change that for a cluster without API Server VNet "
        f"Integration: set apiServerPrivate back to {str(live).lower()}, or move to a new stack "
        "(docs/aks-access.md, \"Private API server\")"))]


def network_engine_problems(profile: Any) -> list[tuple[str, str]]:
    """A cluster without the Cilium engine network_profile() declares (made before it).

    The program leaves those two fields as deployed (ignoreChanges): the
    provider would replace the whole cluster for them, while AKS migrates in
    place. It refuses to go on until that migration has run, as the
    NetworkPolicies would not be enforced without it.
    """
    wanted = {k: str(getattr(v, "value", v)).lower() for k, v in network_profile().items()}
    live = {k: str(getattr(profile, k, None) or "").lower() for k in ("network_dataplane", "network_policy")}
    if profile is None or all(live[k] == wanted[k] for k in live):
        return []
    return [("live cluster: networkProfile", (
        f"the cluster runs network dataplane {live['network_dataplane'] or 'azure'} and policy engine "
        f"{live['network_policy'] or 'none'}; this program declares Cilium for both and NetworkPolicies are "
        "enforced only with it. pulumi-azure-native would replace the cluster for it, so this program never "
        "changes it: migrate in place first (AKS re-images every node, so between runs): az aks update "
        "-g <group> -n <cluster> --network-dataplane cilium --network-policy cilium; then `pulumi up`"))]


def checked_live(cluster: Any, settings: Settings, plan: CapacityPlan) -> Any:
    """The live cluster, once nothing in it refuses this update (raised at preview, naming the key)."""
    problems = live_problems(cluster, settings, plan)
    if problems:
        raise ConfigError(problems)
    return cluster


def kubelet_object_id(identity_profile: Mapping[str, Any] | None) -> str:
    """The kubelet identity's object ID from a read of the cluster."""
    if not identity_profile or "kubeletidentity" not in identity_profile:
        raise ValueError("AKS returned no kubelet identity for the cluster")
    return identity_profile["kubeletidentity"].object_id


def cluster_principal_id(identity: Any) -> str:
    """The cluster's system-assigned identity from a read of the cluster."""
    principal = getattr(identity, "principal_id", None) if identity is not None else None
    if not principal:
        raise ValueError("AKS returned no system-assigned identity for the cluster")
    return principal


def issuer_url(profile: Any) -> str | None:
    """The OIDC issuer URL of a cluster's oidcIssuerProfile, None while it has none."""
    return getattr(profile, "issuer_url", None) or None


def required_issuer_url(profile: Any) -> str:
    url = issuer_url(profile)
    if not url:
        raise ValueError("AKS returned no OIDC issuer URL for the cluster (oidcIssuerProfile)")
    return url


def network_profile() -> dict[str, Any]:
    """Azure CNI overlay with Cilium as the dataplane and the NetworkPolicy engine.

    Without an engine AKS accepts NetworkPolicies and enforces none of them.
    Cilium rather than Azure Network Policy Manager, whose support on Linux
    nodes ended on 2026-09-30 (learn.microsoft.com/azure/aks/use-network-policies:
    migrate to Cilium Network Policy); AKS refuses the Cilium dataplane with any
    other policy engine (CiliumDataplaneRequiresNetworkPolicyCilium).
    Day 2: pulumi-azure-native forces a replacement of the whole cluster when
    networkPolicy or networkDataplane changes (provider/pkg/gen/replacement.go,
    ManagedCluster; older releases force-new all of networkProfile), although
    AKS itself migrates in place with `az aks update --network-dataplane cilium
    --network-policy cilium` (re-imaging every node). So a cluster created
    without them is migrated by hand first (README, "Network policies").
    """
    return {
        "network_plugin": containerservice.NetworkPlugin.AZURE,
        "network_plugin_mode": containerservice.NetworkPluginMode.OVERLAY,
        "network_dataplane": containerservice.NetworkDataplane.CILIUM,
        "network_policy": containerservice.NetworkPolicy.CILIUM,
    }


# The add-on key AKS lists the Azure Key Vault provider for Secrets Store CSI
# Driver under (learn.microsoft.com/azure/aks/csi-secrets-store-driver, the
# `az aks show --query addonProfiles` output).
KEY_VAULT_SECRETS_PROVIDER = "azureKeyvaultSecretsProvider"
# How often the driver looks for a new version of a synced secret: AKS's
# default (csi-secrets-store-configuration-options.md), stated so a read of the
# cluster and the declaration agree.
SECRET_ROTATION_POLL = "2m"
# What the installed pulumi-azure-native (3.29.0, ManagedCluster on API
# 2025-09-01) cannot declare: the managed Gateway API CRDs
# (ingressProfile.gatewayAPI.installation) and the app routing Gateway API
# implementation (webAppRouting.gatewayAPIImplementations.appRoutingIstio),
# both first in API 2026-02-01 (the AKS API proposals, typespec
# `@added(Versions.v2026_02_01)`). AKS turns both on in place with this
# (azure-aks-docs articles/aks/managed-gateway-api.md, app-routing-gateway-api.md;
# azure-cli 2.86.0 or later); /work/notes/issue27-aks.md has the sources.
GATEWAY_API_UPDATE_FLAGS = "--enable-gateway-api --enable-app-routing-istio"


def ingress_profile(settings: Settings) -> dict[str, Any] | None:
    """The application routing add-on, with `ui.exposure: gateway`; nothing otherwise.

    Its operator reconciles a Gateway listener's Key Vault TLS options into a
    SecretProviderClass and the listener's certificateRefs (azure-aks-docs
    articles/aks/app-routing-gateway-api-dns-tls.md, "Prerequisites"). No
    default NGINX controller: AKS's managed NGINX Ingress is out of support
    since November 2026 (app-routing-gateway-api.md), and the UI goes through
    the Gateway API. Day 2: ingressProfile is not in pulumi-azure-native's
    provider/pkg/gen/replacement.go for ManagedCluster, so turning it on for a
    deployed cluster is an update, as `az aks approuting enable` is for AKS.
    """
    if not settings.ui.gateway:
        return None
    return {"web_app_routing": {
        "enabled": True,
        "nginx": {"default_ingress_controller_type": containerservice.NginxIngressControllerType.NONE},
    }}


def addon_profiles(settings: Settings) -> dict[str, Any] | None:
    """The Key Vault provider for the Secrets Store CSI Driver, with a UI
    certificate in Key Vault (`ui.tls.keyVaultCertificate`): it syncs the
    certificate into the Secret the gateway's listener serves, and with
    rotation on a renewed certificate reaches the gateway without an update.
    An update of a deployed cluster too (addonProfiles is not in replacement.go;
    AKS: `az aks enable-addons --addons azure-keyvault-secrets-provider`)."""
    if settings.ui.tls_key_vault_certificate is None:
        return None
    return {KEY_VAULT_SECRETS_PROVIDER: {
        "enabled": True,
        "config": {"enableSecretRotation": "true", "rotationPollInterval": SECRET_ROTATION_POLL},
    }}


def _decode_kubeconfig(kubeconfigs: list) -> str:
    if not kubeconfigs:
        raise ValueError("AKS returned no user kubeconfig for the cluster")
    return base64.b64decode(kubeconfigs[0].value).decode()


def provider_kubeconfig(kubeconfigs: list) -> str:
    """The provider's kubeconfig from AKS's listing: its cluster entry, kubelogin as the user."""
    return entra_kubeconfig(_decode_kubeconfig(kubeconfigs))


def aad_profile(tenant_id: pulumi.Input[str]) -> dict[str, Any]:
    """AKS-managed Entra ID sign-in, with Azure RBAC deciding what each identity may do in Kubernetes.

    Day 2: neither aadProfile nor disableLocalAccounts is in pulumi-azure-native's
    replacement.go for ManagedCluster, so a deployed cluster is updated in
    place, as `az aks update --enable-aad --enable-azure-rbac
    --disable-local-accounts` does; AKS cannot turn Entra integration off again
    (azure-aks-docs articles/aks/entra-id-control-plane-authentication.md).
    """
    return {"managed": True, "enable_azure_rbac": True, "tenant_id": tenant_id}


def api_server_access_profile(ranges: Sequence[str], private: bool) -> dict[str, Any]:
    """Who reaches the API server: the stack's CIDRs (none: any address), or the cluster's VNet only.

    Always declared, so that emptying apiServerAuthorizedIpRanges sends the
    empty list that turns the ranges off (api-server-authorized-ip-ranges.md,
    "Disable API server authorized IP ranges").
    """
    return {"authorized_ip_ranges": list(ranges), "enable_private_cluster": private}


class Platform(pulumi.ComponentResource):
    """Resource group, ACR, AKS (system pool + worker pool), AcrPull, and a Kubernetes provider."""

    resource_group_name: pulumi.Output[str]
    registry_id: pulumi.Output[str]
    registry_login_server: pulumi.Output[str]
    cluster_name: pulumi.Output[str]
    # The cluster's service account token issuer, which federated identity
    # credentials name (workload identity); it ends with a slash, as AKS has it.
    oidc_issuer_url: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    provider: kubernetes.Provider
    worker_pool: containerservice.AgentPool
    # Resolves when the worker StatefulSet may change its replica count: after
    # the pool has grown, or at once when the pool is about to shrink.
    worker_gate: pulumi.Output[bool]
    acr_pull: authorization.RoleAssignment
    # The deploying identity's Kubernetes role, which the provider waits for.
    cluster_admin: authorization.RoleAssignment
    # `database: azure`: the VNet the pools and the flexible server share.
    network: DatabaseNetwork | None

    def __init__(
        self,
        name: str,
        settings: Settings,
        plan: CapacityPlan,
        dns_prefix: str | None = None,
        gate: pulumi.Input[object] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        """gate: resolves once nothing refuses this update (a preview stops on
        its error): the cluster, and with it every pool and Kubernetes object,
        and the VNet wait for it."""
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

        group_name: pulumi.Output[str] = (group.name if gate is None else
                                          pulumi.Output.all(group.name, gate).apply(lambda values: values[0]))
        self.network = None
        if settings.database == "azure":
            self.network = DatabaseNetwork(f"{name}-network", stack=settings.stack,
                                           resource_group_name=group_name, opts=child)
        cluster = self._cluster(name, settings, group_name, dns_prefix, guarded)
        live = self._live_cluster(group, cluster, settings, plan)
        subnet_grant = self._subnet_grant(name, live)
        worker_pool = self._worker_pool(name, settings, plan, group, cluster, live, subnet_grant)
        acr_pull = self._acr_pull(name, settings, cluster, registry, live)
        self.cluster_admin = self._cluster_admin(name, cluster)

        # The listing's `format: exec` answer holds no secret on a cluster
        # with Entra ID; before this program turned Entra on (the update that
        # does, read in its preview) it holds the local account's certificate.
        # Only its cluster entry is kept (components/model/kubeconfig.py).
        credentials = containerservice.list_managed_cluster_user_credentials_output(
            resource_group_name=group.name, resource_name=cluster.name, format="exec"
        )
        kubeconfig = credentials.kubeconfigs.apply(provider_kubeconfig)
        # The first `pulumi up` would be forbidden without the role; as an
        # option, not an input, so that the kubeconfig stays known in a
        # preview (an unknown one makes pulumi-kubernetes replace the provider
        # and every object: provider/pkg/provider/provider.go, DiffConfig).
        # clusterIdentifier: the provider, and every object with it, is
        # replaced only when the cluster is, not when the kubeconfig's cluster
        # entry changes, as a CA rotation (`az aks rotate-certs`) changes it
        # (DiffConfig; pulumi-kubernetes#2745). Added to a provider without
        # one, it replaces nothing (DiffConfig skips an added identifier).
        provider = k8s.provider(f"{name}-k8s", opts=pulumi.ResourceOptions(
            parent=self, depends_on=[self.cluster_admin]), kubeconfig=kubeconfig, cluster_identifier=cluster.id)

        self.resource_group_name = group.name
        self.registry_id = registry.id
        self.registry_login_server = registry.login_server
        self.cluster_name = cluster.name
        self.oidc_issuer_url = self._oidc_issuer_url(cluster, live)
        self.kubeconfig = kubeconfig
        self.provider = provider
        self.worker_pool = worker_pool
        self.worker_gate = self._shrink_first.apply(
            lambda first: True if first else worker_pool.urn.apply(lambda _: True))
        self.acr_pull = acr_pull
        self.register_outputs({
            "resource_group_name": self.resource_group_name,
            "registry_login_server": self.registry_login_server,
            "cluster_name": self.cluster_name,
            "oidc_issuer_url": self.oidc_issuer_url,
            "kubeconfig": self.kubeconfig,
        })

    def _node_subnet(self) -> dict[str, pulumi.Input[str]]:
        """A pool's vnetSubnetID: only with `database: azure`. AKS takes it only
        when a pool is created (terraform-provider-azurerm makes it ForceNew,
        "this has to be set at Cluster/Node Pool creation time", #8662) and a
        cluster cannot move to another VNet (AKS FAQ, MicrosoftDocs/
        azure-aks-docs#411); pulumi-azure-native's replacement.go does not list
        it, so its preview would show an update AKS then rejects. Without it
        AKS puts the nodes in a VNet of its own, as every stack before
        `database` had: an in-cluster stack declares nothing new here."""
        return {} if self.network is None else {"vnet_subnet_id": self.network.node_subnet_id}

    def _cluster(self, name: str, settings: Settings, group_name: pulumi.Input[str], dns_prefix: str | None,
                 opts: pulumi.ResourceOptions) -> containerservice.ManagedCluster:
        system = settings.system_pool
        tenant_id = authorization.get_client_config_output().tenant_id
        return containerservice.ManagedCluster(
            f"{name}-aks",
            resource_group_name=group_name,
            dns_prefix=dns_prefix or name,
            kubernetes_version=settings.kubernetes_version,
            enable_rbac=True,
            # No standing admin credential: Entra ID sign-in with Azure RBAC,
            # and the local accounts (whose listing hands out a cluster-admin
            # certificate) off (docs/aks-access.md).
            aad_profile=aad_profile(tenant_id),
            disable_local_accounts=True,
            api_server_access_profile=api_server_access_profile(settings.api_server_authorized_ip_ranges,
                                                                settings.api_server_private),
            # Free has no uptime SLA for the API server; Standard has one.
            sku={"name": containerservice.ManagedClusterSKUName.BASE, "tier": settings.cluster_tier},
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
                **self._node_subnet(),
            }],
            # AKS's managed KEDA, for the worker ScaledObject, under either
            # workerScaling: with `fixed` the ScaledObject stays, paused, so a
            # switch between the two never leaves KEDA's HPA and `pulumi up`
            # setting the same replicas (components/kubernetes/keda.py).
            workload_auto_scaler_profile={"keda": {"enabled": True}},
            network_profile=network_profile(),
            # Workload identity: the cluster publishes its service account
            # token issuer, and the webhook hands pods of a labelled
            # ServiceAccount a token that Entra ID exchanges for the federated
            # identity's (task logs in Blob Storage, with no storage key). Both
            # update an existing cluster in place (`az aks update
            # --enable-oidc-issuer --enable-workload-identity`; neither is in
            # pulumi-azure-native's provider/pkg/gen/replacement.go for
            # ManagedCluster). AKS cannot turn the issuer off again.
            oidc_issuer_profile={"enabled": True},
            security_profile={"workload_identity": {"enabled": True}},
            # `ui.exposure: gateway`: the add-ons the UI's gateway needs (None
            # without: a stack without a gateway declares what it did before).
            ingress_profile=ingress_profile(settings),
            addon_profiles=addon_profiles(settings),
            # A cluster made before the engine keeps what it runs, never a
            # replacement for it (network_engine_problems refuses until AKS
            # has migrated it in place).
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(
                ignore_changes=["networkProfile.networkDataplane", "networkProfile.networkPolicy"])),
        )

    def _oidc_issuer_url(self, cluster: containerservice.ManagedCluster,
                         live: pulumi.Output[Any]) -> pulumi.Output[str]:
        # From the live read, like the kubelet identity: the cluster
        # resource's outputs are unknown in the preview of any cluster update,
        # and the issuer (a federated credential's input) would show as
        # changing. A cluster that does not publish an issuer yet (the update
        # that turns it on) takes it from the cluster resource: unknown in the
        # preview, the new URL once AKS has enabled it.
        def issuer(c: Any) -> pulumi.Input[str]:
            return issuer_url(c.oidc_issuer_profile) or cluster.oidc_issuer_profile.apply(required_issuer_url)

        return live.apply(issuer)

    def _live_cluster(self, group: resources.ResourceGroup, cluster: containerservice.ManagedCluster,
                      settings: Settings, plan: CapacityPlan) -> pulumi.Output[Any]:
        # The cluster as Azure has it, not the cluster resource's outputs: in
        # the preview of any cluster update pulumi-azure-native projects the
        # new inputs onto the outputs and keeps only name and location from the
        # old state (provider/pkg/provider/provider.go, Update with preview),
        # so identityProfile and the pools' live counts would be unknown. The
        # read waits for the cluster; in a preview it runs whenever the cluster
        # already exists (its ID is known), against the cluster as it is.
        # What AKS would refuse given what it runs (pools.py) stops the program
        # here: every value taken from the read carries the error, so the
        # preview fails before any resource changes.
        return containerservice.get_managed_cluster_output(
            resource_group_name=group.name, resource_name=cluster.name,
            opts=pulumi.InvokeOutputOptions(depends_on=[cluster])).apply(lambda c: checked_live(c, settings, plan))

    def _subnet_grant(self, name: str, live: pulumi.Output[Any]) -> authorization.RoleAssignment | None:
        """Network Contributor for the cluster's identity on the node subnet, with `database: azure`.

        In a VNet of the user's, AKS acts on the subnet with the cluster
        identity (joining scaled-out nodes' NICs to it, its NSG and load
        balancer configuration: "Microsoft.Network/virtualNetworks/subnets/
        join/action ... when using a custom VNET", learn.microsoft.com/azure/
        aks/aks-service-permissions); without it the autoscaler's scale-outs
        fail with LinkedAuthorizationFailed. A system-assigned identity exists
        only once the cluster does, so the grant follows it; the principal
        comes from the live read, as the kubelet's does (_acr_pull).
        """
        if self.network is None:
            return None
        client = authorization.get_client_config_output()
        return authorization.RoleAssignment(
            f"{name}-subnet-network",
            principal_id=live.apply(lambda c: cluster_principal_id(c.identity)),
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(client.subscription_id, NETWORK_CONTRIBUTOR_ROLE),
            scope=self.network.node_subnet_id,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _worker_pool(self, name: str, settings: Settings, plan: CapacityPlan, group: resources.ResourceGroup,
                     cluster: containerservice.ManagedCluster, live: pulumi.Output[Any],
                     subnet_grant: authorization.RoleAssignment | None = None) -> containerservice.AgentPool:
        nodes = plan.worker_nodes
        pool_name = worker_pool_name(nodes.vm_size)
        # Unknown (a first preview) means no live pool: nodes first, the plan's counts.
        profiles = live.apply(lambda c: None if isinstance(c, Unknown) else c.agent_pool_profiles,
                              run_with_unknowns=True)
        self._shrink_first: pulumi.Output[bool] = profiles.apply(
            lambda p: workers_shrink_first(p, pool_name, nodes.max_count), run_with_unknowns=True)
        size = profiles.apply(lambda p: self._warn_kept_ceiling(worker_pool_size(p, nodes), pool_name, nodes),
                              run_with_unknowns=True)
        # On a shrink the pool's inputs wait for the worker StatefulSet
        # (settle_workers); the dependency travels with the Output, so the
        # engine orders the pool update after the StatefulSet update.
        self._workers_settled, self._settle = pulumi.deferred_output()

        def after_workers(value: pulumi.Output[Any]) -> pulumi.Output[Any]:
            return self._shrink_first.apply(
                lambda first: self._workers_settled.apply(lambda _: value) if first else value)

        # The logical name carries the pool name too. pulumi-azure-native
        # replaces a pool whose vmSize changes (provider/pkg/gen/replacement.go
        # lists AgentPool vmSize) and, for a resource named explicitly, deletes
        # it before creating the new one (provider/pkg/provider/provider.go:
        # deleteBeforeReplace unless the name was randomly generated). A new
        # logical name instead makes the engine create the new pool in step
        # with the rest of the update and delete the old one last, after every
        # create and update: workers have nodes to move to before theirs go
        # (and pools.busy_pool_delete_refused keeps that to an empty old pool).
        return containerservice.AgentPool(
            f"{name}-workers-{pool_name}",
            resource_group_name=group.name,
            resource_name_=cluster.name,
            agent_pool_name=pool_name,
            mode=containerservice.AgentPoolMode.USER,
            vm_size=nodes.vm_size,
            max_pods=nodes.max_pods,
            os_type=containerservice.OSType.LINUX,
            type=containerservice.AgentPoolType.VIRTUAL_MACHINE_SCALE_SETS,
            orchestrator_version=settings.kubernetes_version,
            node_labels={WORKER_POOL_LABEL_KEY: WORKER_POOL_LABEL_VALUE},
            node_taints=[WORKER_POOL_TAINT],
            upgrade_settings=worker_upgrade_settings(settings.longest_task_seconds),
            **self._node_subnet(),
            # The live node count under the autoscaler (pools.worker_pool_size),
            # never ignoreChanges: the engine would send the count of the
            # pool's creation instead.
            count=after_workers(size.apply(lambda z: z.count)),
            enable_auto_scaling=nodes.autoscale,
            min_count=size.apply(lambda z: z.min_count),
            max_count=after_workers(size.apply(lambda z: z.max_count)),
            # Its nodes join the node subnet with the cluster identity's grant.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[subnet_grant] if subnet_grant else []),
        )

    @staticmethod
    def _warn_kept_ceiling(size: PoolSize, pool_name: str, nodes: NodePoolPlan) -> PoolSize:
        if size.ceiling_kept:
            pulumi.log.warn(
                f"worker pool {pool_name}: the autoscaler runs {size.count} nodes, more than the plan's maxCount "
                f"{nodes.max_count}; AKS takes no count above maxCount, so this update keeps maxCount {size.count}. "
                f"Run `pulumi up` again once the autoscaler has removed the idle nodes.")
        return size

    def settle_workers(self, workers: pulumi.Resource) -> None:
        """Name the worker StatefulSet a shrinking pool waits for. Call once,
        after declaring it, on every AKS deployment."""
        self._settle(workers.urn)

    def _cluster_admin(self, name: str, cluster: containerservice.ManagedCluster) -> authorization.RoleAssignment:
        """Azure Kubernetes Service RBAC Cluster Admin on the cluster for the identity running `pulumi up`.

        With local accounts off, Azure RBAC is the only way into the Kubernetes
        API, and this program's own objects go through it. principalId forces a
        replacement (replacement.go), so a stack deployed by one identity
        (CI) hands the role to another one that runs `pulumi up`: run it
        from one identity (docs/aks-access.md).
        """
        client = authorization.get_client_config_output()
        return authorization.RoleAssignment(
            f"{name}-cluster-admin",
            principal_id=client.object_id,
            role_definition_id=role_definition_id(client.subscription_id, AKS_RBAC_CLUSTER_ADMIN_ROLE),
            scope=cluster.id,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def _acr_pull(self, name: str, settings: Settings, cluster: containerservice.ManagedCluster,
                  registry: containerregistry.Registry, live: pulumi.Output[Any]) -> authorization.RoleAssignment:
        # The kubelet identity comes from the live read: principalId forces a
        # replacement (provider/pkg/gen/replacement.go: RoleAssignment
        # principalId, scope), and from the cluster resource's outputs it
        # would be unknown in the preview of any cluster update.
        principal_id = live.apply(lambda c: kubelet_object_id(c.identity_profile))
        client = authorization.get_client_config_output()
        return authorization.RoleAssignment(
            f"{name}-acr-pull",
            principal_id=principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,
            role_definition_id=role_definition_id(client.subscription_id, ACR_PULL_ROLE),
            scope=registry.id,
            opts=pulumi.ResourceOptions(parent=self),
        )
