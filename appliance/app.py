"""Wiring of the running appliance: builds the sources and workers from settings."""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from typing import Any, Callable

from .bus import Bus
from .system.priority import lower_priority
from .system.process import return_free_memory
from .config import Settings
from .media.session import Stages
from .sources.inbox import InboxWatcher

log = logging.getLogger(__name__)


_signalled: list[int] = []


def _stop_on_signals(stop: threading.Event) -> None:
    # The handler only appends to a list: a handler calling stop.set() runs inside whatever
    # the main thread was doing, and when that was stop.wait() holding the event's lock, the
    # process deadlocked on shutdown (seen with two SIGTERMs in a row).
    if threading.current_thread() is threading.main_thread():
        _signalled.clear()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda signum, _frame: _signalled.append(signum))


def _wait_for_stop(stop: threading.Event) -> None:
    """Until ``stop`` is set by a thread, or a signal arrives (then ``stop`` is set here)."""
    while not stop.wait(0.2):
        if _signalled:
            stop.set()


def _recover(settings: Settings, stages: Stages, process: str | None = None) -> None:
    """Calls cut short by a crash (of the box, or of one capture ``process``): their callers
    get a BYE, their recordings are repaired and analysed."""
    from .sources.recovery import recover_unfinished, unfinished_calls

    if settings.sip.enabled:
        from .sources.sip.orphans import hang_up

        hang_up(unfinished_calls(settings.paths.calls, process))
    recover_unfinished(settings, stages, process)


def _data_key(settings: Settings, stop: threading.Event) -> bool:
    """Set up encryption at rest ([privacy] encrypt). A key from a passphrase is waited
    for (``appliance key unlock`` after boot); any other key problem stops the start, since
    writing clear files instead would break the promise silently."""
    from .system import sealing

    announced = 0.0
    while True:
        try:
            ring = sealing.setup(settings)
        except sealing.SealError as exc:
            if not (settings.privacy.key_from_passphrase
                    and not sealing.key_path(settings).exists()):
                log.error("data key unusable; not starting", extra={"reason": str(exc)})
                return False
            if time.monotonic() - announced > 60:
                announced = time.monotonic()
                log.warning("waiting for the data key: run 'appliance key unlock'",
                            extra={"key_file": str(sealing.key_path(settings))})
            if stop.wait(1.0):
                return False
            continue
        if ring is not None:
            log.info("encryption at rest", extra={"key": ring.current.id.hex(),
                                                  "old_keys": len(ring.by_id) - 1})
        return True


def _reseal(settings: Settings, stop: threading.Event) -> None:
    """Seal what is still clear or under a replaced key (the replaced keys stay kept:
    backups made before need them)."""
    from .system import sealing

    if sealing.ring() is None:
        return
    lower_priority()            # a background job
    sealed, failed = sealing.reseal_all(settings.paths.calls, stop)
    if sealed or failed:
        log.log(logging.ERROR if failed else logging.INFO, "files sealed",
                extra={"sealed": sealed, "failed": failed})


