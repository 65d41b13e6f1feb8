"""README's opening commands and the figures README and docs/ quote from the program."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
from pathlib import Path

import pytest

from components.model.settings import DEFAULTS
from tests.conftest import COLLECTED, config_for
from tests.readme_tables import doc

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()
ARCHITECTURE = doc("docs/architecture.md")
DEVELOPMENT = doc("docs/development.md")


def test_readme_opens_with_install_render_and_test_commands() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    # Install; the offline render of a stack (no Azure); the tests.
    assert commands == ["scripts/install", "venv/bin/python -m components.render --stack prod --out build/prod",
                        "scripts/test"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "scripts/install\nscripts/test\n" in ci


def test_the_preview_example_is_prods_capacity_summary() -> None:
    text = doc("docs/user-guide.md")
    start = text.index("`pulumi preview` prints `capacitySummary`, for example for prod:")
    block = text[text.index("```\n", start) + 4:]
    assert block[:block.index("```")].strip() == config_for("prod").plan.summary(), \
        "docs/user-guide.md's capacitySummary example is not what the prod stack's plan prints"


def count_of_real_tests(config: pytest.Config) -> int:
    """How many tests are marked `real`: as this session counted them when it collected every
    test file, or by collecting the suite again."""
    files, real = config.stash.get(COLLECTED, (frozenset(), 0))
    if files >= {p.name for p in (ROOT / "tests").glob("test_*.py")}:
        return real
    command = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-m", "real", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    collected = re.search(r"^(\d+)/\d+ tests collected", done.stdout, re.MULTILINE)
    assert collected, done.stdout[-2000:] + done.stderr[-2000:]
    return int(collected.group(1))


def test_the_quick_tier_leaves_out_as_many_tests_as_readme_says(pytestconfig: pytest.Config) -> None:
    said = re.search(r"`scripts/test --fast` runs ruff and every test but the (\d+) marked `real`", DEVELOPMENT)
    assert said, "docs/development.md names the fast tier and how many tests it leaves out"
    assert count_of_real_tests(pytestconfig) == int(said.group(1)), "docs/development.md: tests marked real"


def test_the_pgbouncer_paragraph_quotes_prods_plan() -> None:
    prod, direct = config_for("prod").plan, config_for("prod", pgbouncer=False).plan
    d4 = config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan
    paragraph = " ".join(ARCHITECTURE.split("The plan separates the two sides.", 1)[1].split("\n\n", 1)[0].split())
    api = prod.control_plane.api_server
    expected = [
        f"metadata database: {prod.database.budget} client connections to PgBouncer, at most "
        f"{prod.database.server_connections} server connections, max_connections {prod.database.max_connections}",
        f"needs `max_connections` {direct.database.max_connections}",
        f"`({d4.control_plane.system_nodes_needed} needed)` for that pool: its {api.replicas} api-server pods "
        f"request {api.replicas * api.pod.cpu_request_millicores}m",
    ]
    missing = [e for e in expected if e not in paragraph]
    assert missing == [], f"docs/architecture.md's PgBouncer paragraph does not say: {missing}"


def test_the_api_server_paragraph_quotes_the_plan() -> None:
    from components.model import capacity, sizing

    prod = config_for("prod").plan
    api = prod.control_plane.api_server
    text = " ".join(ARCHITECTURE.split("- **api-server.** It serves the Execution API", 1)[1]
                    .split("- **Control plane.**", 1)[0].split())
    times = "\N{MULTIPLICATION SIGN}"
    burst_m = round(1000 * sizing.MEASURED_API_BURST_START_CPU_S * 1000 / capacity.API_START_BURST_SECONDS)
    expected = [
        f"{sizing.MEASURED_API_HEARTBEAT_CPU_S * 1000:.1f} ms of api-server CPU each",
        f"{api.millicores_per_running_task:.2f} millicores per running task at {api.heartbeat_interval_seconds} s",
        f"({sizing.MEASURED_API_HEARTBEAT_CPU_S * 1000 / 5:.2f} at Airflow's 5 s)",
        f"costs {sizing.MEASURED_API_BURST_START_CPU_S * 1000:.0f} ms",
        f"within {capacity.API_START_BURST_SECONDS} s",
        f"1,000 {times} {api.millicores_per_running_task:.2f} = {api.heartbeat_millicores}m of heartbeats",
        f"= {burst_m:,}m → {api.workers_needed} workers",
        f"{api.replicas} pods {times} {api.workers_per_pod}, {api.pod.cpu_request_millicores}m request, "
        f"{api.pod.cpu_limit_millicores}m limit, {api.pod.memory_request_mib} MiB",
        f"({api.client_timeout_seconds} s for prod",
        f"{api.heartbeat_timeout_seconds} s for prod",
        f"about {api.lost_task_noticed_seconds} s after its last heartbeat",
        f"saturate ({api.max_running_tasks:,} for prod)",
    ]
    missing = [e for e in expected if e not in text]
    assert missing == [], f"docs/architecture.md's api-server paragraph does not say: {missing}"


# --- README's commands and figures, kept true to the program -------------------------------------

ROOT = Path(__file__).resolve().parent.parent
# The external tools README's commands run -> how its Prerequisites name them.
TOOLS = {"pulumi": "Pulumi CLI", "az": "Azure CLI", "docker": "Docker with buildx", "kubectl": "kubectl",
         "kubelogin": "kubelogin"}
SHELL_BUILTINS = {"export"}


def shell_commands(text: str) -> list[str]:
    """Every command line of the ```sh blocks in `text`, comments dropped."""
    blocks = [block.split("```", 1)[0].replace("\\\n", " ") for block in text.split("```sh\n")[1:]]
    lines = [line.split(" #", 1)[0].strip() for block in blocks for line in block.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


def stack_outputs() -> set[str]:
    return set(re.findall(r'pulumi\.export\(\s*"([A-Za-z]+)"', (ROOT / "__main__.py").read_text()))


def command_problems(command: str, prerequisites: str) -> list[str]:
    """What in one README command does not exist in this repository or its program."""
    problems = [f"{command}: output {name} is not exported" for name in
                re.findall(r"pulumi stack output (\w+)", command) if name not in stack_outputs()]
    # `VAULT=$(...)`: a shell variable, then the command it runs.
    words = re.sub(r"\$\((.*?)\)", r"\1", re.sub(r"^[A-Z_]+=", "", command)).split()
    first = words[0]
    if first.startswith("scripts/"):
        script = ROOT / first
        if not (script.is_file() and script.stat().st_mode & 0o111):
            problems.append(f"{command}: {first} is not an executable script")
    elif first == "venv/bin/python":
        problems += module_problems(command, words)
    elif first in TOOLS:
        if f"**{TOOLS[first]}**" not in prerequisites:
            problems.append(f"{command}: {TOOLS[first]} is not listed in Prerequisites")
        problems += tool_problems(command, words)
    elif first not in SHELL_BUILTINS:
        problems.append(f"{command}: {first} is neither a script, a module, nor a prerequisite")
    return problems


@functools.cache
def module_help(module: str) -> subprocess.CompletedProcess[str]:
    """`python -m <module> --help`, run once per module for every command that names it."""
    return subprocess.run([sys.executable, "-m", module, "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def module_problems(command: str, words: list[str]) -> list[str]:
    """`venv/bin/python -m <module> --flag ...`: the module runs and its --help lists each flag."""
    assert words[1] == "-m", command
    done = module_help(words[2])
    if done.returncode != 0:
        return [f"{command}: {words[2]} --help fails: {done.stderr[-500:]}"]
    return [f"{command}: {words[2]} has no {flag}" for flag in words[3:]
            if flag.startswith("--") and flag not in done.stdout]


def tool_problems(command: str, words: list[str]) -> list[str]:
    """The stack files, config keys, Deployments, namespace and DAG a command names."""
    problems = []
    if words[:3] == ["pulumi", "config", "set"]:
        key = next(w for w in words[3:] if not w.startswith("--")).strip("'").split(".")[0]
        if key not in DEFAULTS:
            problems.append(f"{command}: {key} is no stack config key")
    if words[:3] in (["pulumi", "stack", "init"], ["pulumi", "stack", "select"]):
        if not (ROOT / f"Pulumi.{words[3]}.yaml").is_file():
            problems.append(f"{command}: no Pulumi.{words[3]}.yaml")
    if "--namespace" in words and words[words.index("--namespace") + 1] != DEFAULTS["namespace"]:
        problems.append(f"{command}: the default namespace is {DEFAULTS['namespace']}")
    from components.model import names
    problems += [f"{command}: no Deployment {name}" for name in re.findall(r"deploy/([\w-]+)", command)
                 if name not in vars(names).values()]
    for dag in re.findall(r"airflow dags \w+ (\w+)", command):
        if f'dag_id="{dag}"' not in (ROOT / "app" / "dags" / f"{dag}.py").read_text():
            problems.append(f"{command}: no DAG {dag}")
    return problems


def test_every_quick_start_command_exists() -> None:
    prerequisites = README.split("## Prerequisites\n", 1)[1].split("\n## ", 1)[0]
    commands = shell_commands(README)
    assert "pulumi up" in commands and "pulumi destroy" in commands, "README: the quick start and tear down"
    problems = [p for command in commands for p in command_problems(command, prerequisites)]
    assert problems == [], "README:\n" + "\n".join(problems)


def test_the_checker_catches_a_missing_command() -> None:
    """The check above can fail: a made-up key, script, output and tool are each caught."""
    prerequisites = "**Pulumi CLI**"
    for command in ("pulumi config set paralelism 2000", "scripts/deploy", "$(pulumi stack output kubeconfig)",
                    "kubectl get pods", "venv/bin/python -m components.render --stack prod --colour"):
        assert command_problems(command, prerequisites), command


# README's worked example: row -> what the plan gives, for parallelism 1000 and 2000.
CONCURRENCY_EXAMPLE = {
    "Celery workers (KEDA's ceiling)": lambda p: p.worker.replicas,
    "worker nodes at the peak": lambda p: p.worker_nodes.max_count,
    "api-server pods": lambda p: p.control_plane.api_server.replicas,
    "PostgreSQL `max_connections`": lambda p: p.database.max_connections,
    "compute at the peak, USD per hour": lambda p: f"{sum(f.cost(f.peak_nodes) for f in p.footprint):.2f}",
}


def test_the_concurrency_example_is_what_the_plan_derives() -> None:
    from tests.readme_tables import table_after

    rows = table_after("<!-- concurrency-example -->")
    assert set(rows) == set(CONCURRENCY_EXAMPLE), "README's concurrency example: its rows"
    plans = [config_for("prod", parallelism=n).plan for n in (1000, 2000)]
    for label, value in CONCURRENCY_EXAMPLE.items():
        assert rows[label] == [str(value(p)) for p in plans], f"README's concurrency example, {label}"


def test_the_cost_table_is_what_the_plan_prices() -> None:
    from components.model import capacity
    from tests.readme_tables import table_after

    def stack(name: str) -> list[str]:
        c = config_for(name)
        minutes = capacity.run_worker_minutes(c.plan, c.settings.fanout_sleep_seconds)
        return [f"{sum(f.cost(getattr(f, n)) for f in c.plan.footprint):.2f}" for n in ("idle_nodes", "peak_nodes")] \
            + [f"{capacity.reference_day(c.plan, minutes).usd:.2f}"]

    hourly = capacity.seed_day().usd / 24
    expected = {"dev": stack("dev"), "prod": stack("prod"),
                "the 6-node hand-built setup this replaces, always on":
                    [f"{hourly:.2f}", f"{hourly:.2f}", f"{capacity.seed_day().usd:.2f}"]}
    assert capacity.SEED_NODES == 6, "README names the hand-built setup's 6 nodes"
    assert table_after("<!-- cost-example -->") == expected, "README, What it costs"


def test_the_quick_start_quotes_the_stacks() -> None:
    dev, prod = config_for("dev").settings, config_for("prod").settings
    text = " ".join(README.split())
    assert f"Deploy dev ({dev.parallelism} tasks at once, one system node," in text, "README: dev's parallelism"
    assert config_for("dev").plan.control_plane.system_nodes == 1, "README: dev's one system node"
    assert (f"(dev: {dev.fanout_tasks} tasks of {dev.fanout_sleep_seconds} s each, hourly)" in text
            and dev.fanout_schedule == "0 * * * *"), "README: dev's reference DAG"
    assert f"the prod stack runs {prod.parallelism:,} tasks at the same time" in text, "README: prod's parallelism"


def test_readme_stays_short() -> None:
    """A page a platform engineer reads in five minutes: the depth is in docs/."""
    prose = re.sub(r"```.*?```", "", README, flags=re.DOTALL)
    words = len([w for line in prose.splitlines() if not line.startswith("|") for w in line.split()])
    assert len(README.splitlines()) <= 200 and words <= 1300, f"README: {len(README.splitlines())} lines, {words} words"
