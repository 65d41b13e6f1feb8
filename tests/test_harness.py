"""The test harness's own promises: a shared program run is the same for every test that reads it."""

from __future__ import annotations

import pytest

from tests.harness import changed_shared_runs, shared_run, stack_file_config

# A config no other test asks for, so changing its run here reaches no other test.
MARK = '"airflow-aks:fanoutSleepSeconds": 37'


def only_here() -> dict[str, object]:
    return {**stack_file_config("dev"), "airflow-aks:fanoutSleepSeconds": 37}


def test_the_same_arguments_share_one_run_and_others_do_not() -> None:
    run = shared_run("dev", only_here())
    assert shared_run("dev", only_here()) is run, "shared_run: the same stack and config run again"
    assert shared_run("dev", only_here(), preview=True) is not run, "shared_run: preview is part of the key"
    assert shared_run("dev") is not run, "shared_run: the config is part of the key"


def test_a_shared_run_a_test_changed_is_refused_to_the_next() -> None:
    run = shared_run("dev", only_here())
    secret = next(r for r in run.resources if r.type == "kubernetes:core/v1:Secret")
    secret.inputs["changed-by-a-test"] = True
    try:
        with pytest.raises(AssertionError, match=r"a test changed \['resources'\] of the shared program run"):
            shared_run("dev", only_here())
        assert any(MARK in key for key in changed_shared_runs()), "the check after the session sees it too"
    finally:
        del secret.inputs["changed-by-a-test"]
    assert shared_run("dev", only_here()) is run
    assert not any(MARK in key for key in changed_shared_runs())

