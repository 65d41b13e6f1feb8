"""Run the Pulumi program for a stack file under SDK mocks and record what it declares.

Each run happens in a fresh ``contextvars.Context`` so that the SDK's per-run
state (root stack, config map) never leaks from one run into the next.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextvars
import gc
import hashlib
import json
import pickle
import runpy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func

from components.azure import acr_auth
from components.config import stack_file_config
from components.model import names
from tests.upgrade.recorder import RecordingMonitor, Registration, without_stack_traces

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "airflow-aks"


def cli_form(config: dict[str, Any]) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: strings, objects as JSON,
    a YAML null as "" (pulumi/pulumi#19483)."""
    out = {}
    for key, value in config.items():
        if value is None:
            out[key] = ""
        elif isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


@dataclass
class DeclaredResource:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None = None


@dataclass
class DeclaredOptions:
    """What the program passed as ResourceOptions, which the mock monitor does not see."""

    type: str
    name: str
    resource: pulumi.Resource
    parent: pulumi.Resource | None
    protect: bool
    depends_on: list[pulumi.Resource]
    ignore_changes: list[str]
    provider: pulumi.ProviderResource | None
    props: Any = None
    # Per top-level input, the names of the resources its Output values carry:
    # the dependencies the engine records for that input beyond depends_on.
    input_dependencies: dict[str, set[str]] = field(default_factory=dict)

    def waits_for(self) -> set[str]:
        """Every resource this one waits for: depends_on and its inputs' dependencies."""
        named = {r._name for r in self.depends_on}  # type: ignore[attr-defined]
        return named.union(*self.input_dependencies.values())


SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
TENANT = "99999999-8888-7777-6666-555555555555"
DEPLOYER_OBJECT_ID = "dddddddd-0000-0000-0000-000000000001"
KUBELET_OBJECT_ID = "kkkkkkkk-0000-0000-0000-000000000002"
CLUSTER_PRINCIPAL_ID = "aaaaaaaa-0000-0000-0000-000000000006"
# As AKS publishes it: regional host, tenant, a GUID, and a trailing slash.
OIDC_ISSUER_URL = f"https://westeurope.oic.prod-aks.azure.com/{TENANT}/cccccccc-0000-0000-0000-000000000003/"
TASK_LOG_PRINCIPAL_ID = "pppppppp-0000-0000-0000-000000000004"
TASK_LOG_CLIENT_ID = "cccccccc-1111-0000-0000-000000000005"
# The database backup's identity (its logical name says "backup").
BACKUP_PRINCIPAL_ID = "pppppppp-0000-0000-0000-000000000006"
BACKUP_CLIENT_ID = "cccccccc-1111-0000-0000-000000000007"
# The api-server's log reader identity (its logical name says "reader").
LOG_READER_PRINCIPAL_ID = "pppppppp-0000-0000-0000-000000000010"
LOG_READER_CLIENT_ID = "cccccccc-1111-0000-0000-000000000011"
# The UI gateway's TLS identity (its logical name says "ui-tls").
UI_TLS_PRINCIPAL_ID = "pppppppp-0000-0000-0000-000000000008"
UI_TLS_CLIENT_ID = "cccccccc-1111-0000-0000-000000000009"
ENTRA_TOKEN = "entra-access-token"
# What listClusterUserCredential returns for a cluster with local accounts:
# a client certificate and key, and a token. The cluster entry is the one the
# recorded states' provider has (tests/upgrade/states).
LOCAL_ACCOUNT_KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: aks, cluster: {server: "https://aks.example.invalid:443"}}]
users: [{name: clusterUser_rg_aks, user: {client-certificate-data: MOCKCERT, client-key-data: MOCKKEY,
  token: MOCKTOKEN}}]
contexts: [{name: aks, context: {cluster: aks, user: clusterUser_rg_aks}}]
current-context: aks
"""
# And with Entra ID and `format: exec`: kubelogin set for a device-code
# sign-in with AKS's public client (Azure/kubelogin docs/book/src/concepts/
# aks.md), no secret.
ENTRA_EXEC_KUBECONFIG = f"""apiVersion: v1
kind: Config
clusters: [{{name: aks, cluster: {{server: "https://aks.example.invalid:443"}}}}]
users:
- name: clusterUser_rg_aks
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1beta1
      command: kubelogin
      args: [get-token, --environment, AzurePublicCloud, --server-id, 6dae42f8-4368-4678-94ff-3960e28e3630,
             --client-id, 80faf920-1908-4b52-b5ef-a8e7bedfc67a, --tenant-id, {TENANT}, --login, devicecode]
