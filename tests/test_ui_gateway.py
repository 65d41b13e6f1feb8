"""The UI through AKS's application routing Gateway API implementation: the
gateway's Namespace, its TLS ServiceAccount, the Gateway and the HTTPRoute
(components/kubernetes/ui_gateway.py), and their strict validation against the
Gateway API's own v1 CRDs (tests/schemas.py)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from components.config import PROJECT_DIR
from components.kubernetes.airflow import airflow_objects
from components.kubernetes.k8s import CUSTOM_KINDS, KubeObject, to_manifest
from components.kubernetes.ui_gateway import ui_gateway_objects
from components.model import names
from components.model.settings import Settings
from tests.conftest import config_for
from tests.harness import shared_run, stack_file_config
from tests.schemas import SchemaError, validate_manifest
from tests.test_render import manifests, render_in_process

# The stack config of the lead's preamble (prod-like), and its Secret variant.
ENTRA = {"tenantId": "11111111-2222-3333-4444-555555555555", "clientId": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
         "roleGroups": {"Admin": ["99999999-8888-7777-6666-555555555555"],
                        "Viewer": ["12345678-1234-1234-1234-123456789abc"]}}
UI_KEY_VAULT = {"exposure": "gateway", "host": "airflow.example.com", "tls": {"keyVaultCertificate": "airflow-ui"},
                "allowedSourceRanges": ["203.0.113.0/24"], "auth": "entra", "entra": ENTRA}
UI_SECRET = {**UI_KEY_VAULT, "tls": {"secretName": "airflow-ui-tls"}}
VAULT_URI = "https://airflow-kv.vault.azure.net/"
CLIENT_ID = "0a0b0c0d-1111-2222-3333-444455556666"
KUBERNETES_VERSION = "1.35.0"


def settings_with(ui: dict[str, Any] | None, **changes: Any) -> Settings:
    return config_for("prod", ui=ui, **changes).settings


def objects_of(ui: dict[str, Any], **changes: Any) -> dict[str, KubeObject]:
    """The builder's objects by kind (one of each)."""
    found = ui_gateway_objects(settings_with(ui, **changes), CLIENT_ID, VAULT_URI)
    by_kind = {o.kind: o for o in found}
    assert len(by_kind) == len(found), [o.kind for o in found]
    return by_kind


def manifests_of(ui: dict[str, Any], **changes: Any) -> dict[str, dict[str, Any]]:
    return {kind: to_manifest(o) for kind, o in objects_of(ui, **changes).items()}


def gateway_project(directory: Path, ui: dict[str, Any], stack: str = "prod") -> Path:
    """A project directory whose Pulumi.<stack>.yaml is the repository's with this `ui` block."""
    data = yaml.safe_load((PROJECT_DIR / f"Pulumi.{stack}.yaml").read_text())
    data["config"]["airflow-aks:ui"] = ui
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump(data))
    return directory


def rendered(tmp_path: Path, ui: dict[str, Any]) -> list[dict[str, Any]]:
    """The offline render of prod with this `ui` block (the render command's function, in this process)."""
    render_in_process("prod", tmp_path / "out", gateway_project(tmp_path / "project", ui))
    return manifests(tmp_path / "out")


# --------------------------------------------------------------------------
# The objects
# --------------------------------------------------------------------------

def test_key_vault_certificate_objects() -> None:
    m = manifests_of(UI_KEY_VAULT)
    assert set(m) == {"Namespace", "ServiceAccount", "Gateway", "HTTPRoute"}
    gateway_ns = f"{names.ui_gateway_namespace('airflow')}"
    assert gateway_ns == "airflow-ui"
    account = m["ServiceAccount"]["metadata"]
    assert (account["name"], account["namespace"]) == (names.UI_TLS_SERVICE_ACCOUNT, gateway_ns), \
        "ServiceAccount airflow-ui-tls: in the gateway's namespace"
    assert account["annotations"] == {"azure.workload.identity/client-id": CLIENT_ID}, "ServiceAccount airflow-ui-tls"
    assert account["labels"]["azure.workload.identity/use"] == "true", "ServiceAccount airflow-ui-tls"
    gateway = m["Gateway"]
    assert (gateway["metadata"]["name"], gateway["metadata"]["namespace"]) == ("airflow-ui", gateway_ns)
    assert gateway["spec"]["gatewayClassName"] == "approuting-istio", "Gateway airflow-ui"
    [listener] = gateway["spec"]["listeners"]
    assert {k: listener[k] for k in ("name", "hostname", "port", "protocol")} == {
        "name": "https", "hostname": "airflow.example.com", "port": 443, "protocol": "HTTPS"}, "Gateway airflow-ui"
    # The unversioned certificate URI: the vault's URI ends with '/', no '//' in between.
    assert listener["tls"] == {"mode": "Terminate", "options": {
        "kubernetes.azure.com/tls-cert-keyvault-uri": "https://airflow-kv.vault.azure.net/certificates/airflow-ui",
        "kubernetes.azure.com/tls-cert-service-account": "airflow-ui-tls"}}, "Gateway airflow-ui: listener TLS"


