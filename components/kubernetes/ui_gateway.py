"""The UI at https://<ui.host> through AKS's application routing Gateway API
implementation (GatewayClass `approuting-istio`, Istio's automated gateway
deployment run by the add-on).

Three places:
- the gateway's namespace `<namespace>-ui`: the Gateway, its data plane (the
  pods and LoadBalancer Service Istio's deployment controller makes from it)
  and, with a certificate from Key Vault, the ServiceAccount the application
  routing operator syncs it as;
- the Airflow namespace: the HTTPRoute from the Gateway's listener to the
  api-server's Service, which only that namespace may attach;
- components/kubernetes/network_policies.py: the one new flow, the gateway's
  pods to the api-server's port.

Pure: the vault's URI and the TLS identity's client ID exist only after a
deploy and arrive as Pulumi inputs; the offline render passes placeholders.
"""

from __future__ import annotations

from typing import Any

import pulumi

from components.kubernetes.k8s import KubeObject
from components.model import names
from components.model.settings import Settings
from components.model.ui import EXECUTION_API_PATH, certificate_uri

GATEWAY_API = "gateway.networking.k8s.io"
HTTPS_PORT = 443
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"
# The label Istio's gateway deployment controller puts on the pods (and
# selects them by) of the Deployment it makes for a Gateway: the Gateway's
# name (istio/istio pilot/pkg/config/kube/gatewaycommon/deploymentcontroller.go,
# GatewayNameLabel = label.IoK8sNetworkingGatewayGatewayName, and the pod
# template's labels in manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml).
GATEWAY_POD_NAME_LABEL = f"{GATEWAY_API}/gateway-name"
# The application routing operator's listener TLS options: the unversioned
# certificate URI (rotations are picked up) and a ServiceAccount of the
# Gateway's namespace federated with an identity that may read it; the
# operator syncs the certificate into a Secret and patches the listener's
# certificateRefs (MicrosoftDocs/azure-aks-docs articles/aks/app-routing-gateway-api-dns-tls.md,
# "TLS integration").
TLS_KEYVAULT_URI_OPTION = "kubernetes.azure.com/tls-cert-keyvault-uri"
TLS_SERVICE_ACCOUNT_OPTION = "kubernetes.azure.com/tls-cert-service-account"
# cloud-provider-azure: the load balancer of a Service with this annotation
# admits only these source ranges (comma-separated). Istio's gateway template
# copies spec.infrastructure.annotations onto the Service it makes
# (kube-gateway.yaml above, the Service's metadata.annotations).
ALLOWED_RANGES_ANNOTATION = "service.beta.kubernetes.io/azure-allowed-ip-ranges"
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"
WORKLOAD_IDENTITY_USE = "azure.workload.identity/use"
# Pod Security for the gateway's namespace: Istio's kube-gateway template
# (istio/istio manifests/charts/istio-control/istio-discovery/files/kube-gateway.yaml)
# drops every capability, runs as 1337 non-root without privilege escalation,
# mounts only emptyDir, downwardAPI, projected and configMap volumes and sets
# the sysctl net.ipv4.ip_unprivileged_port_start (one of `baseline`'s safe
# sysctls); but it sets a seccomp profile only when the chart's
# gateways.seccompProfile is set, empty by default (values.yaml), and
# `restricted` requires RuntimeDefault or Localhost
# (kubernetes.io/docs/concepts/security/pod-security-standards). So `baseline`
# is enforced and `restricted` only warned and audited: the API server would
# refuse the add-on's own pods under `restricted`.
GATEWAY_POD_SECURITY_LABELS = {
    "pod-security.kubernetes.io/enforce": "baseline",
    "pod-security.kubernetes.io/audit": "restricted",
    "pod-security.kubernetes.io/warn": "restricted",
}
# The Airflow namespace's own label (workloads.namespace_object).
PART_OF = {"app.kubernetes.io/part-of": "airflow"}
LABELS = {"app.kubernetes.io/name": "airflow", "app.kubernetes.io/component": "ui-gateway", **PART_OF}


def gateway_pod_labels() -> dict[str, str]:
    """The labels of the gateway's data-plane pods that NetworkPolicies select."""
    return {GATEWAY_POD_NAME_LABEL: names.UI_GATEWAY}


def listener_certificate_uri(key_vault_uri: pulumi.Input[str], certificate: str) -> pulumi.Input[str]:
    """The certificate's unversioned URI (components/model/ui.py), from the vault's."""
    if isinstance(key_vault_uri, str):  # the offline render's placeholder
        return certificate_uri(key_vault_uri, certificate)
    return pulumi.Output.from_input(key_vault_uri).apply(lambda uri: certificate_uri(uri, certificate))


def _tls(settings: Settings, key_vault_uri: pulumi.Input[str] | None) -> dict[str, Any]:
    ui = settings.ui
    if ui.tls_key_vault_certificate is not None:
        if key_vault_uri is None:
            raise ValueError("ui.tls.keyVaultCertificate needs the Key Vault's URI (SecretsVault)")
        return {"mode": "Terminate", "options": {
            TLS_KEYVAULT_URI_OPTION: listener_certificate_uri(key_vault_uri, ui.tls_key_vault_certificate),
            TLS_SERVICE_ACCOUNT_OPTION: names.UI_TLS_SERVICE_ACCOUNT}}
    assert ui.tls_secret_name is not None
    # A kubernetes.io/tls Secret the user keeps in the gateway's namespace.
    return {"mode": "Terminate", "certificateRefs": [{"kind": "Secret", "name": ui.tls_secret_name}]}


