"""What a process tree holds: processes, threads, open files, resident and proportional memory
(read from /proc, Linux). Used by the soak and capacity benchmarks and their tests."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class TreeUsage:
    processes: int = 0
    threads: int = 0
    open_files: int = 0
    rss_mb: float = 0.0
    pss_mb: float = 0.0
    # PSS per kind of process (``role_of``): which part of the box a growth belongs to
    pss_by_role: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def role_of(cmdline: list[str]) -> str:
    """The box's part a process is: ``worker`` (capture), ``daemon`` (store, panel,
    recognizer), ``front`` (kamailio), ``broker`` (mosquitto), else the program's name."""
    if not cmdline:
        return "other"
    if "--sip-worker" in cmdline:
        return "worker"
    # ``python -m appliance.cli ...`` or the ``appliance`` script (run by its interpreter)
    if "appliance.cli" in cmdline or any(Path(a).name == "appliance" for a in cmdline[:2]):
        return "daemon"
    name = Path(cmdline[0]).name
    return {"kamailio": "front", "mosquitto": "broker"}.get(name, name)


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
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue                # gone meanwhile
        fields = {ln.split(":")[0]: ln.split(":")[1].split() for ln in status.splitlines()
                  if ":" in ln}
        out.processes += 1
        out.threads += int(fields.get("Threads", ["0"])[0])
        out.open_files += fds
        out.rss_mb += int(fields.get("VmRSS", ["0"])[0]) / 1024
        role = role_of([a for a in cmdline.split("\0") if a])
        for line in rollup.splitlines():
            if line.startswith("Pss:"):
                pss = int(line.split()[1]) / 1024
                out.pss_mb += pss
                out.pss_by_role[role] = out.pss_by_role.get(role, 0.0) + pss
    out.rss_mb, out.pss_mb = round(out.rss_mb, 1), round(out.pss_mb, 1)
    out.pss_by_role = {k: round(v, 1) for k, v in sorted(out.pss_by_role.items())}
    return out
