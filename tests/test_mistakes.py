"""Plausible config mistakes, each tried as a user makes it: through a stack file
and the offline render, and through the program itself.

Each is refused before anything is written or declared, with a message that
names the key the user touched and says what to set. The list is issue 26's
(a new user's 41 tries, of which these were accepted, crashed or were refused
unclearly); `python -m tests.test_mistakes` prints each with its message.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
import yaml

from components.config import stack_file_config
from components.model.settings import ConfigError
from components.render import render
from tests.harness import shared_run


@dataclass(frozen=True)
class Mistake:
    name: str
    stack: str
    # Keys (with their namespace) set on top of the stack file; None removes one.
    changes: dict[str, Any] = field(default_factory=dict)
    # The problem's key as printed, and words its message must hold.
    key: str = ""
    says: tuple[str, ...] = ()
    # A stack file's text instead of changes (YAML errors).
    text: str | None = None


P = "airflow-aks:"
MISTAKES = [
    Mistake("region typo", "dev", {"azure-native:location": "westeurpoe"},
            "azure-native:location", ("did you mean 'westeurope'",)),
    Mistake("Airflow version that does not exist", "dev", {P + "airflowVersion": "3.9.9"},
            P + "airflowVersion", ("is not an apache-airflow release", "did you mean '3.3.2'")),
    Mistake("airflowConfig section typo", "dev", {P + "airflowConfig": {"schedular": {"parsing_processes": 4}}},
            P + "airflowConfig.schedular", ("did you mean 'scheduler'",)),
    Mistake("airflowConfig option typo", "dev", {P + "airflowConfig": {"celery": {"worker_concurency": 8}}},
            P + "airflowConfig.celery.worker_concurency", ("did you mean 'worker_concurrency'", "workerConcurrency")),
    Mistake("workerMinReplicas with fixed scaling", "dev",
            {P + "workerScaling": "fixed", P + "workerMinReplicas": 1},
            P + "workerMinReplicas", ("workerScaling",)),
    Mistake("a task longer than AKS can drain", "prod", {P + "longestTaskSeconds": 172800},
            P + "longestTaskSeconds", ("1440",)),
    Mistake("wider than one scheduler and one PostgreSQL were measured at", "prod", {P + "parallelism": 100000},
            P + "parallelism", ("at most 3000",)),
    Mistake("mistyped project prefix", "dev", {"airflow_aks:parallelism": 64},
            "airflow_aks:parallelism", ("did you mean 'airflow-aks:parallelism'",)),
    Mistake("key without the project prefix", "dev", {"parallelism": 64},
            "parallelism (no namespace)", ("did you mean 'airflow-aks:parallelism'",)),
    Mistake("YAML syntax error", "dev", key="Pulumi.mistake.yaml (YAML)", says=("line 3, column 1",),
            text="config:\n  airflow-aks:parallelism: [64\n"),
    Mistake("memory per slot larger than a node holds", "prod", {P + "workerMemoryPerSlotMiB": 2048},
            P + "workerMemoryPerSlotMiB", ("at most",)),
    Mistake("unlisted VM size without its figures", "dev", {P + "workerPool": {"vmSize": "Standard_D4als_v5"}},
            P + "workerPool.vmSize", ("workerPool.vcpus", "workerPool.memoryGiB", "workerPool.pricePerHour")),
    Mistake("VM size typo", "dev", {P + "workerPool": {"vmSize": "Standard_E4_v3"}},
            P + "workerPool.vmSize", ("did you mean 'Standard_E4s_v3'",)),
    Mistake("region as its display name", "dev", {"azure-native:location": "West Europe"},
            "azure-native:location", ("'westeurope'",)),
    Mistake("an Airflow 2 option Airflow 3 moved", "dev",
            {P + "airflowConfig": {"scheduler": {"dag_dir_list_interval": 60}}},
            P + "airflowConfig.scheduler.dag_dir_list_interval", ("[dag_processor] refresh_interval",)),
    Mistake("an option the deployment depends on", "dev", {P + "airflowConfig": {"metrics": {"statsd_port": 9999}}},
            P + "airflowConfig.metrics.statsd_port", ("is set by the program",)),
    Mistake("a system pool too small for the control plane", "prod",
            {P + "apiServerReplicas": 8, P + "systemPool": {"vmSize": "Standard_D4s_v5", "count": 1}},
            P + "systemPool.count", ("set systemPool.count to 2",)),
    Mistake("a key that does nothing with pgbouncer off", "prod",
            {P + "pgbouncer": False, P + "pgbouncerMetadataPoolSize": 40},
            P + "pgbouncerMetadataPoolSize", ("pgbouncer: true",)),
]


def stack_text(mistake: Mistake) -> str:
    if mistake.text is not None:
        return mistake.text
    config = stack_file_config(mistake.stack)
    for key, value in mistake.changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    return yaml.safe_dump({"config": config}, sort_keys=False)


def render_refusal(mistake: Mistake, tmp_path: Path) -> str:
    (tmp_path / "Pulumi.mistake.yaml").write_text(stack_text(mistake))
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as caught:
        render("mistake", out, project_dir=tmp_path)
    assert not out.exists(), f"{mistake.name}: the render wrote {out}"
    return str(caught.value)


def problem_line(message: str, key: str) -> str:
    """The message's line for `key` (a ConfigError lists one problem a line)."""
    lines = [line for line in message.splitlines() if line.startswith(f"  - {key}: ")]
    assert lines, f"no problem names {key}:\n{message}"
    return lines[0][len("  - "):]