def run(settings: Settings, stop: threading.Event | None = None,
        config_path: str | None = None) -> int:
    """Run until SIGTERM/SIGINT (or ``stop`` is set); return the exit code."""
    stop = stop or threading.Event()
    _stop_on_signals(stop)
    settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
    log.info("appliance starting", extra={"data_dir": str(settings.paths.data_dir.resolve())})
    if not _data_key(settings, stop):
        return 3 if not stop.is_set() else 0
    from .sources.sip import workers as sip_workers

    n_workers = sip_workers.workers_needed(settings) if settings.sip.enabled else 0
    # The box's one recognizer: capture workers send it their calls' speech.
    stages = Stages.load(settings)
    log.info("speech recognition", extra=stages.asr.info() if stages.asr else {"status": "disabled"})
    link = None
    if n_workers > 1 and stages.asr is not None and stages.asr.available:
        from .asr.link import PieceServer

        link = PieceServer(stages.asr)
    _recover(settings, stages)
    from .store.database import StoreBusy

    bus = Bus()
    try:
        local = LocalData.open(settings, bus, stages)
    except StoreBusy as exc:
        log.error("store busy", extra={"reason": str(exc)})
        stages.close()
        return 3
    threads = local.threads(stop)
    if settings.inbox.enabled:
        watcher = InboxWatcher(settings, stages, on_result=local.ingester.ingest_file)
        threads.append(threading.Thread(target=watcher.run, args=(stop,), name="inbox",
                                        daemon=True))
    endpoint = front = pool = None
    try:
        if n_workers == 1:
            from .sources.sip.endpoint import SipEndpoint

            endpoint = SipEndpoint(settings, stages)
            endpoint.start()
        elif n_workers > 1:
            from .sources.sip.front import SipFront

            front = SipFront(settings, n_workers)
            front.start()
            pool = sip_workers.WorkerPool(
                settings, config_path, n_workers,
                on_death=lambda i: _recover(settings, stages, process=str(i)),
                env=link.env() if link is not None else {})
            pool.start()
    except Exception as exc:    # noqa: BLE001 - SipError and OS errors: say why and stop
        log.error("sip capture failed to start", extra={"reason": str(exc)})
        if front is not None:
            front.stop()
        if link is not None:
            link.close()
        local.close()
        stages.close()
        return 3
    for t in threads:
        t.start()
    # done once, so not among the threads the watchdog expects alive
    warm = threading.Thread(target=local.warm_up, args=(stop,), name="kpi-warm-up", daemon=True)
    warm.start()
    threading.Thread(target=_reseal, args=(settings, stop), name="reseal", daemon=True).start()
    from .system.watchdog import feed_watchdog, notify

    notify("READY=1", f"STATUS=recording; panel {local.web.url if local.web else 'off'}")
    threading.Thread(target=feed_watchdog, args=(lambda: all(t.is_alive() for t in threads), stop),
                     name="watchdog", daemon=True).start()
    _wait_for_stop(stop)
    notify("STOPPING=1")
    if endpoint is not None:
        endpoint.stop()
    if pool is not None:
        pool.stop()
    if front is not None:
        front.stop()
    for t in [*threads, warm]:          # the warm-up reads the store: done before it closes
        t.join(timeout=30)
    if link is not None:
        link.close()
    local.close()
    stages.close()
    log.info("appliance stopped")
    return 0


