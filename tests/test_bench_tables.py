"""README's benchmark tables, kept equal to the results files they quote."""

from __future__ import annotations

import json

from bench.worker import README_COLUMNS, readme_row
from tests.harness import ROOT
from tests.readme_tables import README, table_after

HEADING = "### One worker, fresh and warm (bench/worker)"


def test_the_worker_table_is_the_results_file() -> None:
    stored = json.loads((ROOT / "bench/results/worker.json").read_text())["runs"]
    rows = table_after(HEADING)
    assert set(rows) == set(stored), "one README row per stored run"
    for label, run in stored.items():
        assert [label, *rows[label]] == readme_row(label, run), label
    header = README.split(HEADING, 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert header.rstrip(" |").split(" | ") == list(README_COLUMNS)


PAGES_HEADING = "### Where a slot's memory comes from (bench/pages)"


def test_the_pages_table_is_the_results_file() -> None:
    from bench.pages import HEADER, table_rows

    [(label, run)] = json.loads((ROOT / "bench/results/pages.json").read_text())["runs"].items()
    assert f'run "{label}"' in README.split(PAGES_HEADING, 1)[1].split("\n|", 1)[0], "README names the run"
    rows = table_after(PAGES_HEADING)
    assert [[name, *cells] for name, cells in rows.items()] == table_rows(run)
    header = README.split(PAGES_HEADING, 1)[1].split("\n| ", 1)[1].split("\n", 1)[0]
    assert header.rstrip(" |").split(" | ") == list(HEADER)
