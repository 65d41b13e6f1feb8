"""A forked process's resident pages against its parent's, from Linux's pagemap.

Standard library only: bench/pages.py also runs it under the real Airflow's
interpreter. Each resident page of the child is one of:

- shared with the parent: the same physical page (the fork's copy-on-write
  sharing still holds);
- copied: the parent maps a different physical page at that address, so one of
  the two wrote to it after the fork and the kernel copied it. "private" when
  only the child maps its copy (the child wrote it: memory the child costs),
  "shared" when other processes map it too (the parent wrote its own page and
  the old one stays shared among its children);
- new: the parent has no page there (the child's own allocations).

Reading physical frame numbers needs CAP_SYS_ADMIN (root); without it the
kernel reports them as 0 and nothing could be told apart, so this refuses.
"""

from __future__ import annotations

import os
import struct
from collections import Counter
from dataclasses import dataclass

PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 2**20
PFN_MASK = (1 << 55) - 1
KINDS = ("shared with parent", "copied, private", "copied, shared", "new, private", "new, shared")


@dataclass(frozen=True)
class Mapping:
    start: int
    end: int
    name: str

    @property
    def kind(self) -> str:
        """What the mapping holds: the heap, anonymous memory (Python's arenas,
        mmap), a library's pages, the stack..."""
        if self.name.startswith("["):
            return self.name
        if not self.name:
            return "anonymous"
        return "library" if ".so" in self.name or "/python" in self.name else "file"


def mappings(pid: int) -> list[Mapping]:
    found = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split(None, 5)
            start, end = (int(x, 16) for x in fields[0].split("-"))
            found.append(Mapping(start, end, fields[5].strip() if len(fields) > 5 else ""))
    return found


def frames(pid: int, start: int, end: int) -> list[int | None]:
    """The physical frame of each page in [start, end), None where not resident."""
    with open(f"/proc/{pid}/pagemap", "rb") as pagemap:
        pagemap.seek(start // PAGE * 8)
        data = pagemap.read((end - start) // PAGE * 8)
    entries = struct.unpack(f"<{len(data) // 8}Q", data)
    return [e & PFN_MASK if e >> 63 & 1 else None for e in entries]


def _require_frames() -> None:
    resident = [f for m in mappings(os.getpid()) if m.kind == "[stack]"
                for f in frames(os.getpid(), m.start, m.end) if f is not None]
    if not any(resident):
        raise PermissionError("pagemap shows no physical frames: run as root (CAP_SYS_ADMIN)")


def classify(parent: int, child: int, within: tuple[int, int] | None = None) -> Counter[tuple[str, str]]:
    """Pages of the child by (mapping kind, page kind), see the module's doc;
    only those in the address range `within` if given."""
    _require_frames()
    theirs = mappings(parent)
    counts: Counter[tuple[str, str]] = Counter()
    with open("/proc/kpagecount", "rb") as kpagecount:
        for m in mappings(child):
            if within is not None:
                m = Mapping(max(m.start, within[0]), min(m.end, within[1]), m.name)
            if m.name == "[vsyscall]" or m.start >= m.end:
                continue
            try:
                mine = frames(child, m.start, m.end)
            except OSError:
                continue
            parents: list[int | None] = [None] * len(mine)
            for p in theirs:
                lo, hi = max(m.start, p.start), min(m.end, p.end)
                if lo < hi:
                    parents[(lo - m.start) // PAGE:(hi - m.start) // PAGE] = frames(parent, lo, hi)
            for frame, theirs_frame in zip(mine, parents, strict=True):
                if frame is None:
                    continue
                if frame == theirs_frame:
                    counts[(m.kind, "shared with parent")] += 1
                    continue
                kpagecount.seek(frame * 8)
                mapped_by = struct.unpack("<Q", kpagecount.read(8))[0]
                origin = "copied" if theirs_frame is not None else "new"
                counts[(m.kind, f"{origin}, {'private' if mapped_by == 1 else 'shared'}")] += 1
    return counts


def summary(counts: Counter[tuple[str, str]]) -> dict[str, float]:
    """MiB per page kind, and the child's private pages per mapping kind."""
    out = {kind: round(sum(n for (_, k), n in counts.items() if k == kind) * PAGE / MIB, 2) for kind in KINDS}
    private = Counter[str]()
    for (mapping, kind), n in counts.items():
        if kind.endswith("private"):
            private[mapping] += n
    out.update({f"private in {m}": round(n * PAGE / MIB, 2) for m, n in private.most_common()})
    return out