def test_secret_certificate_objects() -> None:
    m = manifests_of(UI_SECRET)
    assert set(m) == {"Namespace", "Gateway", "HTTPRoute"}, "no TLS ServiceAccount with a Secret"
    [listener] = m["Gateway"]["spec"]["listeners"]
    refs = [{"kind": "Secret", "name": "airflow-ui-tls"}]
    assert listener["tls"] == {"mode": "Terminate", "certificateRefs": refs}, \
        "Gateway airflow-ui: the user's Secret, in the Gateway's namespace (no namespace in the reference)"


def test_a_key_vault_certificate_needs_the_identity_and_the_vault() -> None:
    settings = settings_with(UI_KEY_VAULT)
    with pytest.raises(ValueError, match="client ID"):
        ui_gateway_objects(settings, None, VAULT_URI)
    with pytest.raises(ValueError, match="Key Vault's URI"):
        ui_gateway_objects(settings, CLIENT_ID, None)
    # A Secret needs neither.
    assert {o.kind for o in ui_gateway_objects(settings_with(UI_SECRET))} == {"Namespace", "Gateway", "HTTPRoute"}


def test_the_allow_list_is_the_load_balancer_annotation() -> None:
    ranges = ["203.0.113.0/24", "198.51.100.7/32"]
    gateway = manifests_of({**UI_SECRET, "allowedSourceRanges": ranges})["Gateway"]
    assert gateway["spec"]["infrastructure"] == {"annotations": {
        "service.beta.kubernetes.io/azure-allowed-ip-ranges": "203.0.113.0/24,198.51.100.7/32"}}, "Gateway airflow-ui"
    open_gateway = manifests_of({k: v for k, v in UI_SECRET.items() if k != "allowedSourceRanges"})["Gateway"]
    assert "infrastructure" not in open_gateway["spec"], "Gateway airflow-ui: no allow-list, no annotation"


def test_only_the_airflow_namespace_attaches_routes() -> None:
    m = manifests_of(UI_SECRET, namespace="data-team")
    [listener] = m["Gateway"]["spec"]["listeners"]
    assert listener["allowedRoutes"] == {
        "namespaces": {"from": "Selector", "selector": {"matchLabels": {"kubernetes.io/metadata.name": "data-team"}}},
        "kinds": [{"group": "gateway.networking.k8s.io", "kind": "HTTPRoute"}]}, "Gateway airflow-ui"
    assert m["Gateway"]["metadata"]["namespace"] == "data-team-ui"
    route = m["HTTPRoute"]
    assert route["metadata"]["namespace"] == "data-team", "HTTPRoute airflow-ui: beside the api-server"
    assert route["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                            "name": "airflow-ui", "namespace": "data-team-ui",
                                            "sectionName": "https"}], "HTTPRoute airflow-ui"
    assert route["spec"]["hostnames"] == ["airflow.example.com"], "HTTPRoute airflow-ui"


def api_server_service(settings: Settings) -> tuple[str, int]:
    """The api-server's Service and port, as airflow_api_server.py builds them."""
    config = config_for("prod", ui=UI_SECRET)
    [service] = [o for o in airflow_objects(settings, config.plan, config.airflow_cfg, "image:tag")
                 if o.kind == "Service" and o.name == names.API_SERVER]
    [port] = service.fields["spec"]["ports"]
    return service.name, port["port"]


def route_for(route: dict[str, Any], path: str) -> list[dict[str, Any]] | None:
    """The backendRefs of the rule a request path takes, by the Gateway API's
    precedence (apis/v1/httproute_types.go, HTTPRouteRule.Matches: an Exact
    match, then the PathPrefix with the most characters, then the first rule
    in order); a PathPrefix matches whole path elements (PathMatchPathPrefix).
    None: no rule matches (404)."""
    def prefix_matches(prefix: str) -> bool:
        prefix = prefix.rstrip("/")
        return prefix == "" or path == prefix or path.startswith(prefix + "/")

    candidates = []
    for order, rule in enumerate(route["spec"]["rules"]):
        for match in rule["matches"]:
            assert match["path"]["type"] == "PathPrefix", "only PathPrefix is evaluated here"
            if prefix_matches(match["path"]["value"]):
                candidates.append((-len(match["path"]["value"]), order, rule))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[:2])[2].get("backendRefs", [])