contexts: [{{name: aks, context: {{cluster: aks, user: clusterUser_rg_aks}}}}]
current-context: aks
"""


def _rg_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{name}"


class Mocks(pulumi.runtime.Mocks):
    """Answers every resource registration and invoke of the program, as Azure would.

    ``updating`` names Azure resources to answer as pulumi-azure-native does in
    the preview of an update: the new inputs projected onto the outputs, plus
    name and location from the old state, everything else unknown
    (provider/pkg/provider/provider.go, Update with preview). ``live`` is the
    cluster as Azure has it for reads (getManagedCluster): by default what the
    program declares; a test may say it runs another system pool VM size, or
    add the worker pools a deployed stack has (``live_worker_pools``, as AKS
    lists agentPoolProfiles: name, count, enableAutoScaling, maxCount), or
    fields of the system pool that differ from the declared ones
    (``live_system_pool``), or of the cluster (``live_cluster``: networkProfile
    ...). ``previous_outputs`` are the stack's outputs from
    its last update, which a StackReference to the stack itself reads.
    """

    def __init__(self, updating: frozenset[str] = frozenset(), live_system_vm_size: str | None = None,
                 live_worker_pools: Sequence[Mapping[str, Any]] = (),
                 previous_outputs: Mapping[str, Any] | None = None,
                 live_system_pool: Mapping[str, Any] | None = None,
                 live_cluster: Mapping[str, Any] | None = None) -> None:
        self.live_worker_pools = [dict(p) for p in live_worker_pools]
        self.live_system_pool = dict(live_system_pool or {})
        self.live_cluster = dict(live_cluster or {})
        self.previous_outputs = dict(previous_outputs or {})
        self.resources: list[DeclaredResource] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []
        self.generated: list[str] = []
        self.updating = updating
        self.live_system_vm_size = live_system_vm_size
        self.clusters: dict[str, dict[str, Any]] = {}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        if args.typ == "pulumi:pulumi:StackReference":
            # The stack's own outputs from its last update, as the backend has them.
            return args.name, {"name": args.inputs["name"], "outputs": self.previous_outputs,
                               "secretOutputNames": []}
        self.resources.append(DeclaredResource(args.typ, args.name, dict(args.inputs), args.provider))
        state = dict(args.inputs)
        rid = f"{args.name}-id"
        if args.typ == "azure-native:resources:ResourceGroup":
            state["name"] = f"{args.name}-rg0001"
            rid = _rg_id(state["name"])
        elif args.typ == "azure-native:containerregistry:Registry":
            state["name"] = f"{args.name}0001"
            state["login_server"] = f"{state['name']}.azurecr.io"
            state["loginServer"] = state["login_server"]
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.ContainerRegistry/registries/{state['name']}")
        elif args.typ == "azure-native:containerservice:ManagedCluster":
            state["name"] = f"{args.name}0001"
            state["identityProfile"] = {"kubeletidentity": {
                "objectId": KUBELET_OBJECT_ID, "clientId": "kubelet-client", "resourceId": "kubelet-rid"}}
            state["identity"] = {"type": "SystemAssigned", "principalId": CLUSTER_PRINCIPAL_ID, "tenantId": TENANT}
            if (args.inputs.get("oidcIssuerProfile") or {}).get("enabled"):
                state["oidcIssuerProfile"] = {"enabled": True, "issuerURL": OIDC_ISSUER_URL}
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.ContainerService/managedClusters/{state['name']}")
            self.clusters[state["name"]] = dict(state)
        elif args.typ == "azure-native:storage:StorageAccount":
            state["name"] = f"{args.name}0001"
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.Storage/storageAccounts/{state['name']}")
            # Azure reports each endpoint with a trailing slash.
            state["primaryEndpoints"] = {"blob": f"https://{state['name']}.blob.core.windows.net/",
                                         "dfs": f"https://{state['name']}.dfs.core.windows.net/"}
        elif args.typ == "azure-native:storage:BlobContainer":
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/Microsoft.Storage/storageAccounts/"
                   f"{args.inputs['accountName']}/blobServices/default/containers/{args.inputs['containerName']}")
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            state["name"] = f"{args.name}0001"
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.ManagedIdentity/userAssignedIdentities/{state['name']}")
            if "backup" in args.name:
                state.update(principalId=BACKUP_PRINCIPAL_ID, clientId=BACKUP_CLIENT_ID, tenantId=TENANT)
            elif "ui-tls" in args.name:
                state.update(principalId=UI_TLS_PRINCIPAL_ID, clientId=UI_TLS_CLIENT_ID, tenantId=TENANT)
            elif "reader" in args.name:
                state.update(principalId=LOG_READER_PRINCIPAL_ID, clientId=LOG_READER_CLIENT_ID, tenantId=TENANT)
            else:
                state.update(principalId=TASK_LOG_PRINCIPAL_ID, clientId=TASK_LOG_CLIENT_ID, tenantId=TENANT)
        elif args.typ == "azure-native:keyvault:Vault":
            # Auto-named like the storage account; Azure reports the URI with a trailing slash.
            state["name"] = f"{args.name}0001"
            state["properties"] = {**dict(args.inputs.get("properties") or {}),
                                   "vaultUri": f"https://{state['name']}.vault.azure.net/"}
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.KeyVault/vaults/{state['name']}")
        elif args.typ == "azure-native:network:VirtualNetwork":
            state["name"] = f"{args.name}0001"
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.Network/virtualNetworks/{state['name']}")
        elif args.typ == "azure-native:network:Subnet":
            state["name"] = f"{args.name}0001"
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/Microsoft.Network/virtualNetworks/"
                   f"{args.inputs['virtualNetworkName']}/subnets/{state['name']}")
        elif args.typ == "azure-native:privatedns:PrivateZone":
            state["name"] = args.inputs["privateZoneName"]
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.Network/privateDnsZones/{state['name']}")
        elif args.typ == "azure-native:dbforpostgresql:Server":
            # As Azure names a server in a VNet: its public-style FQDN, which
            # the linked private DNS zone resolves to its private address.
            state["name"] = f"{args.name}0001"
            state["fullyQualifiedDomainName"] = f"{state['name']}.postgres.database.azure.com"
            rid = (f"{_rg_id(args.inputs['resourceGroupName'])}/providers/"
                   f"Microsoft.DBforPostgreSQL/flexibleServers/{state['name']}")
        elif args.typ == "random:index/randomPassword:RandomPassword":
            # Distinctive values, so tests can search every object for leaks.
            state["result"] = f"MOCKSECRET{args.name.replace('-', '')}"[: int(args.inputs["length"])].ljust(
                int(args.inputs["length"]), "x")
            self.generated.append(state["result"])
        elif args.typ == "random:index/randomBytes:RandomBytes":
            raw = f"MOCKSECRET-bytes-{args.name}".encode()[:32].ljust(32, b"+")
            state["base64"] = base64.b64encode(raw).decode()
            state["hex"] = raw.hex()
            self.generated += [state["base64"], state["base64"].replace("+", "-").replace("/", "_")]
        elif args.typ == "docker-build:index:Image":
            # As docker-build reports it: a pushed image's ref carries its digest,
            # a loaded one is just its tag. The digest follows the build's
            # inputs, so a changed build reaches what pulls the image; the registry
            # credentials are no part of the image.
            tag = args.inputs["tags"][0]
            if args.inputs.get("push"):
                inputs = {k: v for k, v in plain(dict(args.inputs)).items() if k != "registries"}
                build = json.dumps(inputs, sort_keys=True, default=str)
                state["digest"] = "sha256:" + hashlib.sha256(build.encode()).hexdigest()
                state["ref"] = f"{tag}@{state['digest']}"
            else:
                state["ref"] = tag
        if args.name in self.updating and args.typ.startswith("azure-native:"):
            kept = {k: state[k] for k in ("name", "location") if k in state}
            state = {**dict(args.inputs), **kept}
        return rid, state

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append((args.token, dict(args.args)))
        if args.token == "azure-native:authorization:getClientConfig":
            return {"clientId": "deployer", "objectId": DEPLOYER_OBJECT_ID,
                    "subscriptionId": SUBSCRIPTION, "tenantId": TENANT}
        if args.token == "azure-native:authorization:getClientToken":
            return {"token": ENTRA_TOKEN}
        if args.token == "azure-native:containerservice:getManagedCluster":
            cluster = self.clusters[args.args["resourceName"]]
            pools = [dict(p) for p in cluster["agentPoolProfiles"]]
            if self.live_system_vm_size:
                pools[0]["vmSize"] = self.live_system_vm_size
            pools[0].update(self.live_system_pool)
            pools += self.live_worker_pools
            read = {"name": cluster["name"], "identityProfile": cluster["identityProfile"],
                    "identity": cluster.get("identity"),
                    "agentPoolProfiles": pools, "oidcIssuerProfile": cluster.get("oidcIssuerProfile"),
                    "networkProfile": cluster.get("networkProfile"),
                    "apiServerAccessProfile": cluster.get("apiServerAccessProfile"),
                    "workloadAutoScalerProfile": cluster.get("workloadAutoScalerProfile")}
            return {**read, **self.live_cluster}
        if args.token == "azure-native:containerservice:listManagedClusterUserCredentials":
            # `format` applies to clusters with Entra ID only (the API's CredentialFormatParameter).
            cluster = self.clusters.get(args.args.get("resourceName"), {})
            entra = bool((cluster.get("aadProfile") or {}).get("managed")) and args.args.get("format") == "exec"
            listed = ENTRA_EXEC_KUBECONFIG if entra else LOCAL_ACCOUNT_KUBECONFIG
            value = base64.b64encode(listed.encode()).decode()
            return {"kubeconfigs": [{"name": "clusterUser", "value": value}]}
        raise NotImplementedError(f"no mock answer for invoke {args.token}")


class TokenExchange:
    """Stands in for ACR's /oauth2/exchange (no network here) and records the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, login_server: str, tenant_id: str, access_token: str, timeout: float = 30.0) -> str:
        self.calls.append((login_server, tenant_id, access_token))
        return f"acr-refresh-token-for-{login_server}"


