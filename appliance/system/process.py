"""Child processes of the appliance (capture workers, the SIP front, the local broker)."""

from __future__ import annotations

import ctypes
import signal


def die_with_parent() -> None:
    """preexec_fn of a child process: SIGTERM it when the appliance process dies, so no
    orphan keeps ports (and half-finished calls) after a crash."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(1, signal.SIGTERM)       # PR_SET_PDEATHSIG
