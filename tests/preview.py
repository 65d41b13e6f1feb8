"""What `pulumi preview` would show for a config change, from two mocked program runs.

The engine asks each provider to diff a resource's old and new inputs; the
provider says update or replace. These are the providers' rules for the
resource types this program declares, as their source states them:

- pulumi-kubernetes, provider/pkg/provider/diff.go (forceNewProperties): the
  fields below force a replacement; everything else updates in place. And
  provider/pkg/provider/provider.go: ConfigMap data and Secret data replace
  unless the provider has enableConfigMapMutable / enableSecretMutable; an
  object named explicitly (metadata.name) is deleted before its replacement
  is created.
- pulumi-azure-native, provider/pkg/gen/replacement.go (forceNewMap), plus the
  path parameters of a resource's Azure ID (resourceGroupName, resourceName,
  agentPoolName, ...), which name a different resource when they change, and
  a tracked resource's location, which ARM specs mark create-only
  (x-ms-mutability read/create, the ARM guideline the provider follows).
  ManagedCluster's oidcIssuerProfile and securityProfile are in neither
  list: AKS turns workload identity on in place. Of networkProfile only the
  listed sub-properties replace (pulumi-azure-native#4756), the dataplane and
  policy engine among them (AKS migrates those one way only).
- pulumi-docker-build, provider/internal/image.go: a changed build (context
  hash, build args, tags) is an update that rebuilds and pushes; the new
  digest then reaches every input that carries the image ref. Its Diff
  ignores a registry's password (only address and username count), so a
  new registry token is no change.

The engine refuses to replace or delete a protected resource, and leaves out
of the diff what a resource's ignoreChanges names.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.harness import ProgramRun, plain

K8S_REPLACE: dict[str, tuple[str, ...]] = {
    "*": ("metadata.name", "metadata.namespace"),
    "StatefulSet": ("spec.podManagementPolicy", "spec.revisionHistoryLimit", "spec.selector", "spec.serviceName",
                    "spec.volumeClaimTemplates"),
    "Deployment": ("spec.selector",),
    "Job": ("spec.completions", "spec.parallelism", "spec.selector", "spec.template"),
    "PersistentVolumeClaim": ("spec.accessModes", "spec.selector", "spec.storageClassName", "spec.volumeName"),
    "Secret": ("type", "data", "stringData"),  # data: no enableSecretMutable on our provider
    "Service": ("spec.clusterIP",),
}
AZURE_REPLACE: dict[str, tuple[str, ...]] = {
    "azure-native:containerservice:AgentPool": (
        "vmSize", "gpuInstanceProfile", "resourceGroupName", "resourceName", "agentPoolName"),
    "azure-native:containerservice:ManagedCluster": (
        "dnsPrefix", "location", "nodeResourceGroup", "linuxProfile", "windowsProfile", "resourceGroupName",
        "resourceName", "networkProfile.networkPlugin", "networkProfile.networkPluginMode",
        "networkProfile.podCidr", "networkProfile.serviceCidr", "networkProfile.serviceCidrs",
        "networkProfile.dnsServiceIP", "networkProfile.networkMode", "networkProfile.networkDataplane",
        "networkProfile.networkPolicy", "networkProfile.outboundType", "diskEncryptionSetID", "fqdnSubdomain"),
    "azure-native:authorization:RoleAssignment": ("principalId", "scope", "roleAssignmentName"),
    "azure-native:resources:ResourceGroup": ("location", "resourceGroupName"),
    "azure-native:containerregistry:Registry": ("location", "resourceGroupName", "registryName"),
    "azure-native:storage:StorageAccount": ("isHnsEnabled", "location", "resourceGroupName", "accountName"),
    "azure-native:storage:BlobContainer": ("resourceGroupName", "accountName", "containerName"),
    "azure-native:storage:ManagementPolicy": ("resourceGroupName", "accountName", "managementPolicyName"),
    "azure-native:managedidentity:UserAssignedIdentity": ("location", "resourceGroupName", "resourceName"),
    "azure-native:managedidentity:FederatedIdentityCredential": (
        "resourceGroupName", "resourceName", "federatedIdentityCredentialResourceName"),
}


@dataclass(frozen=True)
class Step:
    op: str  # create, update, replace, delete
    type: str
    name: str
    paths: tuple[str, ...] = ()
    delete_first: bool = False


@dataclass
class Preview:
    steps: list[Step]
    refused: str | None = None
    protected_refusals: list[str] = field(default_factory=list)

    def of(self, op: str) -> list[Step]:
        return [s for s in self.steps if s.op == op]

    def step(self, name: str) -> Step | None:
        return next((s for s in self.steps if s.name == name), None)


def changed_paths(old: Any, new: Any, prefix: str = "") -> list[str]:
    """Dotted paths where two input trees differ (lists compare whole, like field sets)."""
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            found += changed_paths(old.get(key), new.get(key), f"{prefix}.{key}" if prefix else key)
        return found
    return [] if old == new else [prefix]


def _matches(path: str, rules: Iterable[str]) -> bool:
    return any(path == r or path.startswith(r + ".") for r in rules)


def forces_replacement(typ: str, paths: list[str], k8s_config_maps_mutable: bool = True) -> bool:
    if typ.startswith("kubernetes:"):
        kind = typ.rsplit(":", 1)[1]
        rules = K8S_REPLACE["*"] + K8S_REPLACE.get(kind, ())
        if kind == "ConfigMap" and not k8s_config_maps_mutable:
            rules += ("data", "binaryData")
        return any(_matches(p, rules) for p in paths)
    return any(_matches(p, AZURE_REPLACE.get(typ, ())) for p in paths)


def _config_maps_mutable(run: ProgramRun) -> bool:
    providers = [r for r in run.resources if r.type == "pulumi:providers:kubernetes"]
    return all(str(plain(p.inputs).get("enableConfigMapMutable")).lower() == "true" for p in providers)


def diffed(typ: str, inputs: dict[str, Any]) -> dict[str, Any]:
    """The inputs the provider's diff compares: docker-build leaves out registry passwords."""
    if typ == "docker-build:index:Image" and "registries" in inputs:
        registries = [{k: v for k, v in r.items() if k != "password"} for r in inputs["registries"]]
        return {**inputs, "registries": registries}
    return inputs


