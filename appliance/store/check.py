"""Which month folders of the store are damaged, found by reading them in another process.

After a start the daemon wants to know whether a month nobody reads lost something. Loading
every month in the daemon would parse tens of megabytes of JSON under its GIL while it
answers the panel, and leave its heap at that peak; this reads the files in a child process,
changes nothing, and names only the months that need the daemon's own load (which sets
aside, repairs and records the damage). A month is damaged when a snapshot does not parse
or a journal line before its end fails its CRC; a last line without its newline is a write
cut by a crash, not damage.

    python -m appliance.store.check <partition root> ...   -> {"damaged": [[root, month], ...]}
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from .journal import _parse
from .monthly import MONTH

SNAPSHOTS = ("snapshot.json", "snapshot.prev.json")
JOURNALS = ("journal.log", "journal.prev.log")


def month_damaged(folder: Path) -> str | None:
    """What is wrong with one month's files, or None."""
    for name in SNAPSHOTS:
        try:
            json.loads((folder / name).read_bytes())
        except FileNotFoundError:
            continue
        except ValueError as exc:
            return f"{name}: {exc}"
    for name in JOURNALS:
        try:
            data = (folder / name).read_bytes()
        except FileNotFoundError:
            continue
        lines = data.split(b"\n")[:-1]      # the part after the last newline: a torn tail
        bad = sum(1 for line in lines if _parse(line) is None)
        if bad:
            return f"{name}: {bad} corrupt line(s)"
    return None


def damaged_months(roots: list[Path]) -> list[tuple[str, str]]:
    """(root, month) of every damaged month under the partition roots."""
    out = []
    for root in roots:
        if not root.is_dir():
            continue
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and MONTH.fullmatch(p.name)):
            try:
                if month_damaged(folder) is not None:
                    out.append((str(root), folder.name))
            except OSError:                 # unreadable: the daemon's load will say why
                out.append((str(root), folder.name))
    return out


def main(argv: list[str]) -> int:
    os.nice(10)                             # a background check: answers and capture first
    json.dump({"damaged": damaged_months([Path(a) for a in argv])}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
