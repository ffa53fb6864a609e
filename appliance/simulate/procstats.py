"""What a process tree holds: processes, threads, open files, resident and proportional memory
(read from /proc, Linux). Used by the soak and capacity benchmarks and their tests."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass
class TreeUsage:
    processes: int = 0
    threads: int = 0
    open_files: int = 0
    rss_mb: float = 0.0
    pss_mb: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _session_of(pid: str) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2:].split()
    return int(fields[3])           # session id (field 6 of stat)


def session_pids(session: int) -> list[int]:
    """Every live process of a session (a daemon started with ``start_new_session``)."""
    return [int(p) for p in os.listdir("/proc") if p.isdigit() and _session_of(p) == session]


def tree_usage(session: int) -> TreeUsage:
    """Sum over the session's processes (PSS counts shared pages once across them)."""
    out = TreeUsage()
    for pid in session_pids(session):
        try:
            status = Path(f"/proc/{pid}/status").read_text()
            fds = len(os.listdir(f"/proc/{pid}/fd"))
            rollup = Path(f"/proc/{pid}/smaps_rollup").read_text()
        except OSError:
            continue                # gone meanwhile
        fields = {ln.split(":")[0]: ln.split(":")[1].split() for ln in status.splitlines()
                  if ":" in ln}
        out.processes += 1
        out.threads += int(fields.get("Threads", ["0"])[0])
        out.open_files += fds
        out.rss_mb += int(fields.get("VmRSS", ["0"])[0]) / 1024
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                out.pss_mb += int(line.split()[1]) / 1024
    out.rss_mb, out.pss_mb = round(out.rss_mb, 1), round(out.pss_mb, 1)
    return out
