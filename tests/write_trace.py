"""Which paths a process tree writes to, seen with strace, and whether a pod
could write them with a read-only root filesystem.

A container with readOnlyRootFilesystem can write only to its volumes (and to
/dev, /proc and /sys, which are mounts of their own, /dev/shm included). Run
locally, a component writes to host paths that stand for the pod's paths (the
local AIRFLOW_HOME stands for /opt/airflow, say); a `PodFilesystem` maps them
back and names every write that lands outside the container's writable mounts.

strace rather than a before/after listing of directories: a file created and
removed again (a temporary file, a lock) fails just as surely on a read-only
root and leaves nothing behind to list.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

# Every system call that creates, changes or removes a name or an inode, the
# ones a read-only filesystem refuses with EROFS; and what keeps track of the
# working directory (relative paths) across forks. "?": the legacy calls x86_64
# has and arm64 lacks; strace skips a name the architecture does not have.
WRITE_CALLS = ("open", "creat", "openat", "openat2", "mkdir", "mkdirat", "rmdir", "unlink", "unlinkat",
               "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat", "truncate",
               "chmod", "fchmodat", "chown", "lchown", "fchownat", "utimensat", "mknod", "mknodat", "bind")
CWD_CALLS = ("chdir", "fchdir", "clone", "clone3", "fork", "vfork")
LEGACY = {"open", "creat", "mkdir", "rmdir", "unlink", "rename", "link", "symlink", "chmod", "chown", "lchown",
          "mknod", "fork", "vfork"}
WRITE_FLAGS = ("O_WRONLY", "O_RDWR", "O_CREAT", "O_TRUNC")
# Not the container's root filesystem: the runtime mounts these separately
# (/dev as a tmpfs with /dev/shm inside, /proc and /sys as their own
# filesystems), so readOnlyRootFilesystem leaves them as they are.
OWN_MOUNTS = ("/dev", "/proc", "/sys")


def strace_command(out: Path, command: list[str]) -> list[str]:
    """`command` under strace, following forks, writing successful calls to `out`.

    --seccomp-bpf stops the tracee only at the traced calls, so the rest of
    its system calls run at full speed.
    """
    strace = shutil.which("strace")
    if strace is None:
        raise RuntimeError("strace is not installed: run scripts/install")
    calls = ",".join(f"?{c}" if c in LEGACY else c for c in (*WRITE_CALLS, *CWD_CALLS))
    return [strace, "-f", "-qq", "-y", "--seccomp-bpf", "--interruptible=never", "-s", "4096", "-e", f"trace={calls}",
            "-e", "status=successful", "-o", str(out), *command]


# --------------------------------------------------------------------------
# Reading strace's output
# --------------------------------------------------------------------------

LINE = re.compile(r"^(?P<pid>\d+)\s+(?P<call>\w+)\((?P<args>.*)\)\s+=\s+(?P<ret>-?\w+)(?:<(?P<fd>.*)>)?")
DECODED = re.compile(r"^(?:AT_FDCWD|\d+)<(?P<path>.*)>$")


def _split_args(text: str) -> list[str]:
    """strace's argument list split at its top-level commas."""
    args, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\":
                i += 1
            elif ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "," and depth == 0:
            args.append(text[start:i].strip())
            start = i + 1
        i += 1
    args.append(text[start:].strip())
    return args


def _string(arg: str) -> str | None:
    """A quoted C string argument as text; None for NULL or anything else."""
    match = re.match(r'^"(.*)"(?:\.\.\.)?$', arg, re.S)
    if match is None:
        return None
    raw: bytes = ast.literal_eval('b"' + match.group(1) + '"')
    return raw.decode("utf-8", "surrogateescape")


def _dir(arg: str) -> str | None:
    """The directory a decoded dirfd argument (AT_FDCWD</x> or 3</x>) stands for."""
    match = DECODED.match(arg)
    return match.group("path") if match else None


def _join(base: str | None, path: str) -> str | None:
    if path.startswith("/"):
        return os.path.normpath(path)
    return os.path.normpath(os.path.join(base, path)) if base else None


def _joined_lines(lines: Iterable[str]) -> Iterator[str]:
    """Whole call lines: a call strace split around another process's
    ("<unfinished ...>" ... "<... call resumed>") joined again."""
    pending: dict[str, str] = {}
    for line in lines:
        head, _, rest = line.partition(" ")
        if line.endswith("<unfinished ...>"):
            pending[head] = line[: -len("<unfinished ...>")].rstrip()
            continue
        resumed = re.match(r"^\s*<\.\.\. \w+ resumed>\s?(.*)$", rest)
        if resumed:
            yield pending.pop(head, head + " ?(") + resumed.group(1)
            continue
        yield line


@dataclass
class Writes:
    """The paths a traced process tree wrote, absolute; the ones it wrote
    relative to a working directory it never showed are in `unresolved`."""

    paths: set[str] = field(default_factory=set)
    unresolved: list[str] = field(default_factory=list)