@dataclass
class ProgramRun:
    stack: str
    resources: list[DeclaredResource]
    invokes: list[tuple[str, dict[str, Any]]]
    generated: list[str]
    exchange: TokenExchange
    outputs: dict[str, Any] = field(default_factory=dict)
    secret_outputs: set[str] = field(default_factory=set)
    options: list[DeclaredOptions] = field(default_factory=list)
    # Every registration as the engine receives it (URN, protect, aliases, ...).
    registrations: list[Registration] = field(default_factory=list)
    error: BaseException | None = None

    def options_of(self, name: str) -> DeclaredOptions:
        found = [o for o in self.options if o.name == name]
        assert len(found) == 1, f"expected one resource named {name}, found {len(found)}"
        return found[0]

    def of_type(self, typ: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == typ]

    def manifests(self) -> list[dict[str, Any]]:
        """Every Kubernetes object the program declared, as a manifest."""
        return [plain(r.inputs) for r in self.resources
                if r.type.startswith("kubernetes:") and not r.type.startswith("pulumi:providers")]

    def manifest(self, kind: str, name: str) -> dict[str, Any]:
        found = [m for m in self.manifests() if m["kind"] == kind and m["metadata"].get("name") == name]
        assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
        return found[0]

    def one(self, typ: str) -> DeclaredResource:
        found = self.of_type(typ)
        assert len(found) == 1, f"expected one {typ}, found {[r.name for r in found]}"
        return found[0]


