"""Small builders shared by the Kubernetes components."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as kubernetes
from pulumi_kubernetes._tables import SNAKE_TO_CAMEL_CASE_TABLE

from components.model.capacity import PodResources
from components.model.images import has_digest

# Pod-template annotation whose value changes whenever the configuration a pod
# reads from a file or ConfigMap changes, so Kubernetes rolls the pods.
CHECKSUM_ANNOTATION = "airflow-aks/config-checksum"


def provider(name: str, opts: pulumi.ResourceOptions | None = None, **connection: Any) -> kubernetes.Provider:
    """The Kubernetes provider every object of the deployment goes through.

    enableConfigMapMutable: without it pulumi-kubernetes replaces a ConfigMap
    whose data changes (provider/pkg/provider/provider.go treats ConfigMaps as
    immutable unless the flag is set), so a fixed-name ConfigMap such as
    airflow-config would be deleted and created again on every concurrency
    change. With it the ConfigMap is updated in place and the pods roll through
    the checksum annotation of their template.
    """
    return kubernetes.Provider(name, enable_config_map_mutable=True, opts=opts, **connection)


def checksum(*texts: str) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return digest.hexdigest()


def resources(res: PodResources) -> dict[str, Any]:
    return {
        "requests": {"cpu": f"{res.cpu_request_millicores}m", "memory": f"{res.memory_request_mib}Mi"},
        "limits": {"cpu": f"{res.cpu_limit_millicores}m", "memory": f"{res.memory_limit_mib}Mi"},
    }


def keeping_claim_templates(obj: KubeObject) -> KubeObject:
    """A data StatefulSet that keeps the volumeClaimTemplates a stack deployed before commit 8a2887f has.

    Those stacks' PostgreSQL and RabbitMQ StatefulSets made their claims from
    a template named `data` (data-<statefulset>-0). The API server refuses to
    change a StatefulSet's templates and pulumi-kubernetes replaces it for
    them (diff.go), which would start the pod on the new, empty claim. Left
    as deployed, the template keeps its claim: the StatefulSet controller
    mounts a template's claim over the pod volume of the same name
    (kubernetes pkg/controller/statefulset/stateful_set_utils.go,
    updateStorage), so those pods keep their data and every later stack has
    no template to keep.
    """
    return dataclasses.replace(obj, ignore_changes=("spec.volumeClaimTemplates",))


def persistent_volume_claim(name: str, namespace: str, labels: dict[str, str], storage_gib: int) -> KubeObject:
    """A claim of its own rather than a StatefulSet volumeClaimTemplate.

    pulumi-kubernetes replaces a StatefulSet whose volumeClaimTemplates change
    (provider/pkg/provider/diff.go lists them as force-new, as the API server
    refuses to update them), and a template-made claim never grows anyway. A
    claim's storage request can be raised in place: the AKS default storage
    class (managed-csi) allows volume expansion and Azure Disk expands online.
    """
    return KubeObject("PersistentVolumeClaim", "data", {
        # No await: pulumi-kubernetes waits for a claim to be Bound on every
        # update (pulumi-kubernetes#4181), and under WaitForFirstConsumer (AKS's
        # managed-csi) a claim no pod mounts never is, such as the claim a
        # stack from before 8a2887f has beside its template's (CHANGELOG
        # 0.2.0); the StatefulSet's own await reports a claim that fails.
        "metadata": {"name": name, "namespace": namespace, "labels": labels,
                     "annotations": {"pulumi.com/skipAwait": "true"}},
        "spec": {"access_modes": ["ReadWriteOnce"], "resources": {"requests": {"storage": f"{storage_gib}Gi"}}},
    }, holds_data=True)


# The container runtime's default seccomp profile, on every pod: the
# namespace enforces Pod Security Admission `restricted`, which requires it.
RUNTIME_DEFAULT_SECCOMP = {"type": "RuntimeDefault"}
# Namespace labels for Pod Security Admission: every pod of the deployment
# satisfies `restricted` (non-root, no privilege escalation, all capabilities
# dropped, RuntimeDefault seccomp, only configMap/secret/projected/emptyDir/PVC
# volumes), so the API server refuses a pod that does not.
POD_SECURITY_LABELS = {f"pod-security.kubernetes.io/{mode}": "restricted" for mode in ("enforce", "audit", "warn")}
# checkov reads `checkov.io/skip<N>: <check id>=<reason>` annotations on an
# object's metadata and skips that check for that object only.
CHECKOV_SKIP_PREFIX = "checkov.io/skip"


# For an image named by tag alone (an images.json entry no public source gave a
# digest for): checkov passes CKV_K8S_15 and CKV_K8S_43 for an image with a digest,
# which IfNotPresent pulls exactly, and fails both for a tag.
TAG_ONLY_SKIPS = {
    "CKV_K8S_15": "the image has no known digest yet (components/model/images.json says why); it is pulled "
                  "once per node by its release tag, and Always would make every pod start depend on the registry",
    "CKV_K8S_43": "the image has no known digest yet (components/model/images.json says why); "
                  "scripts/image-digests adds it from the registry",
}


def image_skips(*images: str) -> dict[str, str]:
    """The digest checks' skips for a pod whose images include one named by tag alone."""
    return {} if all(has_digest(i) for i in images) else dict(TAG_ONLY_SKIPS)