@pytest.mark.parametrize("mistake", MISTAKES, ids=[m.name for m in MISTAKES])
def test_the_render_refuses_it_naming_the_key(mistake: Mistake, tmp_path: Path) -> None:
    line = problem_line(render_refusal(mistake, tmp_path), mistake.key)
    for words in mistake.says:
        assert words in line, f"{mistake.name}: {words!r} not in {line!r}"


@pytest.mark.parametrize("mistake", [m for m in MISTAKES if m.text is None],
                         ids=[m.name for m in MISTAKES if m.text is None])
def test_the_program_refuses_it_before_declaring_anything(mistake: Mistake, tmp_path: Path) -> None:
    config = yaml.safe_load(stack_text(mistake))["config"]
    run = shared_run(mistake.stack, config)
    assert isinstance(run.error, pulumi.RunError), f"{mistake.name}: the program ran on ({run.error!r})"
    assert not run.resources, f"{mistake.name}: {len(run.resources)} resources declared before the refusal"
    line = problem_line(str(run.error), mistake.key)
    for words in mistake.says:
        assert words in line, f"{mistake.name}: {words!r} not in {line!r}"


# Refused unclearly before (a real size was "unknown"), or accepted while the
# KEDA query counted another queue than the workers consumed: these now work.
def render_stack(config: dict[str, Any], tmp_path: Path) -> None:
    """Render a stack file in this process. A program run in the same test
    process leaves no event loop, which Output.secret (a Secret's data) needs."""
    (tmp_path / "Pulumi.mistake.yaml").write_text(yaml.safe_dump({"config": config}))
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        render("mistake", tmp_path / "out", project_dir=tmp_path)
    finally:
        asyncio.set_event_loop(None)
        loop.close()


@pytest.mark.parametrize("size", ["Standard_D4as_v5", "Standard_E8as_v5"])
def test_a_real_size_the_old_table_lacked_renders_a_plan(size: str, tmp_path: Path) -> None:
    render_stack({**stack_file_config("prod"), P + "workerPool": {"vmSize": size}}, tmp_path)
    assert f"x {size}" in (tmp_path / "out" / "plan.txt").read_text(), f"prod's plan on {size}"


def test_the_keda_query_counts_the_queue_the_stack_names(tmp_path: Path) -> None:
    render_stack({**stack_file_config("prod"), P + "airflowConfig": {"operators": {"default_queue": "bulk"}}},
                 tmp_path)
    scaled = [m for m in (yaml.safe_load(f.read_text()) for f in (tmp_path / "out" / "manifests").glob("*.yaml"))
              if m["kind"] == "ScaledObject"]
    queries = [t["metadata"]["query"] for m in scaled for t in m["spec"]["triggers"] if t["type"] == "postgresql"]
    assert queries and all("queue = 'bulk'" in q for q in queries), f"the ScaledObject's query: {queries}"


def main() -> None:
    """Each mistake and the line of its message that names its key (for release notes)."""
    import tempfile
    for mistake in MISTAKES:
        with tempfile.TemporaryDirectory() as tmp:
            (Path(tmp) / "Pulumi.mistake.yaml").write_text(stack_text(mistake))
            try:
                render("mistake", Path(tmp) / "out", project_dir=Path(tmp))
                print(f"- {mistake.name}: ACCEPTED")
            except ConfigError as err:
                print(f"- {mistake.name}: `{problem_line(str(err), mistake.key)}`")


if __name__ == "__main__":
    main()
    sys.exit(0)
