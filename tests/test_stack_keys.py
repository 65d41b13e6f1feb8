"""Stack config keys nothing reads, and stack files that are not YAML, are refused.

Both in the offline render (which reads Pulumi.<stack>.yaml) and in the
program itself (which sees the whole config map the CLI hands it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pulumi
import pytest

from components.config import stack_file_config
from components.render import render
from components.stack_keys import provider_keys, stray_key_problems
from tests.harness import ROOT, shared_run


def refused_render(tmp_path: Path, text: str) -> str:
    """The render's ConfigError for a stack file, after checking nothing was written."""
    (tmp_path / "Pulumi.mistake.yaml").write_text(text)
    out = tmp_path / "out"
    with pytest.raises(ValueError) as caught:
        render("mistake", out, project_dir=tmp_path)
    assert not out.exists(), f"the render wrote {out} for a refused stack file"
    return str(caught.value)


DEV = ROOT / "Pulumi.dev.yaml"


def test_a_mistyped_project_prefix_is_refused_by_the_render(tmp_path: Path) -> None:
    message = refused_render(tmp_path, DEV.read_text() + "  airflow_aks:parallelism: 64\n")
    assert "airflow_aks:parallelism: unknown namespace 'airflow_aks'; did you mean 'airflow-aks:parallelism'?" \
        in message, message


def test_a_key_without_namespace_is_refused_by_the_render(tmp_path: Path) -> None:
    message = refused_render(tmp_path, DEV.read_text() + "  parallelism: 64\n")
    assert "parallelism (no namespace): nothing reads a key without a namespace" in message, message
    assert "did you mean 'airflow-aks:parallelism'?" in message, message


@pytest.mark.parametrize(("key", "expected"), [
    ("azure-native:locaton", "the azure-native provider has no key 'locaton'; did you mean 'azure-native:location'?"),
    ("azure:location", "nothing in this program reads namespace 'azure'; did you mean 'azure-native:location'?"),
    ("kubernetes:context", "configures the default Kubernetes provider, which this program never uses"),
    ("airflowaks:workers", "unknown namespace 'airflowaks'; did you mean 'airflow-aks:workers'?"),
    ("airflow-ask:workers", "unknown namespace 'airflow-ask'; did you mean 'airflow-aks:workers'?"),
])
def test_stray_keys_name_what_reads_them(key: str, expected: str) -> None:
    problems = dict(stray_key_problems([key, "azure-native:location", "airflow-aks:parallelism", "pulumi:tags"]))
    assert list(problems) == [key], f"only {key} is stray: {problems}"
    assert problems[key].startswith(expected), f"{key}: {problems[key]}"


def test_provider_keys_come_from_the_installed_sdk() -> None:
    keys = provider_keys("azure-native")
    assert {"location", "subscriptionId", "tenantId", "clientId", "useOidc"} <= set(keys), keys


def program_refusal(config: dict) -> str:
    """The program's error for a config, after checking it declared nothing."""
    run = shared_run("dev", config)
    assert isinstance(run.error, pulumi.RunError), f"the program ran without refusing: {run.error!r}"
    assert not run.resources, f"resources declared before the refusal: {[r.name for r in run.resources][:5]}"
    return str(run.error)


def test_the_program_refuses_a_mistyped_prefix_before_declaring_anything() -> None:
    message = program_refusal({**stack_file_config("dev"), "airflow_aks:parallelism": 64})
    assert "airflow_aks:parallelism: unknown namespace 'airflow_aks'; did you mean 'airflow-aks:parallelism'?" \
        in message, message


def test_the_program_reports_a_stray_key_with_the_projects_own_problems() -> None:
    message = program_refusal({**stack_file_config("dev"), "azure-native:locaton": "westeurope",
                               "airflow-aks:paralelism": 64})
    assert "stack config has 2 problems" in message, message
    assert "azure-native:locaton: the azure-native provider has no key 'locaton'" in message, message
    assert "airflow-aks:paralelism: unknown key; did you mean 'parallelism'" in message, message


@pytest.mark.parametrize(("text", "where"), [
    # A tab where YAML wants spaces.
    ("config:\n  azure-native:location: westeurope\n\tairflow-aks:parallelism: 64\n", "line 3, column 1"),
    # An unclosed flow mapping.
    ("config:\n  airflow-aks:workerPool: {vmSize: Standard_D2s_v5\n  airflow-aks:parallelism: 64\n",
     "line 3, column 26"),
    # A key indented off the others.
    ("config:\n  azure-native:location: westeurope\n    airflow-aks:parallelism: 64\n", "line 3, column 28"),
])
def test_a_yaml_error_is_one_line_with_file_line_and_column(tmp_path: Path, text: str, where: str) -> None:
    message = refused_render(tmp_path, text)
    problem = message.splitlines()[-1]
    assert problem.startswith(f"  - Pulumi.mistake.yaml (YAML): {where}: not valid YAML: "), message
    assert "Traceback" not in message and len(message.splitlines()) == 2, message


def test_the_render_command_prints_a_yaml_error_without_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.mistake.yaml").write_text("config:\n  airflow-aks:parallelism: [64\n")
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-m", "components.render", "--stack", "mistake", "--out", str(out),
                           "--project-dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          check=False)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "Pulumi.mistake.yaml (YAML): line 3, column 1: not valid YAML" in done.stderr, done.stderr
    assert not out.exists(), "the render wrote files for a stack file that is not YAML"
