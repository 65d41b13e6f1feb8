"""Strict schema validation for every object the program declares.

Kubernetes' own kinds: kubernetes-validate with the JSON schema of the target
version, strict (unknown fields are errors). KEDA's custom resources: the
models cloudcoil-models-keda generates from KEDA's CRDs, plus a walk that
rejects any field the models do not know, as `kubectl --validate=strict` does
with a CRD's schema (pydantic alone would ignore it).

The Gateway API's Gateway and HTTPRoute: the openAPIV3Schema of the v1
version of the project's own standard-channel CRDs, vendored under
tests/schemas/ at the bundle AKS's Managed Gateway API installs for the
stack's Kubernetes version (no maintained Python package has models of them:
cloudcoil publishes none for the Gateway API). Validated with jsonschema,
strict: every object schema that lists its properties admits no other
(unknown fields are errors, as the API server's strict field validation
makes them for a CRD's structural schema), and metadata as Kubernetes'
ObjectMeta. The CRDs' CEL rules (x-kubernetes-validations) are not evaluated:
tests/test_ui_gateway.py checks the ones the program's objects touch.
"""

from __future__ import annotations

import functools
import types
import typing
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pydantic
import yaml
from cloudcoil.models.keda import v1alpha1 as keda

from components.kubernetes.k8s import CUSTOM_KINDS

KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}


# The Gateway API bundle AKS's Managed Gateway API installs for each
# Kubernetes minor version (MicrosoftDocs/azure-aks-docs
# articles/aks/managed-gateway-api.md, "Supported Kubernetes versions for
# Gateway API bundle versions"); the CRDs of those vendored are here.
GATEWAY_API_BUNDLES = {"1.35": "v1.4.1"}
GATEWAY_API_CRDS = {"Gateway": "gateway.networking.k8s.io_gateways.yaml",
                    "HTTPRoute": "gateway.networking.k8s.io_httproutes.yaml"}
SCHEMA_DIR = Path(__file__).parent / "schemas"


class SchemaError(ValueError):
    pass


def _closed(schema: Any) -> Any:
    """The schema with every object that lists its properties closed to others."""
    if isinstance(schema, list):
        return [_closed(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    # Values, not schemas: left as they are. properties maps field names to schemas.
    out = {k: v if k in ("enum", "default", "example", "required", "properties") else _closed(v)
           for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {name: _closed(sub) for name, sub in schema["properties"].items()}
    if "properties" in out and "additionalProperties" not in out \
            and not out.get("x-kubernetes-preserve-unknown-fields"):
        out["additionalProperties"] = False
    return out


@functools.cache
def gateway_api_schema(kind: str, kubernetes_version: str) -> dict[str, Any]:
    """The v1 openAPIV3Schema of a Gateway API kind, closed, for the bundle of this Kubernetes version."""
    minor = ".".join(kubernetes_version.split(".")[:2])
    if minor not in GATEWAY_API_BUNDLES:
        raise SchemaError(f"{kind}: no Gateway API CRDs vendored for Kubernetes {minor} (tests/schemas/, "
                          f"known: {sorted(GATEWAY_API_BUNDLES)})")
    crd = yaml.safe_load((SCHEMA_DIR / GATEWAY_API_CRDS[kind]).read_text())
    annotations = crd["metadata"]["annotations"]
    assert annotations["gateway.networking.k8s.io/bundle-version"] == GATEWAY_API_BUNDLES[minor], kind
    assert annotations["gateway.networking.k8s.io/channel"] == "standard", kind
    assert crd["spec"]["names"]["kind"] == kind
    [v1] = [v for v in crd["spec"]["versions"] if v["name"] == "v1" and v["served"]]
    return _closed(v1["schema"]["openAPIV3Schema"])


def validate_gateway_api(manifest: dict[str, Any], kubernetes_version: str) -> None:
    kind = manifest["kind"]
    if manifest.get("apiVersion") != "gateway.networking.k8s.io/v1":
        raise SchemaError(f"{kind}: apiVersion must be gateway.networking.k8s.io/v1, got {manifest.get('apiVersion')}")
    validator = jsonschema.Draft7Validator(gateway_api_schema(kind, kubernetes_version))
    errors = sorted(validator.iter_errors(manifest), key=lambda e: list(e.absolute_path))
    if errors:
        raise SchemaError(f"{kind}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '.'}: {e.message}" for e in errors))
    # The API server takes a custom resource's metadata as any object's:
    # checked strictly as a ConfigMap's.
    kubernetes_validate.validate({"apiVersion": "v1", "kind": "ConfigMap", "metadata": manifest["metadata"]},
                                 kubernetes_version, strict=True)


def _models_in(annotation: Any) -> list[type[pydantic.BaseModel]]:
    """The pydantic models an annotation may hold (through Optional, list, dict)."""
    if isinstance(annotation, type) and issubclass(annotation, pydantic.BaseModel):
        return [annotation]
    found: list[type[pydantic.BaseModel]] = []
    if typing.get_origin(annotation) in (typing.Union, types.UnionType, list, dict, typing.Annotated):
        for arg in typing.get_args(annotation):
            found += _models_in(arg)
    return found


def _unknown_fields(value: Any, model: type[pydantic.BaseModel], path: str) -> list[str]:
    if not isinstance(value, dict):
        return []
    by_key = {(f.alias or name): f for name, f in model.model_fields.items()}
    by_key.update({name: f for name, f in model.model_fields.items()})
    problems = []
    for key, item in value.items():
        field = by_key.get(key)
        if field is None:
            problems.append(f"{path}.{key}")
            continue
        for sub in _models_in(field.annotation):
            items = item if isinstance(item, list) else [item]
            for i, element in enumerate(items):
                problems += _unknown_fields(element, sub, f"{path}.{key}" + (f"[{i}]" if isinstance(item, list)
                                                                             else ""))
    return problems


def validate_manifest(manifest: dict[str, Any], kubernetes_version: str) -> None:
    """Raise SchemaError (or kubernetes_validate.ValidationError) if the object is not valid."""
    kind = manifest["kind"]
    if kind not in CUSTOM_KINDS:
        kubernetes_validate.validate(manifest, kubernetes_version, strict=True)
        return
    if kind in GATEWAY_API_CRDS:
        validate_gateway_api(manifest, kubernetes_version)
        return
    model = KEDA_MODELS[kind]
    try:
        model.model_validate(manifest)
    except pydantic.ValidationError as err:
        raise SchemaError(f"{kind}: {err}") from err
    unknown = _unknown_fields(manifest, model, kind)
    if unknown:
        raise SchemaError(f"{kind}: unknown fields {unknown}")