def gateway_object(settings: Settings, key_vault_uri: pulumi.Input[str] | None = None) -> KubeObject:
    ui = settings.ui
    assert ui.host is not None
    spec: dict[str, Any] = {
        "gatewayClassName": names.UI_GATEWAY_CLASS,
        "listeners": [{
            "name": names.UI_GATEWAY_LISTENER, "hostname": ui.host, "port": HTTPS_PORT, "protocol": "HTTPS",
            "tls": _tls(settings, key_vault_uri),
            # Only the Airflow namespace's HTTPRoutes attach: nothing else in
            # the cluster can publish itself at the UI's address.
            "allowedRoutes": {
                "namespaces": {"from": "Selector",
                               "selector": {"matchLabels": {NAMESPACE_NAME_LABEL: settings.namespace}}},
                "kinds": [{"group": GATEWAY_API, "kind": "HTTPRoute"}]},
        }],
    }
    if ui.allowed_source_ranges:
        spec["infrastructure"] = {"annotations": {ALLOWED_RANGES_ANNOTATION: ",".join(ui.allowed_source_ranges)}}
    return KubeObject("Gateway", "ui-gateway", {
        "metadata": {"name": names.UI_GATEWAY, "namespace": names.ui_gateway_namespace(settings.namespace),
                     "labels": dict(LABELS)},
        "spec": spec,
    })


def route_object(settings: Settings) -> KubeObject:
    """Every path of the host to the api-server, except the Execution API.

    The Execution API (task runners' API, /execution) gets a rule of its own
    with no backendRefs: Istio answers such a rule with a 500 and forwards
    nothing (istio/istio pilot/pkg/config/kube/gateway/conversion.go: a rule
    whose backends weigh 0 and that redirects nowhere becomes a direct
    response 500; the Gateway API's conformance test HTTPRouteNoBackendRefs,
    conformance/tests/httproute-omitted-backendrefs.go, requires 500 of every
    implementation). It wins over `/` whatever the order: across rules the
    PathPrefix match with the most characters takes precedence, and a prefix
    matches whole path elements, so /execution and /execution/... are held
    and /executions is not (kubernetes-sigs/gateway-api apis/v1/httproute_types.go,
    HTTPRouteRule.Matches and PathMatchPathPrefix).
    """
    ui = settings.ui
    assert ui.host is not None
    return KubeObject("HTTPRoute", "ui-route", {
        "metadata": {"name": names.UI_ROUTE, "namespace": settings.namespace,
                     "labels": dict(LABELS)},
        "spec": {
            "parentRefs": [{"group": GATEWAY_API, "kind": "Gateway", "name": names.UI_GATEWAY,
                            "namespace": names.ui_gateway_namespace(settings.namespace),
                            "sectionName": names.UI_GATEWAY_LISTENER}],
            "hostnames": [ui.host],
            "rules": [
                {"matches": [{"path": {"type": "PathPrefix", "value": EXECUTION_API_PATH}}]},
                {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
                 "backendRefs": [{"group": "", "kind": "Service", "name": names.API_SERVER,
                                  "port": names.API_SERVER_PORT}]},
            ],
        },
    })


def ui_gateway_objects(settings: Settings, tls_identity_client_id: pulumi.Input[str] | None = None,
                       key_vault_uri: pulumi.Input[str] | None = None) -> list[KubeObject]:
    """The gateway's Namespace, its TLS ServiceAccount (a certificate from
    Key Vault), the Gateway and the HTTPRoute; none with port-forward.

    tls_identity_client_id: the user-assigned identity federated with
    system:serviceaccount:<namespace>-ui:airflow-ui-tls and allowed to read
    the certificate; key_vault_uri: the stack's vault (both only with
    `tls.keyVaultCertificate`)."""
    if not settings.ui.gateway:
        return []
    gateway_ns = names.ui_gateway_namespace(settings.namespace)
    objects = [KubeObject("Namespace", "ui-namespace", {
        "metadata": {"name": gateway_ns, "labels": {**PART_OF, **GATEWAY_POD_SECURITY_LABELS}},
    })]
    if settings.ui.tls_key_vault_certificate is not None:
        if tls_identity_client_id is None:
            raise ValueError("ui.tls.keyVaultCertificate needs the TLS identity's client ID")
        objects.append(KubeObject("ServiceAccount", "ui-tls-account", {
            "metadata": {"name": names.UI_TLS_SERVICE_ACCOUNT, "namespace": gateway_ns,
                         "labels": {**LABELS, WORKLOAD_IDENTITY_USE: "true"},
                         "annotations": {WORKLOAD_IDENTITY_CLIENT_ID: tls_identity_client_id}},
        }))
    objects.append(gateway_object(settings, key_vault_uri))
    objects.append(route_object(settings))
    return objects