@pytest.mark.parametrize("ui", [UI_KEY_VAULT, UI_SECRET], ids=["keyVaultCertificate", "secretName"])
def test_every_path_but_the_execution_api_goes_to_the_api_server(ui: dict[str, Any]) -> None:
    settings = settings_with(ui)
    route = manifests_of(ui)["HTTPRoute"]
    service, port = api_server_service(settings)
    api_server = [{"group": "", "kind": "Service", "name": service, "port": port}]
    backends = [r.get("backendRefs") for r in route["spec"]["rules"]]
    assert [b for b in backends if b] == [api_server], "HTTPRoute airflow-ui: the api-server is the only backend"
    for path in ("/", "/api/v2/dags", "/auth/oauth-authorized/azure", "/auth/login/", "/ui/dags", "/executions"):
        assert route_for(route, path) == api_server, f"HTTPRoute airflow-ui: {path} to the api-server"
    # The Execution API's rule has no backendRefs: Istio answers 500, nothing is forwarded.
    for path in ("/execution", "/execution/", "/execution/task-instances/0/run", "/execution/health"):
        assert route_for(route, path) == [], f"HTTPRoute airflow-ui: {path} must not be forwarded"
    # Whatever the order of the rules: longest prefix first.
    flipped = copy.deepcopy(route)
    flipped["spec"]["rules"].reverse()
    assert route_for(flipped, "/execution/health") == [] and route_for(flipped, "/ui") == api_server


def test_the_route_checker_can_fail() -> None:
    """Negative control: with the /execution rule gone, the Execution API is forwarded."""
    route = manifests_of(UI_SECRET)["HTTPRoute"]
    route["spec"]["rules"] = [r for r in route["spec"]["rules"] if r.get("backendRefs")]
    assert route_for(route, "/execution/health"), "without its rule the Execution API reaches the api-server"


@pytest.mark.parametrize("stack", ["dev", "prod", "local"])
def test_nothing_with_port_forward(stack: str) -> None:
    settings = config_for(stack).settings
    assert not settings.ui.gateway
    assert ui_gateway_objects(settings, CLIENT_ID, VAULT_URI) == [], stack


def test_the_gateway_namespace_and_its_pod_security() -> None:
    """Baseline enforced, restricted warned and audited: Istio's gateway pods
    set no seccomp profile by default (ui_gateway.py cites the template)."""
    namespace = manifests_of(UI_KEY_VAULT)["Namespace"]["metadata"]
    assert namespace["name"] == "airflow-ui"
    assert namespace["labels"] == {
        "app.kubernetes.io/part-of": "airflow",
        "pod-security.kubernetes.io/enforce": "baseline",
        "pod-security.kubernetes.io/audit": "restricted",
        "pod-security.kubernetes.io/warn": "restricted"}, "Namespace airflow-ui"


def test_the_cel_rules_the_objects_meet() -> None:
    """tests/schemas.py does not evaluate the CRDs' CEL rules; those the
    objects' fields fall under, restated (v1.4.1 CRDs, x-kubernetes-validations)."""
    for ui in (UI_KEY_VAULT, UI_SECRET):
        m = manifests_of(ui)
        listeners = m["Gateway"]["spec"]["listeners"]
        assert len({lst["name"] for lst in listeners}) == len(listeners), "Listener name must be unique"
        for lst in listeners:
            tls = lst["tls"]
            assert lst["protocol"] == "HTTPS" and tls["mode"] == "Terminate", "tls mode must be Terminate for HTTPS"
            assert tls.get("certificateRefs") or tls.get("options"), "certificateRefs or options with Terminate"
        for rule in m["HTTPRoute"]["spec"]["rules"]:
            for match in rule["matches"]:
                value = match["path"]["value"]
                assert value.startswith("/") and "//" not in value and "/./" not in value, value
            for ref in rule.get("backendRefs", []):
                assert ref["kind"] != "Service" or "port" in ref, "Must have port for Service reference"


# --------------------------------------------------------------------------
# Strict validation against the Gateway API's own CRDs
# --------------------------------------------------------------------------