def checkov_skips(reasons: dict[str, str]) -> dict[str, str]:
    """Annotations skipping checkov checks on one object, each with its reason."""
    for check, reason in reasons.items():
        if not reason.strip() or "=" in reason:
            raise ValueError(f"checkov skip {check}: a reason without '=' is required")
    return {f"{CHECKOV_SKIP_PREFIX}{i}": f"{check}={reason}" for i, (check, reason) in enumerate(reasons.items(), 1)}


def skip_annotations(reasons: dict[str, str]) -> dict[str, Any]:
    """An object's metadata `annotations` for its checkov skips; none when there are none."""
    return {"annotations": checkov_skips(reasons)} if reasons else {}


def container_security() -> dict[str, Any]:
    """Container security context: nothing beyond an unprivileged process, on
    a read-only root (what a container writes goes to its declared volumes)."""
    return {"allow_privilege_escalation": False, "capabilities": {"drop": ["ALL"]}, "privileged": False,
            "run_as_non_root": True, "read_only_root_filesystem": True}


def pod_security(uid: int, gid: int, **more: Any) -> dict[str, Any]:
    """Pod security context for a pod with a persistent volume owned by `gid`.

    OnRootMismatch: the kubelet changes ownership and mode of the volume's
    files only when the volume's root does not already match, instead of on
    every mount (the default, Always), which adds group rw to every file.
    """
    return {"run_as_user": uid, "run_as_group": gid, "fs_group": gid, "run_as_non_root": True,
            "fs_group_change_policy": "OnRootMismatch", "seccomp_profile": RUNTIME_DEFAULT_SECCOMP, **more}


def service(suffix: str, name: str, namespace: str, labels: dict[str, str], port_name: str, port: int,
            headless: bool = False) -> KubeObject:
    """A Service selecting the pods labelled `labels`, one named port.

    Headless Services give each pod of a StatefulSet its own DNS name (and are
    the StatefulSet's governing Service).
    """
    return KubeObject("Service", suffix, {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            **({"cluster_ip": "None"} if headless else {}),
            "selector": labels,
            "ports": [{"name": port_name, "port": port, "target_port": port_name}],
        },
    })


def disruption_budget(suffix: str, name: str, namespace: str, labels: dict[str, str],
                      max_unavailable: int = 1) -> KubeObject:
    """A PodDisruptionBudget letting evictions (node drains, upgrades, the
    cluster autoscaler) take at most one of the pods labelled `labels` at a time.

    maxUnavailable 1 rather than minAvailable: with one replica minAvailable 1
    would block every drain until the drain times out, while maxUnavailable 1
    lets the pod go and the next eviction wait until its replacement is Ready.
    An evicted pod stops with its own terminationGracePeriodSeconds, as on any
    delete. AlwaysAllow: a pod that is not Ready (crash-looping) never blocks a
    drain, as it serves nothing anyway.
    """
    return KubeObject("PodDisruptionBudget", suffix, {
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {"max_unavailable": max_unavailable, "selector": {"match_labels": labels},
                 "unhealthy_pod_eviction_policy": "AlwaysAllow"},
    })


# --------------------------------------------------------------------------
# Objects as data: builders return these, components declare them as typed
# resources, and the offline render writes them as manifests. One source.
# --------------------------------------------------------------------------