class LocalData:
    """The store and what serves it: the ingester (the calls' one writer path), retention,
    the query API and the HTTP server."""

    def __init__(self, settings: Settings, bus: Bus, stages: Stages | None = None) -> None:
        from .query import Queries
        from .store.database import Database
        from .store.ingest import Ingester
        from .store.retention import Retention

        self.settings = settings
        self.stages = stages
        self.bus = bus
        self.db = Database(settings.paths.data_dir, transcripts_in_memory=settings.privacy.encrypt)
        self.ingester = Ingester(self.db.calls, settings.paths.calls, bus, self.db.search)
        # damage found in a month loaded later reaches `appliance status` at once
        self._state_due = threading.Event()
        self.db.on_damage = self._state_due.set
        if stages is not None and stages.asr is not None:
            from .asr.pending import PendingCalls
            from .sources.files import call_audio, read_pieces

            def audio_reader(result: dict[str, Any], path: Any) -> Any:
                paths, agent_channel = call_audio(result, path)
                return lambda specs: read_pieces(paths, settings, specs, agent_channel)
            mute = None
            if settings.privacy.mute_audio:
                from .media.mute import mute_spans

                def mute(result: dict[str, Any], path: Any) -> None:
                    paths, agent_channel = call_audio(result, path)
                    mute_spans(paths, settings.channels.agent_channel if agent_channel is None
                               else agent_channel, result["redactions"])
            self.pending = PendingCalls(stages.asr, stages.complete, audio_reader,
                                        self.ingester.ingest_file, mute)
            self.ingester.on_pending = self.pending.adopt
        self.retention = Retention(settings, self.db, bus)
        self.queries = Queries(self.db, settings,
                               on_cdr=lambda new: bus.publish("cdr.added", new=new))
        self.web = None
        self.model: Callable[[], dict[str, Any]] = lambda: {"status": "unknown"}
        self.publisher = self.feeds = self.outbox = None
        self.broker = None
        # where to publish: the configured broker, else the embedded one (never written back
        # into the settings, which the panel shows and saves)
        self.mqtt = settings.mqtt
        if not settings.mqtt.host and settings.mqtt.embedded:
            from .mqtt.broker import EmbeddedBroker

            broker = EmbeddedBroker(settings.paths.data_dir, settings.mqtt.embedded_port)
            if broker.start():
                self.broker = broker
                self.mqtt = settings.mqtt.model_copy(
                    update={"host": "127.0.0.1", "port": broker.port, "tls": False})
        if self.mqtt.host:
            from .mqtt.client import Publisher
            from .mqtt.feeds import Feeds
            from .mqtt.outbox import Outbox

            outbox = Outbox(self.db.outbox, settings.mqtt.outbox_max_messages,
                            settings.mqtt.outbox_max_age_h)
            self.publisher = Publisher(self.mqtt, outbox)
            self.outbox = outbox
            self.feeds = Feeds(settings, outbox, self.queries, bus, self.status)

    def status(self) -> dict[str, Any]:
        """Device status: registrations, calls, queues, disk, MQTT outbox."""
        from .system.status import device_status

        asr = self.stages.asr if self.stages is not None else None
        return device_status(self.settings.paths.data_dir,
                             len(self.outbox) if self.outbox is not None else None,
                             asr.backlog() if asr is not None and asr.available else None)

    def daemon_state(self) -> dict[str, Any]:
        """What only the daemon knows, for ``/healthz`` and ``appliance status``."""
        cfg = self.mqtt
        mqtt = {"enabled": bool(cfg.host), "host": cfg.host, "port": cfg.port,
                "connected": self.publisher is not None and self.publisher.connected.is_set(),
                "outbox": len(self.outbox) if self.outbox is not None else 0}
        from .system.health import store_state

        return {"mqtt": mqtt, "model": self.model(), "store": store_state(self.db),
                "web": self.web.url + "/" if self.web is not None else None}

    def health(self) -> dict[str, Any]:
        from .system.health import health

        return health(self.settings, self.status(), self.daemon_state())

    def report_state(self, stop: threading.Event, interval_s: float = 5.0) -> None:
        """Keep ``run/daemon.json`` fresh (a stale file means the daemon is gone)."""
        from .system.health import write_daemon_state

        while not stop.is_set():
            self._state_due.clear()
            try:
                write_daemon_state(self.settings.paths.data_dir, self.daemon_state())
            except OSError as exc:
                log.error("daemon state not written", extra={"reason": str(exc)})
            deadline = time.monotonic() + interval_s
            while (not stop.wait(0.5) and not self._state_due.is_set()
                   and time.monotonic() < deadline):
                pass

    @classmethod
    def open(cls, settings: Settings, bus: Bus, stages: Stages | None = None) -> "LocalData":
        local = cls(settings, bus, stages)
        if stages is not None and stages.asr is not None:
            local.model = stages.asr.info
        if local.publisher is not None:
            local.publisher.start()
        local.ingester.scan()                 # reconcile the store with the calls on disk
        if settings.web.enabled:
            from .web.app import WebServer, create_app

            try:
                local.web = WebServer(create_app(local.queries, settings, local.status, local.model,
                                                 health=local.health, daemon=local.daemon_state),
                                      settings)
                local.web.start()
            except OSError as exc:            # recording goes on without the API
                log.error("http api not started", extra={
                    "reason": str(exc), "address": f"{settings.web.bind_address}:{settings.web.port}",
                    "hint": "another program uses the port: set web.port"})
                local.web = None
        return local

    def warm_up(self, stop: threading.Event | None = None) -> None:
        """After start, in the background: the dashboard's months computed once (at 100k
        calls a month's first computation takes a second or more), then every month of the
        store read once for damage."""
        lower_priority()        # a background job: requests and capture go first
        for name, job, what in (("kpis ready", self.queries.warm_up, "periods"),
                                ("managers' baselines ready", self.queries.warm_up_managers,
                                 "periods"),
                                ("store months checked", lambda: self.db.verify(stop),
                                 "damaged")):
            if stop is not None and stop.is_set():
                return
            t0 = time.perf_counter()
            try:
                done = job()
            except Exception as exc:  # noqa: BLE001 - done on first use instead
                log.error("warm-up failed", extra={"step": name, "reason": str(exc)})
                continue
            log.info(name, extra={what: done, "seconds": round(time.perf_counter() - t0, 2)})
        return_free_memory()        # what the warm-up computed and let go

    def threads(self, stop: threading.Event) -> list[threading.Thread]:
        out = [threading.Thread(target=self.ingester.run, args=(stop,), name="store-ingest",
                                daemon=True),
               threading.Thread(target=self.retention.serve, args=(stop,), name="retention",
                                daemon=True),
               threading.Thread(target=self.report_state, args=(stop,), name="daemon-state",
                                daemon=True)]
        if self.feeds is not None:
            out.append(threading.Thread(target=self.feeds.run, args=(stop,), name="mqtt-feeds",
                                        daemon=True))
        return out

    def close(self) -> None:
        if self.web is not None:
            self.web.stop()
        self.ingester.scan(recent_only=True)     # calls finalized while stopping
        if not self.bus.drain(timeout=10):       # their summaries reach the outbox first
            log.warning("events not delivered at shutdown", extra={"pending": self.bus.pending})
        self.bus.close(timeout=1)
        if self.publisher is not None:
            self.publisher.stop()
        if self.broker is not None:
            self.broker.stop()
        (self.settings.paths.data_dir / "run" / "daemon.json").unlink(missing_ok=True)
        self.db.close()


