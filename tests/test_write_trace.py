"""The strace reader that tests/test_written_paths.py relies on: it must see
every kind of write, resolve relative paths across chdir and fork, and not
count reads."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.write_trace import PodFilesystem, Writes, strace_command, written_paths

# Real components (scripts/test --fast leaves these out for a quick run).
pytestmark = pytest.mark.real

WRITER = """
import os, socket, sys

os.chdir(sys.argv[1])
os.mkdir("made")
with open("made/new.txt", "w") as f:
    f.write("x")
os.rename("made/new.txt", "made/renamed.txt")
os.symlink("renamed.txt", "made/link")
os.chmod("made/renamed.txt", 0o600)
os.utime("made/renamed.txt")
os.truncate("made/renamed.txt", 0)
open(sys.argv[2]).read()
with socket.socket(socket.AF_UNIX) as s:
    s.bind("sock")
pid = os.fork()
if pid == 0:
    open("child.txt", "a").close()
    os._exit(0)
os.waitpid(pid, 0)
os.unlink("made/link")
os.rmdir(sys.argv[3])
"""


def test_the_tracer_sees_each_kind_of_write_and_no_read(tmp_path: Path) -> None:
    base, empty, readme = tmp_path / "base", tmp_path / "empty", Path(__file__)
    base.mkdir()
    empty.mkdir()
    out = tmp_path / "trace.txt"
    subprocess.run(strace_command(out, [sys.executable, "-c", WRITER, str(base), str(readme), str(empty)]),
                   check=True, cwd=tmp_path, capture_output=True)
    writes = written_paths(out.read_text(), str(tmp_path))
    mine = {p for p in writes.paths if p.startswith(str(tmp_path))}
    assert mine == {str(base / p) for p in ("made", "made/new.txt", "made/renamed.txt", "made/link", "sock",
                                           "child.txt")} | {str(empty)}
    assert str(readme) not in writes.paths
    assert writes.unresolved == []


def test_a_relative_write_of_a_process_with_no_known_directory_is_reported() -> None:
    trace = '42 mkdir("somewhere", 0777) = 0\n'
    writes = written_paths(trace, "")
    assert writes.unresolved and not writes.paths


def test_writes_outside_the_writable_mounts_are_refused() -> None:
    container = {"volumeMounts": [
        {"name": "logs", "mountPath": "/opt/airflow/logs"},
        {"name": "config", "mountPath": "/opt/airflow/airflow.cfg", "subPath": "airflow.cfg", "readOnly": True},
    ]}
    fs = PodFilesystem.of(container, {"/tmp/home": "/opt/airflow", "/tmp": "/tmp"})
    writes = Writes({"/tmp/home/logs/dag/1.log", "/tmp/home/airflow.cfg", "/tmp/x", "/dev/shm/sem.1",
                     "/root/.cache/y"})
    assert fs.refused(writes) == [
        "? (/root/.cache/y: no place in the pod's layout)",
        "/opt/airflow/airflow.cfg (/tmp/home/airflow.cfg)",
        "/tmp/x (/tmp/x)",
    ]
