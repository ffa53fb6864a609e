"""A state file written off the threads that change the state.

The SIP thread answers every call of its process; a disk that stalls (a journal commit on a
busy or failing disk can take many seconds) must not stop it. Its state snapshots are handed
to a writer thread; a snapshot replaced before it was written is skipped, since only the
latest matters to the readers (status, health, the panel).
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any

from .atomic import write_json_atomic

log = logging.getLogger(__name__)


class SnapshotFile:
    """``put`` the latest state (any thread, never waits on the disk); a thread writes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cv = threading.Condition()
        self._latest: dict[str, Any] | None = None
        self._taken = 0                 # snapshots put
        self._written = 0               # the last of them written (or given up on)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"state-{path.stem}",
                                        daemon=True)
        self._thread.start()

    def put(self, state: dict[str, Any]) -> None:
        with self._cv:
            self._latest = state
            self._taken += 1
            self._cv.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until the last snapshot put is on disk; whether it got there in time."""
        with self._cv:
            wanted = self._taken
            return self._cv.wait_for(lambda: self._written >= wanted, timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is pending, then stop the thread."""
        self.flush(timeout)
        with self._cv:
            self._closed = True
            self._cv.notify_all()
        self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._cv:
                self._cv.wait_for(lambda: self._latest is not None or self._closed)
                if self._latest is None:
                    return
                state, number, self._latest = self._latest, self._taken, None
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                # read by status and the panel, rewritten every few seconds: not synced
                write_json_atomic(self.path, state, durable=False)
            except Exception as exc:    # noqa: BLE001 - the writer must outlive any one state
                log.error("state not written", extra={"file": self.path.name,
                                                      "reason": str(exc)})
            with self._cv:
                self._written = number
                self._cv.notify_all()
