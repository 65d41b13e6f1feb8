"""Run the Pulumi program for a stack file under SDK mocks and record what it declares.

Each run happens in a fresh ``contextvars.Context`` so that the SDK's per-run
state (root stack, config map) never leaks from one run into the next.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import runpy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import settings as runtime_settings
from pulumi.runtime.stack import run_pulumi_func

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "airflow-aks"


def stack_file_config(stack: str) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml as YAML values."""
    data = yaml.safe_load((ROOT / f"Pulumi.{stack}.yaml").read_text()) or {}
    return dict(data.get("config") or {})


def cli_form(config: dict[str, Any]) -> dict[str, str]:
    """Config as the Pulumi CLI hands it to a program: strings, objects as JSON."""
    out = {}
    for key, value in config.items():
        if isinstance(value, (dict, list)):
            out[key] = json.dumps(value)
        elif isinstance(value, bool):
            out[key] = "true" if value else "false"
        else:
            out[key] = str(value)
    return out


def project_values(config: dict[str, Any]) -> dict[str, Any]:
    """The project's keys without the `airflow-aks:` prefix."""
    prefix = f"{PROJECT}:"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


@dataclass
class DeclaredResource:
    type: str
    name: str
    inputs: dict[str, Any]
    provider: str | None = None


class Mocks(pulumi.runtime.Mocks):
    """Answers every resource registration and invoke of the program."""

    def __init__(self) -> None:
        self.resources: list[DeclaredResource] = []
        self.invokes: list[tuple[str, dict[str, Any]]] = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str | None, dict]:
        self.resources.append(DeclaredResource(args.typ, args.name, dict(args.inputs), args.provider))
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: pulumi.runtime.MockCallArgs) -> dict:
        self.invokes.append((args.token, dict(args.args)))
        raise NotImplementedError(f"no mock answer for invoke {args.token}")


@dataclass
class ProgramRun:
    stack: str
    resources: list[DeclaredResource]
    outputs: dict[str, Any] = field(default_factory=dict)
    error: BaseException | None = None

    def of_type(self, typ: str) -> list[DeclaredResource]:
        return [r for r in self.resources if r.type == typ]


async def _resolve(value: Any) -> Any:
    if isinstance(value, pulumi.Output):
        return await _resolve(await value.future())
    if isinstance(value, dict):
        return {k: await _resolve(v) for k, v in value.items()}
    if isinstance(value, list):
        return [await _resolve(v) for v in value]
    return value


def run_program(stack: str, config: dict[str, Any] | None = None) -> ProgramRun:
    """Run __main__.py with the given YAML-form config (default: the stack file's)."""
    values = stack_file_config(stack) if config is None else config
    mocks = Mocks()
    run = ProgramRun(stack=stack, resources=mocks.resources)

    def go() -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        pulumi.runtime.set_all_config(cli_form(values), [])
        pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False)
        try:
            def program() -> None:
                runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__")

            try:
                loop.run_until_complete(run_pulumi_func(program))
            except BaseException as err:  # the test inspects it
                run.error = err
                return
            root = runtime_settings.get_root_resource()
            run.outputs = loop.run_until_complete(_resolve(dict(root.outputs)))  # type: ignore[union-attr]
        finally:
            loop.close()
            asyncio.set_event_loop(None)

    contextvars.Context().run(go)
    return run
