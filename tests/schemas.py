"""Strict schema validation for every object the program declares.

Kubernetes' own kinds: kubernetes-validate with the JSON schema of the target
version, strict (unknown fields are errors). KEDA's custom resources: the
models cloudcoil-models-keda generates from KEDA's CRDs, plus a walk that
rejects any field the models do not know, as `kubectl --validate=strict` does
with a CRD's schema (pydantic alone would ignore it).
"""

from __future__ import annotations

import types
import typing
from typing import Any

import kubernetes_validate
import pydantic
from cloudcoil.models.keda import v1alpha1 as keda

from components.kubernetes.k8s import CUSTOM_KINDS

KEDA_MODELS: dict[str, type[pydantic.BaseModel]] = {
    "ScaledObject": keda.ScaledObject,
    "TriggerAuthentication": keda.TriggerAuthentication,
}


class SchemaError(ValueError):
    pass


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
    model = KEDA_MODELS[kind]
    try:
        model.model_validate(manifest)
    except pydantic.ValidationError as err:
        raise SchemaError(f"{kind}: {err}") from err
    unknown = _unknown_fields(manifest, model, kind)
    if unknown:
        raise SchemaError(f"{kind}: unknown fields {unknown}")