def preview(before: ProgramRun, after: ProgramRun) -> Preview:
    """The steps `pulumi preview` would list going from the stack `before` declares to `after`."""
    if after.error is not None:
        return Preview([], refused=str(after.error))
    old = {(r.type, r.name): diffed(r.type, plain(r.inputs)) for r in before.resources
           if not r.type.startswith("pulumi:")}
    new = {(r.type, r.name): diffed(r.type, plain(r.inputs)) for r in after.resources
           if not r.type.startswith("pulumi:")}
    protected = {o.name for o in before.options if o.protect}
    # ignoreChanges: the engine diffs without those paths.
    ignored = {o.name: [p.replace("[", ".").replace("]", "") for p in o.ignore_changes] for o in after.options}
    mutable = _config_maps_mutable(after)
    steps: list[Step] = []
    for key in sorted(new.keys() - old.keys()):
        steps.append(Step("create", *key))
    for key in sorted(old.keys() & new.keys()):
        paths = [p for p in changed_paths(old[key], new[key]) if not _matches(p, ignored.get(key[1], []))]
        if not paths:
            continue
        typ = key[0]
        if forces_replacement(typ, paths, mutable):
            named = typ.startswith("kubernetes:") and bool(new[key].get("metadata", {}).get("name"))
            steps.append(Step("replace", *key, tuple(paths), delete_first=named))
        else:
            steps.append(Step("update", *key, tuple(paths)))
    for key in sorted(old.keys() - new.keys()):
        steps.append(Step("delete", *key))
    refusals = [s.name for s in steps if s.op in ("replace", "delete") and s.name in protected]
    return Preview(steps, protected_refusals=refusals)


def kind_of(step: Step) -> str:
    return step.type.rsplit(":", 1)[1]


def summary(p: Preview) -> str:
    """One README cell: what the preview shows, coarsely."""
    if p.refused is not None:
        return "refused"
    if p.protected_refusals:
        return "refused (protected)"
    if not p.steps:
        return "no change"
    parts = []
    for op in ("update", "replace", "create", "delete"):
        kinds = sorted({kind_of(s) for s in p.of(op)})
        if kinds:
            parts.append(f"{op} " + ", ".join(kinds))
    return "; ".join(parts)
