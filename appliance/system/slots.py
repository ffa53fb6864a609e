"""The two installation slots of the box, and the check that keeps or undoes a switch.

``<root>/slots/a`` and ``<root>/slots/b`` hold two installations and ``<root>/current`` is a
symlink to the one that runs. Applying an update unpacks it into the *inactive* slot
(safely: no links, no paths outside it), switches ``current`` to it with one atomic rename
and records the switch as pending. After the restart, ``confirm_or_rollback`` marks the slot
good once the box is healthy, or switches back when it is not healthy by the deadline (the
new version may not even start).

Standard library only, on purpose: the image installs a copy of this module and
``atomic.py`` outside the slots, and a timer runs it with the system's Python
(``python3 -m slotcheck.slots check``), so a broken new slot cannot break its own rollback.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable, Protocol

from .atomic import fsync_dir, write_json_atomic

log = logging.getLogger(__name__)

SLOTS = ("a", "b")


class UpdateError(ValueError):
    """The bundle was refused or could not be applied; nothing changed. The message says why."""


class Payload(Protocol):
    version: str
    payload: bytes


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        raise UpdateError(f"version {version[:40]!r} is not dotted numbers such as 1.4.2") from None


class Slots:
    """``<root>/slots/{a,b}``, ``<root>/current`` (symlink) and ``<root>/update-state.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current_link = root / "current"
        self.state_path = root / "update-state.json"

    def active(self) -> str:
        try:
            return Path(os.readlink(self.current_link)).name
        except OSError:
            return "a"

    def inactive(self) -> str:
        return "b" if self.active() == "a" else "a"

    def slot(self, name: str) -> Path:
        return self.root / "slots" / name

    def version(self, name: str) -> str | None:
        try:
            return json.loads((self.slot(name) / "slot.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _switch(self, name: str) -> None:
        tmp = self.root / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("slots") / name, tmp)
        os.replace(tmp, self.current_link)         # atomic: old or new, never neither
        fsync_dir(self.root)

    def check_newer(self, version: str) -> str | None:
        """Refuse ``version`` unless it is newer than the running one and no switch is
        pending; returns the running version."""
        running = self.version(self.active())
        if self.state().get("pending"):
            raise UpdateError("an update is still being checked; wait for it to be confirmed or "
                              "rolled back")
        if running is not None and version_key(version) <= version_key(running):
            raise UpdateError(f"downgrade refused: the bundle is {version}, the box runs {running}")
        return running

    def apply(self, bundle: Payload, now: float | None = None) -> dict[str, Any]:
        """Unpack into the inactive slot and switch to it; the switch stays pending until
        ``confirm_or_rollback`` sees the new version healthy."""
        now = time.time() if now is None else now
        running = self.check_newer(bundle.version)
        target = self.inactive()
        staging = self.root / "slots" / f".{target}.new"
        _rmtree(staging)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(fileobj=io.BytesIO(bundle.payload), mode="r:") as tar:
                tar.extractall(staging, filter="data")     # no links out, no absolute paths
        except (tarfile.TarError, OSError) as exc:
            _rmtree(staging)
            raise UpdateError(f"payload not unpacked: {exc}") from None
        write_json_atomic(staging / "slot.json", {"version": bundle.version, "installed_at": now})
        old = self.slot(target)
        _rmtree(old)
        os.replace(staging, old)
        fsync_dir(old.parent)
        previous = self.active()
        self._switch(target)
        state = {"pending": target, "previous": previous, "version": bundle.version,
                 "from_version": running, "switched_at": now}
        write_json_atomic(self.state_path, state)
        log.warning("update applied; restart to run it", extra=state)
        return state

    def confirm_or_rollback(self, healthy: Callable[[], bool], deadline_s: float = 600.0,
                            now: float | None = None) -> str:
        """After a switch: ``confirmed`` when healthy, ``rolled back`` when not healthy by
        the deadline (or when this is the old slot running again), else ``waiting``;
        ``none`` without a pending switch."""
        now = time.time() if now is None else now
        state = self.state()
        if not state.get("pending"):
            return "none"
        if self.active() == state["pending"] and healthy():
            write_json_atomic(self.state_path, {"confirmed": state["pending"], "version": state["version"],
                                                "at": now})
            log.info("update confirmed", extra={"version": state["version"]})
            return "confirmed"
        if now - float(state["switched_at"]) < deadline_s:
            return "waiting"
        self._switch(state["previous"])
        write_json_atomic(self.state_path, {"rolled_back": state["pending"], "version": state["version"],
                                            "restored": state.get("from_version"), "at": now})
        log.error("update rolled back: not healthy in time",
                  extra={"version": state["version"], "restored": state.get("from_version")})
        return "rolled back"


def _rmtree(path: Path) -> None:
    import shutil

    if path.exists() or path.is_symlink():
        shutil.rmtree(path)


# Health checks a new version is not answerable for: data the store lost before it ran.
NOT_THE_VERSION = frozenset({"store"})


def healthy_for_update(checks: dict[str, bool]) -> bool:
    """Every check passes but those in ``NOT_THE_VERSION``."""
    return all(ok for name, ok in checks.items() if name not in NOT_THE_VERSION)


def http_healthy(url: str, timeout_s: float = 10.0) -> bool:
    """True when the daemon's ``/healthz`` answers 200, or 503 with only checks failing that
    the version is not answerable for (no answer: not healthy)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as resp:
            return resp.status == 200
    except urllib.error.HTTPError as exc:
        try:
            checks = json.loads(exc.read()).get("checks")
        except (OSError, ValueError, AttributeError):
            return False
        return exc.code == 503 and isinstance(checks, dict) and bool(checks) \
            and healthy_for_update(checks)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    """``check``: confirm or roll back a pending switch; after a rollback, restart the unit."""
    p = argparse.ArgumentParser(prog="python3 -m slotcheck.slots", description=main.__doc__)
    p.add_argument("action", choices=("check",))
    p.add_argument("--root", default="/opt/appliance", help="holds slots/ and current")
    p.add_argument("--health", default="http://127.0.0.1:8080/healthz")
    p.add_argument("--deadline", type=float, default=600.0, help="seconds after the switch")
    p.add_argument("--restart", default="appliance.service", help="unit restarted after a rollback "
                   "(empty: none)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    result = Slots(Path(args.root)).confirm_or_rollback(lambda: http_healthy(args.health),
                                                        args.deadline)
    print(f"update check: {result}", flush=True)
    if result == "rolled back" and args.restart:
        return subprocess.run(["systemctl", "restart", args.restart], check=False).returncode
    return 0


if __name__ == "__main__":
    sys.exit(main())