@pytest.mark.parametrize("ui", [UI_KEY_VAULT, UI_SECRET], ids=["keyVaultCertificate", "secretName"])
def test_every_rendered_object_of_a_gateway_stack_validates(tmp_path: Path, ui: dict[str, Any]) -> None:
    """The offline render of prod with the preamble's `ui` block: every object,
    the Gateway and HTTPRoute against the v1.4.1 CRDs, strictly."""
    manifests = rendered(tmp_path, ui)
    kinds = [m["kind"] for m in manifests]
    assert {"Gateway", "HTTPRoute"} <= set(kinds), kinds
    assert kinds.count("Namespace") == 2, "the Airflow namespace and the gateway's"
    failures = []
    for m in manifests:
        try:
            validate_manifest(m, KUBERNETES_VERSION)
        except Exception as err:  # every failure, listed with its object
            failures.append(f"{m['kind']}/{m['metadata'].get('name')}: {err}")
    assert not failures, "\n".join(failures)
    assert {"Gateway", "HTTPRoute"} <= CUSTOM_KINDS


@pytest.mark.parametrize(("kind", "change", "says"), [
    ("Gateway", lambda m: m["spec"]["listeners"][0]["tls"].update(modes="Terminate"), "modes"),
    ("Gateway", lambda m: m["spec"]["listeners"][0].update(port="443"), "port"),
    ("Gateway", lambda m: m["spec"].update(gatewayClass="approuting-istio"), "gatewayClass"),
    ("Gateway", lambda m: m["spec"]["listeners"][0]["allowedRoutes"]["namespaces"].update(from_="Selector"),
     "from_"),
    ("Gateway", lambda m: m["spec"]["listeners"][0].update(hostname="Airflow.Example.com"), "hostname"),
    ("HTTPRoute", lambda m: m["spec"]["rules"][0]["matches"][0]["path"].update(type="Prefix"), "type"),
    ("HTTPRoute", lambda m: m["spec"]["rules"][1]["backendRefs"][0].update(servicePort=8080), "servicePort"),
    ("HTTPRoute", lambda m: m["spec"]["parentRefs"][0].update(sectionName="HTTPS!"), "sectionName"),
    ("HTTPRoute", lambda m: m.update(apiVersion="gateway.networking.k8s.io/v1beta2"), "apiVersion"),
    ("HTTPRoute", lambda m: m["metadata"].update(label={"a": "b"}), "label"),
])
def test_a_wrong_field_fails(kind: str, change: Any, says: str) -> None:
    manifest = manifests_of(UI_KEY_VAULT)[kind]
    validate_manifest(manifest, KUBERNETES_VERSION)
    change(manifest)
    with pytest.raises(Exception, match=says) as err:
        validate_manifest(manifest, KUBERNETES_VERSION)
    assert err.type.__name__ in ("SchemaError", "ValidationError"), err.value


def test_a_kubernetes_version_without_vendored_crds_is_refused() -> None:
    with pytest.raises(SchemaError, match=r"no Gateway API CRDs vendored for Kubernetes 1\.36"):
        validate_manifest(manifests_of(UI_SECRET)["Gateway"], "1.36.0")


def test_the_program_declares_them_and_they_validate() -> None:
    """Under Pulumi mocks (__main__.py through Workloads): the Gateway and the
    HTTPRoute as custom resources, after their namespaces, and valid."""
    run = shared_run("prod", {**stack_file_config("prod"), "airflow-aks:ui": UI_SECRET})
    assert run.error is None, run.error
    gateway = run.manifest("Gateway", names.UI_GATEWAY)
    route = run.manifest("HTTPRoute", names.UI_ROUTE)
    assert gateway["metadata"]["namespace"] == "airflow-ui" and route["metadata"]["namespace"] == "airflow"
    for m in (gateway, route, run.manifest("Namespace", "airflow-ui")):
        validate_manifest(m, KUBERNETES_VERSION)
    assert to_manifest(objects_of(UI_SECRET)["Gateway"]) == gateway, "the render and the program agree"
    for kind in ("Gateway", "HTTPRoute"):
        assert len(run.of_type(f"kubernetes:gateway.networking.k8s.io/v1:{kind}")) == 1, kind
    assert "workloads-ui-namespace" in run.options_of("workloads-ui-gateway").waits_for(), \
        "Gateway airflow-ui: after its namespace"
    assert "workloads-namespace" in run.options_of("workloads-ui-route").waits_for(), \
        "HTTPRoute airflow-ui: after the Airflow namespace"
