"""Read the stack's config through Pulumi and turn it into settings, plan and cfg.

``build_stack_config`` is pure and shared by the Pulumi program, the tests and
any offline tooling; ``read_stack_config`` only adds the Pulumi plumbing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi
import yaml
from pulumi.runtime import config as runtime_config

from components.model.airflow_cfg import render_airflow_cfg
from components.model.capacity import CapacityPlan, plan_capacity
from components.model.settings import PROJECT, ConfigError, Settings, parse_settings
from components.stack_keys import stray_key_problems


@dataclass(frozen=True)
class StackConfig:
    settings: Settings
    plan: CapacityPlan
    airflow_cfg: str


def build_stack_config(values: Mapping[str, Any], *, stack: str,
                       location: str | None, secret_keys: frozenset[str] | None = None,
                       stack_keys: Iterable[str] = ()) -> StackConfig:
    """Validate, plan and render; ConfigError before anything is declared.
    secret_keys: the project's keys Pulumi holds as secrets (None: not known).
    stack_keys: every key of the stack's config, any namespace, so that one
    nothing reads (a mistyped prefix) is refused with the project's own."""
    problems = stray_key_problems(stack_keys)
    try:
        settings = parse_settings(values, stack=stack, location=location, secret_keys=secret_keys)
    except ConfigError as err:
        raise ConfigError(problems + err.problems) from None
    if problems:
        raise ConfigError(problems)
    plan = plan_capacity(settings)
    return StackConfig(settings=settings, plan=plan, airflow_cfg=render_airflow_cfg(settings, plan))


PROJECT_DIR = Path(__file__).resolve().parent.parent


def stack_file_config(stack: str, project_dir: Path = PROJECT_DIR) -> dict[str, Any]:
    """The `config:` block of Pulumi.<stack>.yaml, as YAML values."""
    path = project_dir / f"Pulumi.{stack}.yaml"
    if not path.exists():
        raise FileNotFoundError(f"no stack file {path.name} in {project_dir}")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.MarkedYAMLError as err:
        raise ConfigError([(f"{path.name} (YAML)", yaml_error_line(err))]) from None
    if not isinstance(data, Mapping) or not isinstance(data.get("config") or {}, Mapping):
        raise ConfigError([(f"{path.name} (YAML)", "must be a mapping with a `config:` mapping of "
                            "<namespace>:<key> entries")])
    return dict(data.get("config") or {})


def yaml_error_line(err: yaml.MarkedYAMLError) -> str:
    """One line: where (1-based line and column, as editors count) and what."""
    mark = err.problem_mark or err.context_mark
    where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark is not None else ""
    what = " ".join(part for part in (err.context, err.problem) if part)
    return f"{where}not valid YAML: {what}"


def project_values(config: Mapping[str, Any], project: str = PROJECT) -> dict[str, Any]:
    """The project's keys of a config block, without the `<project>:` prefix."""
    prefix = f"{project}:"
    return {k[len(prefix):]: v for k, v in config.items() if k.startswith(prefix)}


def stack_config_from_file(stack: str, project_dir: Path = PROJECT_DIR) -> StackConfig:
    """Settings, plan and cfg straight from Pulumi.<stack>.yaml, without the Pulumi CLI."""
    config = stack_file_config(stack, project_dir)
    values = project_values(config)
    return build_stack_config(values, stack=stack, location=config.get("azure-native:location"),
                              secret_keys=file_secret_keys(values), stack_keys=config)


def file_secret_keys(values: Mapping[str, Any]) -> frozenset[str]:
    """The keys of a stack file that hold a `{secure: ...}` value anywhere in
    them, as Pulumi marks a key secret when any part of it is (`--path`)."""
    def secure(value: Any) -> bool:
        if isinstance(value, Mapping):
            return set(value) == {"secure"} or any(secure(v) for v in value.values())
        if isinstance(value, list):
            return any(secure(v) for v in value)
        return False
    return frozenset(k for k, v in values.items() if secure(v))


def project_config_values(project: str = PROJECT) -> dict[str, Any]:
    """Every ``<project>:*`` key of the stack, without the prefix.

    pulumi.Config only answers for keys one asks about; catching a misspelt key
    needs the whole set, which the runtime keeps in its config map (filled by
    the language host from the CLI, or from PULUMI_CONFIG).
    """
    prefix = f"{project}:"
    return {k[len(prefix):]: v for k, v in all_config_values().items() if k.startswith(prefix)}


def all_config_values() -> dict[str, Any]:
    """The stack's whole config map, every namespace, as the runtime holds it."""
    merged: dict[str, Any] = dict(runtime_config.get_config_env())
    merged.update(runtime_config.CONFIG.get())
    return merged


def read_stack_config() -> StackConfig:
    """The current stack's config; a bad one stops the program with one clear message."""
    prefix = f"{PROJECT}:"
    secret = {*runtime_config._SECRET_KEYS.get(), *runtime_config.get_config_secret_keys_env()}
    try:
        return build_stack_config(
            project_config_values(),
            stack=pulumi.get_stack(),
            location=pulumi.Config("azure-native").get("location"),
            secret_keys=frozenset(k[len(prefix):] for k in secret if k.startswith(prefix)),
            stack_keys=all_config_values(),
        )
    except ConfigError as err:
        # RunError ends the program with the message alone, no traceback.
        raise pulumi.RunError(str(err)) from None
