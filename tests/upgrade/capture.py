"""Record what an earlier commit of this program declares for a stack, from git history.

    venv/bin/python -m tests.upgrade.capture <commit> <stack> > tests/upgrade/states/<release>-<stack>.json

The commit is checked out into a temporary worktree and run there with its own
tests/harness.py (its own mocks, as it ran then) and the recorder of this
checkout, which keeps every registration as the engine would see it. The
result is the state a stack deployed by that commit holds: the upgrade tests
preview the current program against it (tests/test_upgrade.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDER = Path(__file__).resolve().parent / "recorder.py"
CHECKOUT = "/home/deployer/airflow-aks"

# Runs inside the old checkout: only its own modules and the recorder (by path).
# The collector stays off: a short process, and with it on, full collections
# took about 40 % of a run (tests/harness.py).
_INSIDE = """
import gc, importlib.util, json, sys
gc.disable()
commit, recorder_path, *stacks = sys.argv[1:]
spec = importlib.util.spec_from_file_location("airflow_aks_recorder", recorder_path)
recorder = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recorder)
monitors = recorder.install()
from tests.harness import run_program
states = {}
for stack in stacks:
    made = len(monitors)
    run = run_program(stack)
    if run.error is not None:
        raise SystemExit(f"{commit} {stack}: {run.error}")
    [monitor] = monitors[made:]
    states[stack] = recorder.dumps(monitor.registrations, run.outputs, commit=commit, stack=stack)
sys.stdout.write(json.dumps(states))
"""


def capture_stacks(commit: str, stacks: Sequence[str], python: str = sys.executable) -> dict[str, str]:
    """Per stack, the JSON state `commit` declares for it (a first deployment under that commit's
    mocks): one checkout and one interpreter for all of them, as the program's first run in a
    process costs twice a later one."""
    full = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with tempfile.TemporaryDirectory(prefix="airflow-aks-release-") as tmp:
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), full],
                       check=True)
        try:
            done = subprocess.run([python, "-c", _INSIDE, full, str(RECORDER), *stacks], cwd=tree,
                                  capture_output=True, text=True, timeout=300, check=False,
                                  env={"PATH": "/usr/bin:/bin", "HOME": tmp})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)
    if done.returncode != 0:
        raise RuntimeError(f"capturing {commit} {' '.join(stacks)} failed:\n{done.stderr[-3000:]}")
    # Commits before 8a2887f gave docker-build the context's absolute path:
    # where the checkout was, the same for every run here.
    return {stack: state.replace(str(tree), CHECKOUT) for stack, state in json.loads(done.stdout).items()}


def capture(commit: str, stack: str, python: str = sys.executable) -> str:
    """The JSON state `commit` declares for `stack`."""
    return capture_stacks(commit, [stack], python)[stack]


if __name__ == "__main__":
    commit_arg, stack_arg = sys.argv[1:3]
    sys.stdout.write(capture(commit_arg, stack_arg))
