"""README's opening commands and the figures its prose quotes from the program."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import config_for

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_opens_with_install_render_and_test_commands() -> None:
    first_block = README.split("```sh", 1)[1].split("```", 1)[0]
    commands = [line.split("#")[0].strip() for line in first_block.strip().splitlines()]
    # Install; the offline render of a stack (no Azure); the tests.
    assert commands == ["scripts/install", "venv/bin/python -m components.render --stack prod --out build/prod",
                        "scripts/test"]
    ci = (Path(__file__).resolve().parent.parent / ".ci" / "run").read_text()
    assert "scripts/install\nscripts/test\n" in ci


def test_the_preview_example_is_prods_capacity_summary() -> None:
    text = README
    start = text.index("`pulumi preview` prints `capacitySummary`, for example for prod:")
    block = text[text.index("```\n", start) + 4:]
    assert block[:block.index("```")].strip() == config_for("prod").plan.summary(), \
        "README's capacitySummary example is not what the prod stack's plan prints"


def test_the_quick_tier_leaves_out_as_many_tests_as_readme_says() -> None:
    said = re.search(r'`scripts/test -m "not real"` runs ruff and every test but the (\d+) that start', README)
    assert said, "README names the quick tier and how many tests it leaves out"
    command = [sys.executable, "-m", "pytest", "-q", "--collect-only", "-m", "real", "-p", "no:cacheprovider"]
    done = subprocess.run(command, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          timeout=300, check=False)
    collected = re.search(r"^(\d+)/\d+ tests collected", done.stdout, re.MULTILINE)
    assert collected, done.stdout[-2000:] + done.stderr[-2000:]
    assert int(collected.group(1)) == int(said.group(1)), "tests marked real"


def test_the_pgbouncer_paragraph_quotes_prods_plan() -> None:
    prod, direct = config_for("prod").plan, config_for("prod", pgbouncer=False).plan
    d4 = config_for("prod", systemPool={"vmSize": "Standard_D4s_v5", "count": 2}).plan
    paragraph = " ".join(README.split("The plan separates the two sides.", 1)[1].split("\n\n", 1)[0].split())
    api = prod.control_plane.api_server
    expected = [
        f"metadata database: {prod.database.budget} client connections to PgBouncer, at most "
        f"{prod.database.server_connections} server connections, max_connections {prod.database.max_connections}",
        f"needs `max_connections` {direct.database.max_connections}",
        f"`({d4.control_plane.system_nodes_needed} needed)` for that pool: its {api.replicas} api-server pods "
        f"request {api.replicas * api.pod.cpu_request_millicores}m",
    ]
    missing = [e for e in expected if e not in paragraph]
    assert missing == [], f"README's PgBouncer paragraph does not say: {missing}"


def test_the_api_server_paragraph_quotes_the_plan() -> None:
    from components.model import capacity, sizing

    prod = config_for("prod").plan
    api = prod.control_plane.api_server
    text = " ".join(README.split("- **api-server.** It serves the Execution API", 1)[1]
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
    assert missing == [], f"README's api-server paragraph does not say: {missing}"
