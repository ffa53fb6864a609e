"""Free space where the appliance writes, and whether recording may go on."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass
class DiskState:
    free_bytes: int
    total_bytes: int

    @property
    def free_percent(self) -> float:
        return 100.0 * self.free_bytes / self.total_bytes if self.total_bytes else 0.0

    @property
    def free_mb(self) -> float:
        return self.free_bytes / 2**20

    def as_dict(self) -> dict[str, float]:
        return {"free_mb": round(self.free_mb, 1), "total_mb": round(self.total_bytes / 2**20, 1),
                "free_percent": round(self.free_percent, 2)}


def disk_state(path: Path) -> DiskState:
    st = os.statvfs(path)
    return DiskState(st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize)


class RecordingGuard:
    """Says whether a new call may be recorded: not when free space is below
    ``floor_mb``. Checked per call; statvfs is cheap, and cached for a second anyway."""

    def __init__(self, path: Path, floor_mb: float) -> None:
        self.path = path
        self.floor_mb = floor_mb
        self._checked = 0.0
        self._ok = True

    def allowed(self) -> bool:
        now = time.monotonic()
        if now - self._checked >= 1.0:
            try:
                self._ok = disk_state(self.path).free_mb >= self.floor_mb
            except OSError:
                self._ok = True          # cannot tell: let recording try (and fail loudly)
            self._checked = now
        return self._ok