def _front_contact(settings: Settings) -> tuple[str, int]:
    """Where the PBX must send calls: the front's address as the registrar sees it."""
    sip = settings.sip
    host = sip.public_address or sip.bind_address
    if host in ("0.0.0.0", "::") and sip.accounts:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            try:        # the interface the route to the registrar leaves by (no packet sent)
                s.connect((sip.accounts[0].registrar.split(":")[0], 5060))
                host = s.getsockname()[0]
            except OSError:
                host = "127.0.0.1"
    return host, sip.port


def run_worker(settings: Settings, index: int, count: int) -> int:
    """One capture worker behind the SIP front (``appliance run --sip-worker I``)."""
    from .sources.sip.endpoint import SipEndpoint, SipError
    from .sources.sip.workers import WORKER_HOST, worker_port, worker_settings

    stop = threading.Event()
    _stop_on_signals(stop)
    from .asr.link import PieceClient

    ws = worker_settings(settings, index, count)
    from .system import sealing

    try:
        sealing.setup(ws)       # the daemon made or waited for the key before starting us
    except sealing.SealError as exc:
        log.error("capture worker without its data key", extra={"worker": index,
                                                                 "reason": str(exc)})
        return 3
    stages = Stages.capture(PieceClient.from_env() if ws.asr.enabled else None)
    endpoint = SipEndpoint(ws, stages, sip_address=(WORKER_HOST, worker_port(settings, index)),
                           contact=_front_contact(settings) if index == 0 else None,
                           state_name=f"sip-{index}")
    try:
        endpoint.start()
    except SipError as exc:
        log.error("capture worker failed to start", extra={"worker": index, "reason": str(exc)})
        stages.close()
        return 3
    _wait_for_stop(stop)
    endpoint.stop()
    stages.close()
    return 0
