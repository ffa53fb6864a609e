"""A write that fails (full disk, file size limit, I/O error) leaves every durable file of
the store as it was: no torn line for the next write to be glued to, no temporary file,
and after a reload every acknowledged write is there.

Each write path is driven twice: with a real short write (``RLIMIT_FSIZE`` in a
subprocess: the kernel writes what fits, then EFBIG) and with ENOSPC or EIO injected
through the system-call seam of ``appliance.system.atomic``.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from appliance.system import atomic
from faultcases import CASES, expected, temporaries

TESTS = Path(__file__).parent

DRIVER = textwrap.dedent("""
    import json, resource, signal, sys
    from pathlib import Path
    sys.path.insert(0, sys.argv[3])
    import faultcases
    case = faultcases.CASES[sys.argv[2]]
    data = Path(sys.argv[1])
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)      # a write past the limit: EFBIG
    h = case.open(data)
    for i in case.prefill + [1, 2, 3]:
        case.write(h, i)
    target = case.target(data)
    before = target.read_bytes()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) + case.slack, hard))
    try:
        case.write(h, 4)
        error = None
    except OSError as exc:
        error = exc.errno
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    unchanged = target.read_bytes() == before
    left = faultcases.temporaries(data)
    case.write(h, 5)
    case.close(h)
    print(json.dumps({"error": error, "unchanged": unchanged, "left": left}))
""")


@pytest.mark.parametrize("name", list(CASES))
def test_a_write_cut_short_by_a_size_limit_leaves_the_file_as_it_was(tmp_path, name):
    case = CASES[name]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS.parent), str(TESTS)])}
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "data"), name, str(TESTS)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["error"] == (errno.EFBIG if case.fails else None), out
    assert out["unchanged"], "the failed write left part of itself in the file"
    assert not out["left"] and not temporaries(tmp_path / "data")
    assert case.present(tmp_path / "data") == expected(case)


class _Faults:
    """One ENOSPC part-way through a write, or one EIO at a sync, then the disk is fine."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, kind: str, skip_writes: int,
                 sync_call: str) -> None:
        self.kind, self.skip, self.fired, self.halved = kind, skip_writes, False, False
        real_write, real_sync = atomic._os_write, getattr(atomic, f"_os_{sync_call}")

        def write(fd: int, data: bytes) -> int:
            if self.kind != "enospc" or self.fired:
                return real_write(fd, data)
            if self.skip:
                self.skip -= 1
                return real_write(fd, data)
            if not self.halved and len(data) > 1:        # the kernel wrote what fitted
                self.halved = True
                return real_write(fd, bytes(data[: len(data) // 2]))
            self.fired = True
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        def sync(fd: int) -> None:
            real_sync(fd)
            if self.kind == "eio" and not self.fired:
                self.fired = True
                raise OSError(errno.EIO, os.strerror(errno.EIO))

        self.armed = False
        self._write, self._sync = write, sync
        self._mp, self._sync_call = monkeypatch, sync_call

    def arm(self) -> None:
        self._mp.setattr(atomic, "_os_write", self._write)
        self._mp.setattr(atomic, f"_os_{self._sync_call}", self._sync)


@pytest.mark.parametrize("kind", ["enospc", "eio"])
@pytest.mark.parametrize("name", list(CASES))
def test_a_write_failing_with_enospc_or_eio_leaves_the_store_as_it_was(tmp_path, monkeypatch,
                                                                       name, kind):
    case = CASES[name]
    data = tmp_path / "data"
    h = case.open(data)
    for i in case.prefill + [1, 2, 3]:
        case.write(h, i)
    target = case.target(data)
    before = target.read_bytes()
    faults = _Faults(monkeypatch, kind, case.skip_writes, case.fault_syncs)
    faults.arm()
    if case.fails:
        with pytest.raises(OSError) as info:
            case.write(h, 4)
        assert info.value.errno == (errno.ENOSPC if kind == "enospc" else errno.EIO)
    else:
        case.write(h, 4)                  # durable in the journal; the snapshot waits
    assert faults.fired
    assert target.read_bytes() == before, "the failed write left part of itself in the file"
    assert not temporaries(data)
    case.write(h, 5)
    case.close(h)
    assert case.present(data) == expected(case)
