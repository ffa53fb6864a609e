"""Child processes of the appliance (capture workers, the SIP front, the local broker), and
the process settings every appliance process starts with."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from typing import Any

log = logging.getLogger(__name__)


def single_threaded_blas() -> None:
    """Keep numpy's BLAS in the calling thread (before numpy is imported). The box's work is
    spread over calls and onnxruntime has its own threads; BLAS helper threads only add
    contention on 2 cores, and a multi-threaded matrix product can wait forever for a helper
    that a ``fork()`` from another thread shut down (OpenBLAS stops its pool before a fork)."""
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def _glibc() -> Any:
    """glibc's malloc controls, or None on another C library (its own allocator, its own
    rules: nothing to tune this way)."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:
        return None


def return_free_memory() -> None:
    """Give the heap's free pages back to the system after a large transient job (the
    warm-up's KPI months): glibc keeps them otherwise, and RSS stays at the peak."""
    import gc

    gc.collect()
    libc = _glibc()
    if libc is not None:
        libc.malloc_trim(0)


M_ARENA_MAX = -8            # glibc's malloc.h


def limit_malloc_arenas(arenas: int = 2) -> None:
    """At most ``arenas`` malloc arenas in this process (what ``MALLOC_ARENA_MAX=2`` in the
    systemd unit does, also when the box is started otherwise): glibc gives each new thread
    its own arena up to 8 per core, and threads that come and go with calls and with the
    recognizer's work leave each one fragmented for months."""
    libc = _glibc()
    if libc is not None:
        libc.mallopt(M_ARENA_MAX, arenas)


PRIVATE_UMASK = 0o027


def private_files() -> None:
    """Files and folders this process creates are not readable by other users, whatever the
    umask of the shell that started it (calls, transcripts and phone numbers are personal
    data; the systemd unit sets the same ``UMask``)."""
    os.umask(os.umask(PRIVATE_UMASK) | PRIVATE_UMASK)


def spawn_child(cmd: Sequence[str], **popen: Any) -> subprocess.Popen[bytes]:
    """Start a child that gets SIGTERM when the appliance process dies (so no orphan keeps
    ports and half-finished calls after a crash). Strictly, when the thread that called this
    ends: call it from a thread that lives as long as the process.

    ``setpriv --pdeathsig`` sets that in the child instead of a ``preexec_fn``: a preexec_fn
    makes Python ``fork()`` the whole multi-threaded daemon, which runs fork handlers in it
    (OpenBLAS's stalled a recognizer thread for good) and can deadlock the child before
    exec; without one, Python starts the child with ``vfork``.
    """
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        log.warning("setpriv not found: child processes will outlive a crash of the appliance",
                    extra={"hint": "install util-linux"})
        return subprocess.Popen(list(cmd), **popen)
    child = subprocess.Popen([setpriv, "--pdeathsig", "TERM", "--", *cmd], **popen)
    _until_exec(child, os.path.realpath(setpriv))
    return child


def _until_exec(child: subprocess.Popen[bytes], setpriv: str, timeout_s: float = 30.0) -> None:
    """Return once setpriv has set the signal and started the command (its /proc entry shows
    the command's binary), as a preexec_fn had done before Popen returned: a parent that dies
    in between would otherwise leave the child without the signal, for good."""
    exe = f"/proc/{child.pid}/exe"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        try:
            if os.readlink(exe) != setpriv:
                return
        except OSError:
            return                  # exited meanwhile, or no /proc: nothing to wait for
        time.sleep(0.001)
    if child.poll() is None:
        log.warning("child process slow to start", extra={"pid": child.pid,
                                                          "waited_s": timeout_s})