def _write_targets(call: str, args: list[str], fd: str | None, cwd: str | None) -> list[str | None]:
    """The paths one successful call wrote to: [] if it wrote none."""
    if call in ("open", "creat", "openat", "openat2"):
        # creat always creates; the others say so in their flags argument.
        flags = "O_CREAT" if call == "creat" else args[1 if call == "open" else 2]
        if not any(f in flags for f in WRITE_FLAGS):
            return []
        if fd and fd.startswith("/"):
            return [fd]
        if call in ("openat", "openat2"):
            return [_join(_dir(args[0]) or cwd, _string(args[1]) or "")]
        return [_join(cwd, _string(args[0]) or "")]
    at_calls = {"mkdirat": [(0, 1)], "unlinkat": [(0, 1)], "fchmodat": [(0, 1)], "fchownat": [(0, 1)],
                "mknodat": [(0, 1)], "renameat": [(0, 1), (2, 3)], "renameat2": [(0, 1), (2, 3)],
                "linkat": [(2, 3)], "symlinkat": [(1, 2)], "utimensat": [(0, 1)]}
    if call in at_calls:
        found: list[str | None] = []
        for dir_arg, path_arg in at_calls[call]:
            path = _string(args[path_arg])
            base = _dir(args[dir_arg]) or cwd
            # utimensat(fd, NULL, ...) changes the file behind fd itself.
            found.append(base if path is None else _join(base, path))
        return found
    plain_calls = {"mkdir": [0], "rmdir": [0], "unlink": [0], "truncate": [0], "chmod": [0], "chown": [0],
                   "lchown": [0], "mknod": [0], "rename": [0, 1], "link": [1], "symlink": [1]}
    if call in plain_calls:
        return [_join(cwd, _string(args[i]) or "") for i in plain_calls[call]]
    if call == "bind":
        match = re.search(r'sun_path="((?:[^"\\]|\\.)*)"', args[1])
        # An abstract socket (sun_path=@"...") has no name in the filesystem.
        return [_join(cwd, _string(f'"{match.group(1)}"') or "")] if match else []
    return []


def written_paths(trace: str, cwd: str) -> Writes:
    """Every path the traced tree wrote. `cwd`: the first process's working directory."""
    cwds: dict[str, str | None] = {}
    first: str | None = None
    writes = Writes()
    for line in _joined_lines(trace.splitlines()):
        match = LINE.match(line)
        if match is None:
            continue
        pid, call, ret, fd = match["pid"], match["call"], match["ret"], match["fd"]
        if first is None:
            first = pid
            cwds[pid] = cwd
        args = _split_args(match["args"])
        if args and args[0].startswith("AT_FDCWD<"):
            cwds[pid] = _dir(args[0])
        here = cwds.get(pid)
        if call in ("clone", "clone3", "fork", "vfork"):
            cwds.setdefault(ret, here)
        elif call == "chdir":
            cwds[pid] = _join(here, _string(args[0]) or "")
        elif call == "fchdir":
            cwds[pid] = _dir(args[0]) or here
        else:
            for path in _write_targets(call, args, fd, here):
                if path is None:
                    writes.unresolved.append(line)
                else:
                    writes.paths.add(path)
    return writes


# --------------------------------------------------------------------------
# The pod's view
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class PodFilesystem:
    """How a local run lays out one container's filesystem.

    places: local directory -> the pod path it stands for (the longest
    matching local prefix wins). mounts: the container's writable mount paths.
    """

    places: dict[str, str]
    mounts: tuple[str, ...]

    @classmethod
    def of(cls, container: dict[str, Any], places: dict[Path | str, str]) -> PodFilesystem:
        """For a container of a rendered manifest (camelCase keys)."""
        writable = tuple(m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly"))
        return cls({os.path.normpath(str(k)): v for k, v in places.items()}, writable)

    def pod_path(self, local: str) -> str | None:
        """The pod path a local path stands for; None if the layout has no place for it."""
        for prefix in sorted(self.places, key=len, reverse=True):
            if local == prefix or local.startswith(prefix.rstrip("/") + "/"):
                rest = local[len(prefix):].lstrip("/")
                return str(PurePosixPath(self.places[prefix]) / rest) if rest else self.places[prefix]
        return None

    def refused(self, writes: Writes) -> list[str]:
        """Every write a read-only root would refuse, as 'pod path (local path)'."""
        found = [f"unresolved relative path: {line}" for line in writes.unresolved]
        for local in sorted(writes.paths):
            if any(local == m or local.startswith(m + "/") for m in OWN_MOUNTS):
                continue
            pod = self.pod_path(local)
            if pod is None:
                found.append(f"? ({local}: no place in the pod's layout)")
            elif not any(pod == m or pod.startswith(m.rstrip("/") + "/") for m in self.mounts):
                found.append(f"{pod} ({local})")
        return found
