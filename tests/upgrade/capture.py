"""Record what an earlier commit of this program declares for a stack, from git history.

    venv/bin/python -m tests.upgrade.capture <commit> <stack> > tests/upgrade/states/<release>-<stack>.json

The commit is checked out into a temporary worktree and run there with its own
tests/harness.py (its own mocks, as it ran then) and the recorder of this
checkout, which keeps every registration as the engine would see it. The
result is the state a stack deployed by that commit holds: the upgrade tests
preview the current program against it (tests/test_upgrade.py).
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDER = Path(__file__).resolve().parent / "recorder.py"
CHECKOUT = "/home/deployer/airflow-aks"

# Runs inside the old checkout: only its own modules and the recorder (by path).
_INSIDE = """
import importlib.util, sys
commit, stack, recorder_path = sys.argv[1:4]
spec = importlib.util.spec_from_file_location("airflow_aks_recorder", recorder_path)
recorder = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recorder)
monitors = recorder.install()
from tests.harness import run_program
run = run_program(stack)
if run.error is not None:
    raise SystemExit(f"{commit} {stack}: {run.error}")
[monitor] = monitors
sys.stdout.write(recorder.dumps(monitor.registrations, run.outputs, commit=commit, stack=stack))
"""


def capture(commit: str, stack: str, python: str = sys.executable) -> str:
    """The JSON state `commit` declares for `stack` (a first deployment under that commit's mocks)."""
    full = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="airflow-aks-release-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), full],
                       check=True)
        try:
            done = subprocess.run([python, "-c", _INSIDE, full, stack, str(RECORDER)], cwd=tree,
                                  capture_output=True, text=True, timeout=300, check=False,
                                  env={"PATH": "/usr/bin:/bin", "HOME": tmp})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    if done.returncode != 0:
        raise RuntimeError(f"capturing {commit} {stack} failed:\n{done.stderr[-3000:]}")
    # Commits before 8a2887f gave docker-build the context's absolute path:
    # where the checkout was, the same for every run here.
    return done.stdout.replace(str(tree), CHECKOUT)


if __name__ == "__main__":
    commit_arg, stack_arg = sys.argv[1:3]
    sys.stdout.write(capture(commit_arg, stack_arg))
