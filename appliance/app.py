"""Wiring of the running appliance: builds the sources and workers from settings."""

from __future__ import annotations

import logging
import signal
import threading

from .bus import Bus
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
    from .media.recovery import recover_unfinished

    recover_unfinished(settings, stages)
    bus = Bus()
    endpoint = None
    if settings.sip.enabled:
        from .sources.sip.endpoint import SipEndpoint, SipError

        endpoint = SipEndpoint(settings, stages, bus)
        try:
            endpoint.start()
        except SipError as exc:
            log.error("sip endpoint failed", extra={"reason": str(exc)})
            stages.close()
            return 3
    for w in workers:
        w.start()
    stop.wait()
    if endpoint is not None:
        endpoint.stop()
    for w in workers:
        w.join(timeout=30)
    stages.close()
    log.info("appliance stopped")
    return 0
