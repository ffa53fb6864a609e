"""Child processes and threads in one daemon: starting a child never stalls a thread that is
multiplying matrices (the recognizer's spectrogram), and children die with the appliance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from waiting import wait_for

TESTS = Path(__file__).parent

# A thread multiplies matrices of the spectrogram's size while the main thread starts
# children; after each start the thread must still make progress.
_SCRIPT = """
import os, subprocess, sys, threading
sys.path.insert(0, {tests!r})
{setup}
import numpy as np
from appliance.system.process import spawn_child
from waiting import wait_for

a = np.ones((80, 201), np.float32)
b = np.ones((201, 393), np.float32)
done = [0]

def multiply():
    while True:
        a @ b
        done[0] += 1

threading.Thread(target=multiply, daemon=True).start()
for i in range(20):
    {start}
    child.wait()
    before = done[0]
    if not wait_for(lambda: done[0] > before, 30):
        print("stalled after", i + 1, "children", flush=True)
        os._exit(1)
print("ok", flush=True)
os._exit(0)
"""


def _run(setup: str, start: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    script = _SCRIPT.format(tests=str(TESTS), setup=setup, start=start)
    return subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=300)


def test_starting_children_never_stalls_a_thread_in_a_matrix_product():
    # numpy's BLAS left multi-threaded: only the way children are started is tested
    out = _run("", 'child = spawn_child(["true"])')
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr[-2000:]


def test_appliance_processes_keep_blas_in_the_calling_thread():
    # a fork from another thread (any library's preexec_fn) while a product is running
    out = _run("from appliance.system.process import single_threaded_blas\n"
               "single_threaded_blas()",
               "child = subprocess.Popen(['true'], preexec_fn=lambda: None)")
    assert out.returncode == 0 and "ok" in out.stdout, out.stdout + out.stderr[-2000:]


def test_a_child_is_terminated_when_the_appliance_process_dies():
    parent = subprocess.run(
        [sys.executable, "-c",
         "import os, subprocess\nfrom appliance.system.process import spawn_child\n"
         "child = spawn_child(['sleep', '600'], stdout=subprocess.DEVNULL, "
         "stderr=subprocess.DEVNULL)\n"
         "print(child.pid, flush=True)\nos._exit(0)"],   # dies right after the start
        capture_output=True, text=True, timeout=60)
    pid = int(parent.stdout.split()[0])

    def gone() -> bool:
        try:
            return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"   # reaped by init
        except FileNotFoundError:
            return True
    assert wait_for(gone, 30), f"child {pid} outlived its parent"


def test_what_the_appliance_writes_is_not_readable_by_other_users_whatever_the_umask(tmp_path):
    """Started from a shell with umask 022 (the README's first command), the store's folders
    and files are still closed to other users, as under the systemd unit's UMask."""
    data = tmp_path / "data"
    master = Path(__file__).parent / "data" / "cdr" / "Master.csv"
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(data))
    out = subprocess.run(["sh", "-c", f'umask 022 && exec "{sys.executable}" -m appliance.cli '
                          f'cdr import "{master}"'], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    made = [p for p in data.rglob("*")]
    assert any(p.is_file() for p in made) and any(p.is_dir() for p in made)
    opened = {str(p.relative_to(data)): oct(p.stat().st_mode & 0o777) for p in [data, *made]
              if p.stat().st_mode & 0o007}
    assert opened == {}, opened


def test_update_and_models_keep_the_umask_they_were_given():
    """An update installs a slot the service's user must read, and models build for it: only
    the commands that write the box's data close their files."""
    code = ("import os; from appliance.cli import main; main(['config']); "
            "print(oct(os.umask(0)))")
    out = subprocess.run(["sh", "-c", f'umask 022 && exec "{sys.executable}" -c "{code}"'],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().splitlines()[-1] == "0o22", out
    from appliance.cli import DATA_COMMANDS
    assert {"update", "models"}.isdisjoint(DATA_COMMANDS) and "run" in DATA_COMMANDS
