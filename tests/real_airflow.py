"""Helpers for tests that run real Apache Airflow from ./venv-airflow."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
AIRFLOW_VENV = ROOT / "venv-airflow"


def airflow_python() -> Path:
    python = AIRFLOW_VENV / "bin" / "python"
    if not python.exists():
        raise RuntimeError(f"{python} is missing: run scripts/install (it installs real Airflow for these tests)")
    return python


def airflow_env(home: Path, env: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment without Airflow or Pulumi settings, with ./venv-airflow first
    on PATH and a private AIRFLOW_HOME."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PULUMI"))}
    base["PATH"] = f"{AIRFLOW_VENV / 'bin'}:{base.get('PATH', '/usr/bin:/bin')}"
    return {**base, "AIRFLOW_HOME": str(home), **(env or {})}


def run_airflow_python(code: str, *, home: Path, env: dict[str, str] | None = None,
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run code under the real Airflow interpreter with a private AIRFLOW_HOME."""
    return subprocess.run([str(airflow_python()), "-c", code],
                          env=airflow_env(home, {"AIRFLOW__CORE__LOAD_EXAMPLES": "False", **(env or {})}),
                          cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
