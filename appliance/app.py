"""Wiring of the running appliance: builds the sources and workers from settings."""

from __future__ import annotations

import logging
import signal
import threading

from .config import Settings
from .media.session import Stages
from .sources.inbox import InboxWatcher

log = logging.getLogger(__name__)


def run(settings: Settings, stop: threading.Event | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the exit code."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    log.info("appliance starting", extra={"data_dir": str(settings.paths.data_dir.resolve())})
    stages = Stages.load(settings)
    log.info("speech recognition", extra=stages.asr.info() if stages.asr else {"status": "disabled"})
    workers = []
    if settings.inbox.enabled:
        watcher = InboxWatcher(settings, stages)
        workers.append(threading.Thread(target=watcher.run, args=(stop,), name="inbox",
                                        daemon=True))
    for w in workers:
        w.start()
    stop.wait()
    for w in workers:
        w.join(timeout=30)
    stages.close()
    log.info("appliance stopped")
    return 0
