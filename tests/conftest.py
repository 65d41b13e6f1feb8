from __future__ import annotations

from typing import Any

import pytest

from components.config import StackConfig, build_stack_config, project_values, stack_file_config
from tests.harness import ProgramRun, run_program


def config_for(stack: str, **changes: Any) -> StackConfig:
    """Settings, plan and cfg of a stack file, with some project keys changed (None deletes)."""
    values = project_values(stack_file_config(stack))
    for key, value in changes.items():
        if value is None:
            values.pop(key, None)
        else:
            values[key] = value
    return build_stack_config(values, stack=stack, location="westeurope")


@pytest.fixture
def prod() -> StackConfig:
    return config_for("prod")


@pytest.fixture
def dev() -> StackConfig:
    return config_for("dev")


@pytest.fixture(scope="session")
def runs() -> dict[str, ProgramRun]:
    """The program run under mocks for each shipped stack file."""
    result = {stack: run_program(stack) for stack in ("dev", "prod")}
    for stack, run in result.items():
        assert run.error is None, f"{stack}: {run.error}"
    return result
