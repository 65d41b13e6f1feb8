"""The Airflow objects, one builder per workload (components/kubernetes/airflow_*.py):
each builds its own workload's objects and nothing else, airflow_objects only
assembles them, and every function stays short enough to read at once."""

from __future__ import annotations

import ast
from collections.abc import Callable
from pathlib import Path

import pytest

from components.kubernetes.airflow import WORKLOAD_BUILDERS, airflow_objects, config_map_objects
from components.kubernetes.airflow_api_server import api_server_objects
from components.kubernetes.airflow_dag_processor import dag_processor_objects
from components.kubernetes.airflow_flower import flower_objects
from components.kubernetes.airflow_migration import migration_objects
from components.kubernetes.airflow_pod import PodParts, pod_parts
from components.kubernetes.airflow_scheduler import scheduler_objects
from components.kubernetes.airflow_triggerer import triggerer_objects
from components.kubernetes.airflow_worker import worker_objects
from components.kubernetes.k8s import KubeObject
from components.kubernetes.keda import keda_objects
from components.model import component_secrets
from tests.conftest import config_for

COMPONENT_LABEL = "app.kubernetes.io/component"
BUILDERS: dict[str, Callable[[PodParts], list[KubeObject]]] = {
    "migrate": migration_objects, "api-server": api_server_objects, "scheduler": scheduler_objects,
    "dag-processor": dag_processor_objects, "triggerer": triggerer_objects, "worker": worker_objects,
    "flower": flower_objects,
}
STACKS = ("dev", "prod", "local")
# "A screen": past this a function is split (issue 29).
MAX_FUNCTION_LINES = 60
AIRFLOW_MODULES = sorted((Path(__file__).parent.parent / "components" / "kubernetes").glob("airflow*.py"))


def parts_of(stack: str) -> PodParts:
    config = config_for(stack, flower=True)
    return pod_parts(config.settings, config.plan, config.airflow_cfg, "image:tag")


def labelled(obj: KubeObject) -> set[str]:
    """The component labels an object carries: its own and its pods'."""
    found = {obj.fields["metadata"]["labels"][COMPONENT_LABEL]}
    template = obj.fields.get("spec", {}).get("template")
    if template is not None:
        found.add(template["metadata"]["labels"][COMPONENT_LABEL])
    return found


@pytest.mark.parametrize("stack", STACKS)
@pytest.mark.parametrize("component", BUILDERS)
def test_each_builder_builds_its_own_workload_only(stack: str, component: str) -> None:
    objects = BUILDERS[component](parts_of(stack))
    assert objects, f"{stack}: {BUILDERS[component].__name__} builds nothing for {component}"
    for obj in objects:
        assert labelled(obj) == {component}, \
            f"{stack}: {BUILDERS[component].__name__} builds {obj.kind} {obj.suffix} labelled {labelled(obj)}"


def test_every_airflow_component_has_one_builder() -> None:
    """The components that have their own Secret and NetworkPolicy are the builders' workloads."""
    assert list(WORKLOAD_BUILDERS) == list(BUILDERS.values()), "airflow.WORKLOAD_BUILDERS"
    assert set(BUILDERS) == set(component_secrets.components(flower=True)), "component_secrets.COMPONENT_SECRETS"


@pytest.mark.parametrize("stack", STACKS)
def test_airflow_objects_only_assembles(stack: str) -> None:
    """airflow_objects adds nothing of its own between the ConfigMaps, the workloads and KEDA."""
    config = config_for(stack, flower=True)
    s, plan = config.settings, config.plan
    parts = parts_of(stack)
    expected = [*config_map_objects(s, config.airflow_cfg),
                *(obj for build in BUILDERS.values() for obj in build(parts)), *keda_objects(s, plan)]
    assert airflow_objects(s, plan, config.airflow_cfg, "image:tag") == expected, f"{stack}: airflow_objects"


@pytest.mark.parametrize("module", AIRFLOW_MODULES, ids=lambda p: p.name)
def test_airflow_functions_fit_a_screen(module: Path) -> None:
    long = [f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse(module.read_text()))
            if isinstance(node, ast.FunctionDef) and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert not long, f"components/kubernetes/{module.name}: split {long}"
