"""The offline render command, and that it renders exactly what the program declares."""

from __future__ import annotations

import asyncio
import configparser
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from components.config import stack_config_from_file, stack_file_config
from components.kubernetes import backups, key_vault
from components.render import PROJECT_DIR, SECRET_PLACEHOLDER, render
from tests.harness import ROOT, shared_run
from tests.schemas import validate_manifest


def run_render(stack: str, out: Path, project_dir: Path | None = None) -> subprocess.CompletedProcess[str]:
    more = ["--project-dir", str(project_dir)] if project_dir is not None else []
    return subprocess.run([sys.executable, "-m", "components.render", "--stack", stack, "--out", str(out), *more],
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


STACKS = ("dev", "prod", "local")


def render_in_process(stack: str, out: Path, project_dir: Path | None = None) -> None:
    """What the render command does, in this process. The builders mark secrets with
    pulumi.Output.secret, which needs an event loop: the command has Python's default one;
    here a program run under mocks (tests/harness.py) may have left none, so it gets its own."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        render(stack, out, project_dir or PROJECT_DIR)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, subprocess.CompletedProcess[str]]]:
    """Each stack file rendered once by the command, for every test here that reads a render."""
    outs = {stack: tmp_path_factory.mktemp(f"render-{stack}") for stack in STACKS}
    return {stack: (out, run_render(stack, out)) for stack, out in outs.items()}


def manifests(out: Path) -> list[dict]:
    return [yaml.safe_load(p.read_text()) for p in sorted((out / "manifests").glob("*.yaml"))]


@pytest.mark.parametrize("stack", STACKS)
def test_render_writes_cfg_plan_and_manifests(rendered: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
                                              stack: str) -> None:
    out, done = rendered[stack]
    assert done.returncode == 0, done.stderr
    assert "task slots" in done.stdout

    cfg = configparser.ConfigParser(interpolation=None)
    cfg.read_string((out / "airflow.cfg").read_text())
    values = stack_file_config(stack)
    parallelism = int(values.get("airflow-aks:parallelism", 32))
    concurrency = int(values.get("airflow-aks:workerConcurrency", 16))
    assert cfg["core"]["parallelism"] == str(parallelism)
    assert cfg["celery"]["worker_concurrency"] == str(concurrency)

    plan = json.loads((out / "plan.json").read_text())
    assert plan["parallelism"] == parallelism
    assert plan["worker"]["replicas"] == math.ceil(parallelism / concurrency)

    objects = manifests(out)
    assert len(objects) >= 20
    for m in objects:
        validate_manifest(m, "1.35.0")
    [worker] = [m for m in objects if m["kind"] == "StatefulSet" and m["metadata"]["name"] == "airflow-worker"]
    scalers = [m for m in objects if m["kind"] == "ScaledObject"]
    if scalers:  # KEDA sets the replicas, up to the plan's
        assert scalers[0]["spec"]["maxReplicaCount"] == plan["worker"]["replicas"]
    else:
        assert worker["spec"]["replicas"] == plan["worker"]["replicas"]
    for secret in (m for m in objects if m["kind"] == "Secret"):
        assert set(secret["stringData"].values()) == {SECRET_PLACEHOLDER}, "no secret is ever written"


def without_deploy_time_values(objects: list[dict]) -> list[str]:
    """Objects with what only a deploy knows (secret values, the image reference) blanked."""
    out = []
    for m in json.loads(json.dumps(objects)):
        if m["kind"] == "Secret":
            m["stringData"] = dict.fromkeys(m["stringData"], "<secret>")
        annotations = m["metadata"].get("annotations", {})
        if "azure.workload.identity/client-id" in annotations:  # the log identity, created by the deploy
            annotations["azure.workload.identity/client-id"] = "<client id>"
        spec = m.get("spec", {})
        pod = spec.get("jobTemplate", spec).get("spec", spec).get("template", {}).get("spec", {})
        for c in pod.get("containers", []) + pod.get("initContainers", []):
            c["image"] = "<image>"
            for e in c.get("env", []):
                if e["name"] == backups.STORAGE_ENV and "value" in e:  # the account's URL, Azure's to name
                    e["value"] = "<account url>"
                if e["name"] == key_vault.VAULT_URL_ENV:  # the vault's URL, named by the deploy
                    e["value"] = "<vault url>"
        out.append(json.dumps(m, sort_keys=True))
    return sorted(out)


@pytest.mark.parametrize("stack", STACKS)
def test_render_is_what_the_program_declares(rendered: dict[str, tuple[Path, subprocess.CompletedProcess[str]]],
                                             stack: str) -> None:
    out, done = rendered[stack]
    assert done.returncode == 0, done.stderr
    program = shared_run(stack)
    assert program.error is None, program.error
    rendered = manifests(out)
    assert without_deploy_time_values(rendered) == without_deploy_time_values(program.manifests())


def test_render_refuses_a_bad_stack_before_writing(tmp_path: Path) -> None:
    (tmp_path / "Pulumi.bad.yaml").write_text("config:\n  azure-native:location: westeurope\n"
                                              "  airflow-aks:paralelism: 100\n")
    out = tmp_path / "out"
    with pytest.raises(Exception, match="paralelism: unknown key; did you mean 'parallelism'"):
        render("bad", out, project_dir=tmp_path)
    assert not out.exists(), "nothing is written for a bad config"
    done = run_render("nosuchstack", tmp_path / "x")
    assert done.returncode == 2 and "Pulumi.nosuchstack.yaml" in done.stderr


def test_render_reads_the_same_settings_as_the_program() -> None:
    assert stack_config_from_file("prod").plan.to_output() == shared_run("prod").outputs["capacityPlan"]
