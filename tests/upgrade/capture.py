"""Record what an earlier commit of this program declares for a stack, from git history.

    venv/bin/python -m tests.upgrade.capture <commit> <stack> > tests/upgrade/states/<release>-<stack>.json

Each commit is checked out into a temporary worktree and run there with its own
tests/harness.py (its own mocks, as it ran then) and the recorder of this
checkout, which keeps every registration as the engine would see it. The
result is the state a stack deployed by that commit holds: the upgrade tests
preview the current program against it (tests/test_upgrade.py).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RECORDER = Path(__file__).resolve().parent / "recorder.py"
CHECKOUT = "/home/deployer/airflow-aks"

# Runs the commits' checkouts in turn, in one interpreter: the program's first
# run in a process costs about twice a later one (the SDK's and the providers'
# modules load then), and the commits share that. Before each checkout, every
# module loaded from the previous one is dropped, so each commit runs its own
# code; the recorder (loaded by path) and the SDK stay. The collector stays
# off: a short process, and with it on, full collections took about 40 % of a
# run (tests/harness.py).
_INSIDE = """
import gc, importlib, importlib.util, json, os, sys
gc.disable()
recorder_path, stacks, *checkouts = sys.argv[1:]
spec = importlib.util.spec_from_file_location("airflow_aks_recorder", recorder_path)
recorder = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(recorder)
monitors = recorder.install()
recording = recorder.mocks.MockMonitor
checkouts_dir = os.getcwd() + os.sep
states = {}
for checkout in checkouts:
    commit, tree = checkout.split("=", 1)
    for name, module in list(sys.modules.items()):
        where = [getattr(module, "__file__", None) or "", *(getattr(module, "__path__", None) or [])]
        if any(str(w).startswith(checkouts_dir) for w in where):
            del sys.modules[name]
    os.chdir(tree)
    sys.path[0] = tree
    importlib.invalidate_caches()
    # An old harness may install a recorder of its own: each commit starts from this one.
    recorder.mocks.MockMonitor = recording
    from tests.harness import run_program
    states[commit] = {}
    for stack in stacks.split(","):
        made = len(monitors)
        with recorder.without_stack_traces():
            run = run_program(stack)
        if run.error is not None:
            raise SystemExit(f"{commit} {stack}: {run.error}")
        [monitor] = monitors[made:]
        states[commit][stack] = recorder.dumps(monitor.registrations, run.outputs, commit=commit, stack=stack)
sys.stdout.write(json.dumps(states))
"""


def full_commit(commit: str) -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", f"{commit}^{{commit}}"],
                          capture_output=True, text=True, check=True).stdout.strip()


@contextlib.contextmanager
def checkouts(commits: Sequence[str], tmp: Path) -> Iterator[dict[str, Path]]:
    """Each commit in a detached worktree of its own under `tmp`, removed after."""
    trees: dict[str, Path] = {}
    try:
        for i, commit in enumerate(commits):
            tree = tmp / str(i) / "tree"
            tree.parent.mkdir()
            subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "--quiet", str(tree), commit],
                           check=True)
            trees[commit] = tree
        yield trees
    finally:
        for tree in trees.values():
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True)


def capture_commits(commits: Sequence[str], stacks: Sequence[str],
                    python: str = sys.executable) -> dict[str, dict[str, str]]:
    """Per commit (as given) and stack, the JSON state the commit declares for the stack (a first
    deployment under that commit's mocks)."""
    full = {commit: full_commit(commit) for commit in commits}
    with tempfile.TemporaryDirectory(prefix="airflow-aks-release-") as tmp, \
            checkouts(list(dict.fromkeys(full.values())), Path(tmp)) as trees:
        # Run from the directory that holds the checkouts (what _INSIDE drops modules from).
        done = subprocess.run([python, "-c", _INSIDE, str(RECORDER), ",".join(stacks),
                               *[f"{commit}={tree}" for commit, tree in trees.items()]],
                              cwd=tmp, capture_output=True, text=True, timeout=600, check=False,
                              env={"PATH": "/usr/bin:/bin", "HOME": tmp})
    if done.returncode != 0:
        raise RuntimeError(f"capturing {' '.join(commits)} ({' '.join(stacks)}) failed:\n{done.stderr[-3000:]}")
    states = json.loads(done.stdout)
    # Commits before 8a2887f gave docker-build the context's absolute path:
    # where the checkout was, the same for every run here.
    return {commit: {stack: state.replace(str(trees[full[commit]]), CHECKOUT)
                     for stack, state in states[full[commit]].items()} for commit in commits}


def capture(commit: str, stack: str, python: str = sys.executable) -> str:
    """The JSON state `commit` declares for `stack`."""
    return capture_commits([commit], [stack], python)[commit][stack]


if __name__ == "__main__":
    commit_arg, stack_arg = sys.argv[1:3]
    sys.stdout.write(capture(commit_arg, stack_arg))
