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


def run_airflow_python(code: str, *, home: Path, env: dict[str, str] | None = None,
                       timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run code under the real Airflow interpreter with a private AIRFLOW_HOME."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PULUMI"))}
    full_env.update({"AIRFLOW_HOME": str(home), "AIRFLOW__CORE__LOAD_EXAMPLES": "False"})
    full_env.update(env or {})
    return subprocess.run([str(airflow_python()), "-c", code], env=full_env, cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, check=False)
