"""The benchmark tables of docs/development.md and the fault table of docs/operations.md, kept
equal to the results files they quote."""

from __future__ import annotations

import json

from bench.worker import README_COLUMNS, readme_row
from tests.harness import ROOT
from tests.readme_tables import doc, section, table_after

DEVELOPMENT = "docs/development.md"
OPERATIONS = "docs/operations.md"

HEADING = "### One worker, fresh and warm (bench/worker)"


def test_the_worker_table_is_the_results_file() -> None:
    stored = json.loads((ROOT / "bench/results/worker.json").read_text())["runs"]
    rows = table_after(HEADING, page=DEVELOPMENT)
    assert set(rows) == set(stored), "docs/development.md: one row per stored run"
    for label, run in stored.items():
        assert [label, *rows[label]] == readme_row(label, run), label
    header = doc(DEVELOPMENT).split(HEADING, 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert header.rstrip(" |").split(" | ") == list(README_COLUMNS)


PAGES_HEADING = "### Where a slot's memory comes from (bench/pages)"


def test_the_pages_table_is_the_results_file() -> None:
    from bench.pages import HEADER, table_rows

    [(label, run)] = json.loads((ROOT / "bench/results/pages.json").read_text())["runs"].items()
    assert f'run "{label}"' in doc(DEVELOPMENT).split(PAGES_HEADING, 1)[1].split("\n|", 1)[0], \
        "docs/development.md names the run"
    rows = table_after(PAGES_HEADING, page=DEVELOPMENT)
    assert [[name, *cells] for name, cells in rows.items()] == table_rows(run)
    header = doc(DEVELOPMENT).split(PAGES_HEADING, 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert header.rstrip(" |").split(" | ") == list(HEADER)


BURST_HEADING = "#### Start bursts and heartbeat intervals"


def test_the_burst_and_heartbeat_tables_are_the_results_file() -> None:
    from bench.controlplane.bench import HEARTBEAT_COLUMNS, heartbeat_row, row
    from components.model.sizing import MEASURED_API_BURST_START_CPU_S

    stored = json.loads((ROOT / "bench/results/controlplane.json").read_text())["runs"]
    text = section(DEVELOPMENT, BURST_HEADING)
    bursts = table_after(BURST_HEADING, page=DEVELOPMENT)
    assert len(bursts) == 6, "docs/development.md's burst table: three slices, before and after"
    for key, cells in bursts.items():
        assert [key, *cells] == row(key, stored[key]), f"burst row {key} differs from the results file"
    heartbeats = table_after("Heartbeat intervals: 250 tasks", page=DEVELOPMENT)
    assert {stored[k]["heartbeat_interval_s"] for k in heartbeats} == {5, 15, 30}
    for key, cells in heartbeats.items():
        assert [key, *cells] == heartbeat_row(key, stored[key]), f"docs/development.md's heartbeat row {key}"
    assert "| " + " | ".join(HEARTBEAT_COLUMNS) + " |" in text
    # The prose's figures: per-task millicores and the 60 ms a start.
    per_task = {stored[k]["heartbeat_interval_s"]: heartbeat_row(k, stored[k])[5] for k in heartbeats}
    assert f"1.80 millicores at 5 s, {per_task[15]} at 15 s and {per_task[30]} at 30 s" in " ".join(text.split())
    assert per_task[5] == "1.80"
    slow = stored["500 burst, 1 api workers, api-server at 850m, execution_api_timeout 20 s"]
    assert round(slow["latency_s"]["start"]["max"] * 0.85 / 500, 3) == MEASURED_API_BURST_START_CPU_S == 0.060
    assert "no start waited longer than 11.7 s" in " ".join(text.split())
    assert stored["250 burst, 1 api workers, api-server at 750m"]["latency_s"]["start"]["max"] == 11.7015


FAULTS_HEADING = "## Faults"


def test_the_fault_table_is_the_results_file() -> None:
    from tests.test_faults import FAULTS, README_COLUMNS, readme_row

    stored = json.loads((ROOT / "bench/results/faults.json").read_text())["faults"]
    assert list(stored) == list(FAULTS), "a result for each fault"
    rows = table_after(FAULTS_HEADING, page=OPERATIONS)
    assert len(rows) == len(stored), "docs/operations.md: one row per stored fault"
    for key, result in stored.items():
        label = FAULTS[key]
        assert label in rows, f"docs/operations.md's fault table has no row {label!r}"
        assert [label, *rows[label][:len(README_COLUMNS) - 2]] == readme_row(key, result), label
    header = doc(OPERATIONS).split(FAULTS_HEADING, 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert header.rstrip(" |").split(" | ") == list(README_COLUMNS)


def test_the_retry_delay_outlasts_every_measured_outage() -> None:
    """A retry must not meet the outage that failed its try: the default
    delay is longer than any killed part took to serve again."""
    from components.model.settings import DEFAULTS

    stored = json.loads((ROOT / "bench/results/faults.json").read_text())["faults"]
    longest = max(result["back_s"] for result in stored.values())
    assert DEFAULTS["taskRetryDelaySeconds"] > longest


def test_the_fault_prose_quotes_the_results_file() -> None:
    stored = json.loads((ROOT / "bench/results/faults.json").read_text())["faults"]
    text = section(OPERATIONS, FAULTS_HEADING)
    worker = stored["worker"]
    assert f"tries were failed {worker['detected_s']:.0f} s after the kill" in text
    assert f"at most {max(r['back_s'] for r in stored.values()):.0f} s" in text
    shortest, longest = (f"{w:.0f}" for w in worker["retry_wait_s"])
    waited = shortest if shortest == longest else f"{shortest}-{longest}"
    assert f"retries started {waited} s after their tries" in text