API_VERSIONS = {
    "Namespace": "v1", "Secret": "v1", "ConfigMap": "v1", "Service": "v1", "PersistentVolumeClaim": "v1",
    "ServiceAccount": "v1", "Deployment": "apps/v1", "StatefulSet": "apps/v1", "Job": "batch/v1",
    "CronJob": "batch/v1",
    "PodDisruptionBudget": "policy/v1", "NetworkPolicy": "networking.k8s.io/v1",
    "ScaledObject": "keda.sh/v1alpha1", "TriggerAuthentication": "keda.sh/v1alpha1",
    # The Gateway API's CRDs, which AKS's managed Gateway API installs (components/kubernetes/ui_gateway.py).
    "Gateway": "gateway.networking.k8s.io/v1", "HTTPRoute": "gateway.networking.k8s.io/v1",
}
# Custom resources: declared as CustomResource, their fields already in the
# API's camelCase (the provider sends them as given).
CUSTOM_KINDS = {"ScaledObject", "TriggerAuthentication", "Gateway", "HTTPRoute"}
_RESOURCE_TYPES: dict[str, type[pulumi.CustomResource]] = {
    "Namespace": kubernetes.core.v1.Namespace,
    "Secret": kubernetes.core.v1.Secret,
    "ConfigMap": kubernetes.core.v1.ConfigMap,
    "Service": kubernetes.core.v1.Service,
    "PersistentVolumeClaim": kubernetes.core.v1.PersistentVolumeClaim,
    "ServiceAccount": kubernetes.core.v1.ServiceAccount,
    "Deployment": kubernetes.apps.v1.Deployment,
    "StatefulSet": kubernetes.apps.v1.StatefulSet,
    "Job": kubernetes.batch.v1.Job,
    "CronJob": kubernetes.batch.v1.CronJob,
    "PodDisruptionBudget": kubernetes.policy.v1.PodDisruptionBudget,
    "NetworkPolicy": kubernetes.networking.v1.NetworkPolicy,
}
# Kinds a pod refers to by name: a workload waits for those of its component.
_REFERENCED_KINDS = {"ConfigMap", "PersistentVolumeClaim", "Secret"}
# Maps whose keys are the user's (label names, file names, variable names),
# never field names to translate.
_USER_MAPS = {"labels", "annotations", "data", "string_data", "node_selector", "match_labels"}


@dataclass(frozen=True)
class KubeObject:
    """One Kubernetes object: its kind, the suffix of its Pulumi name, and its fields
    (metadata, spec, data, ...) with snake_case keys as pulumi_kubernetes takes them."""

    kind: str
    suffix: str
    fields: dict[str, Any]
    stage: str = ""
    # Holds data that is gone with the object (a claim's disk): protected
    # from deletion when the stack config says `protect`.
    holds_data: bool = False
    # Paths a later `pulumi up` leaves as the deployed stack has them.
    ignore_changes: tuple[str, ...] = ()

    @property
    def name(self) -> str | None:
        return self.fields.get("metadata", {}).get("name")


def declare(obj: KubeObject, component_name: str, opts: pulumi.ResourceOptions) -> pulumi.CustomResource:
    name = f"{component_name}-{obj.suffix}"
    if obj.kind in CUSTOM_KINDS:
        return kubernetes.apiextensions.CustomResource(name, api_version=API_VERSIONS[obj.kind], kind=obj.kind,
                                                       **obj.fields, opts=opts)
    return _RESOURCE_TYPES[obj.kind](name, **obj.fields, opts=opts)


# Field names the provider's table lacks (it translates them through the typed
# args); the render must send the same names.
_EXTRA_CAMEL = {"unhealthy_pod_eviction_policy": "unhealthyPodEvictionPolicy", "time_zone": "timeZone"}


def _camel(value: Any, user_map: bool = False) -> Any:
    if isinstance(value, dict):
        return {
            (key if user_map else SNAKE_TO_CAMEL_CASE_TABLE.get(key, _EXTRA_CAMEL.get(key, key))):
                _camel(item, key in _USER_MAPS)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_camel(item) for item in value]
    return value


def to_manifest(obj: KubeObject) -> dict[str, Any]:
    """The object as the Kubernetes API sees it (camelCase fields, apiVersion and kind)."""
    return {"apiVersion": API_VERSIONS[obj.kind], "kind": obj.kind, **_camel(obj.fields)}


class ObjectsComponent(pulumi.ComponentResource):
    """A component that declares a builder's objects as its children, after `after`."""

    declared: dict[tuple[str, str], pulumi.CustomResource]

    def __init__(self, type_token: str, name: str, objects: list[KubeObject],
                 after: Sequence[pulumi.Resource] = (), protect: bool = False,
                 opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(type_token, name, None, opts)
        self.declared = {}
        # Objects of this component that others refer to by name (claims,
        # ConfigMaps) come first, so the workload can wait for them.
        for obj in sorted(objects, key=lambda o: o.kind not in _REFERENCED_KINDS):
            referenced = [d for (kind, _), d in self.declared.items() if kind in _REFERENCED_KINDS]
            depends = [*after, *(referenced if obj.kind not in _REFERENCED_KINDS else [])]
            child = pulumi.ResourceOptions(parent=self, depends_on=depends, protect=protect and obj.holds_data,
                                           ignore_changes=list(obj.ignore_changes) or None)
            self.declared[(obj.kind, obj.suffix)] = declare(obj, name, child)
        self.register_outputs({})