# The key the Pulumi wire format uses to mark a secret value.
SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d"


def is_secret(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG_KEY in value


def plain(value: Any) -> Any:
    """Inputs as Kubernetes would see them: secrets unwrapped, whole numbers as int."""
    if is_secret(value):
        return plain(value["value"])
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return await _resolve(await value.future())
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _resolve(v) for v in value]
    return value


async def _dependency_names(value: Any) -> set[str]:
    if isinstance(value, pulumi.Output):
        found = {r._name for r in await value.resources()}  # type: ignore[attr-defined]
        return found | await _dependency_names(await value.future(with_unknowns=True))
    if isinstance(value, dict):
        return set().union(*[await _dependency_names(v) for v in value.values()])
    if isinstance(value, (list, tuple)):
        return set().union(*[await _dependency_names(v) for v in value])
    return set()


async def _record_input_dependencies(options: list[DeclaredOptions]) -> None:
    """Each option's input_dependencies, all in one pass of the loop."""
    with_props = [o for o in options if isinstance(o.props, dict)]
    found = await asyncio.gather(*[_dependency_names(v) for o in with_props for v in o.props.values()])
    names_of = iter(found)
    for o in with_props:
        o.input_dependencies = {k: next(names_of) for k in o.props}


class _Inline(concurrent.futures.ThreadPoolExecutor):
    """An executor that runs what it is given at once, on the caller's thread (asyncio takes
    a ThreadPoolExecutor only; this one never starts a thread)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[Any]:
        done: concurrent.futures.Future[Any] = concurrent.futures.Future()
        try:
            done.set_result(fn(*args, **kwargs))
        except BaseException as err:  # handed to whoever awaits the call, as a thread pool would
            done.set_exception(err)
        return done


def component_secret_values(run: ProgramRun) -> dict[str, str]:
    """Every key of the Airflow components' Secrets (airflow-env-<component>), each
    with the one value all the Secrets that hold it agree on."""
    values: dict[str, str] = {}
    for r in run.of_type("kubernetes:core/v1:Secret"):
        name = plain(r.inputs)["metadata"]["name"]
        if name.startswith(f"{names.ENV_SECRET}-"):
            for key, value in plain(r.inputs["stringData"]).items():
                assert values.setdefault(key, value) == value, f"Secret {name}: {key} differs from another's"
    return values


def run_program(stack: str, config: dict[str, Any] | None = None, *, preview: bool = False,
                updating: frozenset[str] = frozenset(), live_system_vm_size: str | None = None,
                live_worker_pools: Sequence[Mapping[str, Any]] = (),
                previous_outputs: Mapping[str, Any] | None = None,
                live_system_pool: Mapping[str, Any] | None = None,
                live_cluster: Mapping[str, Any] | None = None,
                secret_keys: Sequence[str] = (),
                program: Callable[[], None] | None = None) -> ProgramRun:
    """Run __main__.py with the given YAML-form config (default: the stack file's).

    ``updating``, ``live_system_vm_size``, ``live_worker_pools`` and
    ``previous_outputs`` describe the deployed stack a preview runs against
    (see Mocks). ``secret_keys``: the config keys (with their project
    prefix) the CLI would mark as secrets. ``program``: what to run instead of
    __main__.py (a test that declares more around the program's objects).
    """
    values = stack_file_config(stack) if config is None else config
    mocks = Mocks(updating=updating, live_system_vm_size=live_system_vm_size, live_worker_pools=live_worker_pools,
                  previous_outputs=previous_outputs, live_system_pool=live_system_pool, live_cluster=live_cluster)
    monitor = RecordingMonitor(mocks)
    exchange = TokenExchange()
    run = ProgramRun(stack=stack, resources=mocks.resources, invokes=mocks.invokes,
                     generated=mocks.generated, exchange=exchange)

    def record_options(args: pulumi.ResourceTransformationArgs) -> None:
        opts = args.opts or pulumi.ResourceOptions()
        depends = opts.depends_on
        if depends is None:
            depends = []
        elif not isinstance(depends, list):
            depends = [depends]
        run.options.append(DeclaredOptions(
            type=args.type_, name=args.name, resource=args.resource, parent=opts.parent,
            protect=bool(opts.protect), depends_on=list(depends),
            ignore_changes=list(opts.ignore_changes or []), provider=opts.provider, props=args.props,
        ))
        return None

    def go() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        # The SDK hands each call to the monitor to the loop's default executor;
        # the mock monitor answers at once, so it answers on the loop's thread.
        loop.set_default_executor(_Inline())
        pulumi.runtime.set_all_config(cli_form(values), list(secret_keys))
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=monitor,
                                 organization="organization")
        # MockSettings brings no set of pending outputs of its own, so the SDK's
        # shared default would carry the tasks of a run that failed into this one.
        runtime_settings.SETTINGS.outputs = set()
        pulumi.runtime.register_stack_transformation(record_options)
        try:
            def main() -> None:
                runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

            try:
                loop.run_until_complete(run_pulumi_func(program or main))
            except BaseException as err:  # the test inspects it
                run.error = err
                return
            loop.run_until_complete(_record_input_dependencies(run.options))
            root = runtime_settings.get_root_resource()
            exported = dict(root.outputs)  # type: ignore[union-attr]
            run.outputs = loop.run_until_complete(_resolve(exported))
            run.secret_outputs = {
                k for k, v in exported.items()
                if isinstance(v, pulumi.Output) and loop.run_until_complete(v.is_secret())
            }
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    original = acr_auth.exchange_for_refresh_token
    acr_auth.exchange_for_refresh_token = exchange
    # A run allocates a great many objects: with the collector on, that triggers
    # full collections, which walk every object the session keeps (the shared
    # runs) and took about 40 % of a run. Its garbage is collected after.
    collecting = gc.isenabled()
    gc.disable()
    try:
        with without_stack_traces():
            contextvars.Context().run(go)
    finally:
        acr_auth.exchange_for_refresh_token = original
        if collecting:
            gc.enable()
    run.registrations = monitor.registrations
    return run


def fingerprint(run: ProgramRun) -> dict[str, str]:
    """Per part of a run a test reads, a digest: to tell whether a test changed it, and where."""
    options = [(o.type, o.name, o.protect, [r._name for r in o.depends_on],  # type: ignore[attr-defined]
                o.ignore_changes, o.input_dependencies) for o in run.options]
    parts = {"resources": [vars(r) for r in run.resources], "invokes": run.invokes, "generated": run.generated,
             "exchange": run.exchange.calls, "outputs": run.outputs, "secret_outputs": run.secret_outputs,
             "options": options, "registrations": [vars(r) for r in run.registrations], "error": repr(run.error)}
    return {part: hashlib.sha256(_serialized(value)).hexdigest() for part, value in parts.items()}


def _serialized(value: Any) -> bytes:
    """A part of a run as bytes that change when it does: pickle (a tenth of JSON's time, and a
    shared run is checked at every hand-out), JSON for what pickle cannot take."""
    try:
        return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    except (pickle.PicklingError, TypeError, AttributeError):
        return json.dumps(value, default=repr).encode()


def _changed(run: ProgramRun, made: dict[str, str]) -> list[str]:
    now = fingerprint(run)
    return [part for part in made if now[part] != made[part]]


# Program runs by their arguments, with each run's fingerprint when it was made.
_SHARED: dict[str, tuple[ProgramRun, dict[str, str]]] = {}


def shared_run(stack: str, config: dict[str, Any] | None = None, **options: Any) -> ProgramRun:
    """run_program's result for these arguments, run once per test process (a run takes about a
    second) and handed to every test that asks for the same: for tests that only read it.

    A test that changes a shared run would pass its change to the next: each later call checks
    the run is as it was made, and fails the test that gets it otherwise. A test that changes
    what it is given copies it first (State.of), or calls run_program.
    """
    if "program" in options:
        raise TypeError("shared_run runs __main__.py only: call run_program for another program")
    values = stack_file_config(stack) if config is None else config
    key = json.dumps([stack, values, {k: sorted(v) if isinstance(v, (set, frozenset)) else v
                                      for k, v in sorted(options.items())}], sort_keys=True, default=repr)
    if key not in _SHARED:
        run = run_program(stack, values, **options)
        _SHARED[key] = (run, fingerprint(run))
        # Kept to the end of the session: out of the collector's sight. Every full
        # collection walked every shared run again (a quarter of a minute per
        # worker); the young collection first frees the run's cyclic garbage.
        gc.collect(1)
        gc.freeze()
    run, made = _SHARED[key]
    changed = _changed(run, made)
    assert changed == [], f"a test changed {changed} of the shared program run {key}"
    return run


def changed_shared_runs() -> dict[str, list[str]]:
    """The shared runs that are no longer as they were made: their keys, and what changed."""
    found = {key: _changed(run, made) for key, (run, made) in _SHARED.items()}
    return {key: parts for key, parts in found.items() if parts}
