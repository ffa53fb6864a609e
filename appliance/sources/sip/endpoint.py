"""The pjsua2 endpoint: transports, codecs, accounts, the calls in progress, and shutdown.

Everything that touches pjsua runs on one thread, the endpoint's SIP thread: it polls
pjsua's events (so every callback arrives there), runs the commands other threads queue
(``_call_soon``) and the once-a-second maintenance. One owner means no call object is ever
used by two threads, and a call's pjsua object is destroyed in its own DISCONNECTED
callback, before pjsua can give its slot to the next call (see ``call.py``).

pjsua2 rules this module keeps (each was seen to abort the process otherwise): no ``Call``
or ``AudioMediaPort`` may be alive when ``libDestroy`` runs; and the library is created once
per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pjsua2 as pj

from ... import __version__
from ...config import SipAccount as AccountSettings
from ...config import Settings
from ...media.session import Stages
from ...system.snapshot import SnapshotFile
from ...system.disk import RecordingGuard
from .account import SipAccount
from .call import PjCall
from .recorded import Dialog, RecordedCall
from .registration import Registration
from .screen import networks, plan_incoming
from .tap import TapPool

log = logging.getLogger(__name__)
pjlog = logging.getLogger("pjsip")

MAINTENANCE_S = 1.0
POLL_MS = 20                # longest a queued command waits for the SIP thread
STATE_EVERY_S = 2.0         # run/sip*.json is rewritten this often while calls are in progress
HANGUP_WAIT_S = 5.0         # for pjsua to report every call disconnected at shutdown
FINALIZE_WAIT_S = 120.0


class SipError(RuntimeError):
    """The SIP endpoint cannot start; the message says what to change."""


class _LogWriter(pj.LogWriter):
    """pjsip's own log lines into the appliance log."""

    def write(self, entry: pj.LogEntry) -> None:
        level = logging.WARNING if entry.level <= 2 else logging.DEBUG
        pjlog.log(level, entry.msg.rstrip(), extra={"pj_level": entry.level})


@contextlib.contextmanager
def _quiet_stdout() -> Iterator[None]:
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def add_siprec_capability() -> None:
    """Advertise ``Supported: siprec`` so pjsip accepts ``Require: siprec`` (2.15 has no
    SIPREC module and would answer 420 Bad Extension)."""
    lib = ctypes.CDLL(pj._pjsua2.__file__)
    lib.pjsua_get_pjsip_endpt.restype = ctypes.c_void_p
    endpt = lib.pjsua_get_pjsip_endpt()
    tag = ctypes.create_string_buffer(b"siprec")

    class PjStr(ctypes.Structure):
        _fields_ = [("ptr", ctypes.c_char_p), ("slen", ctypes.c_ssize_t)]

    values = (PjStr * 1)(PjStr(ctypes.cast(tag, ctypes.c_char_p), 6))
    lib.pjsip_endpt_add_capability.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int,
                                               ctypes.c_void_p, ctypes.c_uint, ctypes.c_void_p]
    status = lib.pjsip_endpt_add_capability(ctypes.c_void_p(endpt), None, pj.PJSIP_H_SUPPORTED,
                                            None, 1, values)
    if status != 0:
        raise SipError(f"cannot advertise SIPREC support (pjsip status {status})")


class SipEndpoint:
    """Runs the SIP side of the appliance: ``start()``, then ``stop()``."""

    def __init__(self, settings: Settings, stages: Stages | None = None,
                 *, sip_address: tuple[str, int] | None = None,
                 contact: tuple[str, int] | None = None, state_name: str = "sip") -> None:
        """``sip_address`` overrides where SIP listens (a capture worker: loopback, behind the
        front); ``contact`` is the address registrations announce (the front's)."""
        self.settings = settings
        self.sip_address = sip_address or (settings.sip.bind_address, settings.sip.port)
        self.contact = contact
        self.stages = stages
        self.allowed_networks = networks(settings.sip.allowed_sources)
        settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
        self.guard = RecordingGuard(settings.paths.data_dir, settings.retention.stop_recording_free_mb)
        self.ep: pj.Endpoint | None = None
        self.accounts: list[SipAccount] = []
        self.taps = TapPool(0)
        # pjsua call slot -> its call object: SIP thread only; the only reference to it
        self._slots: dict[int, PjCall] = {}
        # recordings by dialog, until their analysis is final (any thread, under _lock)
        self.recordings: dict[tuple[str, str], RecordedCall] = {}
        self.finished_results = 0
        self.counts = {"offered": 0, "answered": 0, "refused": 0, "finalized": 0}
        self._lock = threading.Lock()
        self._state_lock = threading.Lock()
        self._writer = _LogWriter()
        self._stop = threading.Event()
        self._stopping = False
        self._ready = threading.Event()
        self._start_error: BaseException | None = None
        self._commands: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.state_path = settings.paths.data_dir / "run" / f"{state_name}.json"
        self._snapshots = SnapshotFile(self.state_path)
        self._state_final = False
        self._state_at = 0.0

    # --- start / stop (any thread) ---
    def start(self) -> None:
        """Start the SIP thread; raise ``SipError`` if the endpoint cannot start."""
        self._thread = threading.Thread(target=self._run, name="sip", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._start_error is not None:
            self._thread.join()
            raise self._start_error
        sip = self.settings.sip
        host, port = self.sip_address
        log.info("sip endpoint started", extra={"address": f"{host}:{port}",
                                                "transports": ",".join(sip.transports),
                                                "accounts": len(sip.accounts),
                                                "direct_calls": sip.direct_calls})
        self.write_state()

    def stop(self) -> None:
        """Hang up and finalize every call, release pjsua2 objects, destroy the library."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._thread = None

    def _call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the SIP thread."""
        self._commands.put(fn)

    # --- the SIP thread ---
    def _run(self) -> None:
        try:
            self._create()
        except BaseException as exc:     # noqa: BLE001 - handed to start()
            self._start_error = exc
            self._destroy()
            self._ready.set()
            return
        self._ready.set()
        next_tick = time.monotonic() + MAINTENANCE_S
        while not self._stop.is_set():
            self._poll()
            now = time.monotonic()
            if now >= next_tick:
                next_tick = now + MAINTENANCE_S
                self._maintain(now)
        self._shutdown()

    def _poll(self) -> None:
        assert self.ep is not None
        self.ep.libHandleEvents(POLL_MS)
        while True:
            try:
                fn = self._commands.get_nowait()
            except queue.Empty:
                return
            try:
                fn()
            except Exception:   # noqa: BLE001 - one command must not stop the SIP thread
                log.exception("sip command failed")

    def _create(self) -> None:
        sip = self.settings.sip
        ep = pj.Endpoint()
        with _quiet_stdout():       # pjlib prints its start-up chatter before logging is set
            ep.libCreate()
        self.ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = sip.max_calls
        cfg.uaConfig.threadCnt = 0          # events are polled by the SIP thread (_poll)
        cfg.uaConfig.mainThreadOnly = False
        cfg.uaConfig.userAgent = f"call-appliance/{__version__}"
        cfg.logConfig.level = sip.log_level
        cfg.logConfig.consoleLevel = sip.log_level
        cfg.logConfig.writer = self._writer
        cfg.logConfig.decor = 0
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0          # an echo canceller would alter what is recorded
        cfg.medConfig.clockRate = 16000
        cfg.medConfig.sndClockRate = 16000
        cfg.medConfig.maxMediaPorts = sip.max_calls * (sip.max_streams * 2) + 8
        host, port = self.sip_address
        try:
            ep.libInit(cfg)
            bound = "" if host in ("0.0.0.0", "::") else host
            for name in sip.transports:
                tc = pj.TransportConfig()
                tc.port = port
                tc.boundAddress = bound
                tc.publicAddress = sip.public_address or ""
                kind = pj.PJSIP_TRANSPORT_UDP if name == "udp" else pj.PJSIP_TRANSPORT_TCP
                ep.transportCreate(kind, tc)
            ep.audDevManager().setNullDev()
            ep.libStart()
            self.taps = TapPool(sip.max_calls * sip.max_streams)
            self._set_codecs()
            add_siprec_capability()
            self._add_accounts()
        except pj.Error as exc:
            raise SipError(f"SIP endpoint failed to start on {host}:{port}: "
                           f"{exc.info()}; check sip.bind_address / sip.port (is another SIP "
                           "service using the port?)") from None

    def _set_codecs(self) -> None:
        assert self.ep is not None
        wanted = [c.lower() for c in self.settings.sip.codecs]
        for codec in self.ep.codecEnum2():
            cid = codec.codecId.lower()
            rank = next((i for i, w in enumerate(wanted) if cid.startswith(w + "/") or cid == w),
                        None)
            self.ep.codecSetPriority(codec.codecId, 0 if rank is None else 255 - rank)

    def _account_config(self) -> pj.AccountConfig:
        sip = self.settings.sip
        acfg = pj.AccountConfig()
        tc = acfg.mediaConfig.transportConfig
        tc.port = sip.rtp_port
        tc.portRange = sip.rtp_port_range
        if sip.bind_address not in ("0.0.0.0", "::"):
            tc.boundAddress = sip.bind_address
        tc.publicAddress = sip.public_address or ""
        cc = acfg.callConfig
        if sip.session_expires_s:
            cc.timerUse = pj.PJSUA_SIP_TIMER_ALWAYS
            cc.timerSessExpiresSec = sip.session_expires_s
            cc.timerMinSESec = min(90, sip.session_expires_s)
        return acfg

    def _add_accounts(self) -> None:
        sip = self.settings.sip
        host, port = self.sip_address
        host = sip.public_address or (host if host not in ("0.0.0.0", "::") else "127.0.0.1")
        direct = SipAccount(self, f"sip:recorder@{host}:{port}", direct=True)
        acfg = self._account_config()
        acfg.idUri = direct.registration.uri
        direct.create(acfg, True)
        self.accounts.append(direct)
        for a in sip.accounts:
            self.accounts.append(self._register(a))

    def _register(self, a: AccountSettings) -> SipAccount:
        acc = SipAccount(self, a.uri, direct=False)
        acfg = self._account_config()
        acfg.idUri = a.uri
        rc = acfg.regConfig
        rc.registrarUri = f"sip:{a.registrar};transport={a.transport}"
        rc.timeoutSec = a.expiry_s
        rc.retryIntervalSec = a.retry_s
        rc.firstRetryIntervalSec = a.retry_s
        rc.delayBeforeRefreshSec = min(5, a.expiry_s // 3)
        if a.password:
            acfg.sipConfig.authCreds.append(
                pj.AuthCredInfo("digest", a.realm, a.auth_user or a.user, 0, a.password))
        if a.transport == "tcp":
            acfg.sipConfig.proxies.append(f"sip:{a.registrar};transport=tcp;lr")
        if self.contact is not None:    # calls must reach the front, not this worker
            acfg.sipConfig.contactForced = f"<sip:{a.user}@{self.contact[0]}:{self.contact[1]}>"
        acc.create(acfg, False)
        log.info("registering", extra={"account": a.uri, "registrar": a.registrar,
                                       "transport": a.transport, "expiry_s": a.expiry_s})
        return acc

    def _shutdown(self) -> None:
        """Refuse new calls, hang up the others (``end_reason``: appliance stopping), wait for
        every recording to be final, then destroy the library."""
        self._stopping = True
        self._end_calls("appliance stopping")
        deadline = time.monotonic() + HANGUP_WAIT_S
        while self._slots and time.monotonic() < deadline:
            self._poll()            # DISCONNECTED callbacks drop the call objects
        with self._lock:
            pending = list(self.recordings.values())
        for rec in pending:
            rec.finish("appliance stopping")
        for rec in pending:
            if not rec.live.wait(FINALIZE_WAIT_S):
                log.error("call not finalized before shutdown", extra={"uid": rec.uid})
        del pending
        self._destroy()
        self.write_state(stopped=True)
        log.info("sip endpoint stopped")

    def _destroy(self) -> None:
        """Drop every pjsua2 object, then destroy the library. A separate frame so that no
        local variable keeps a ``pj.Call`` alive into ``libDestroy`` (which aborts)."""
        ep = self.ep
        if ep is None:
            return
        for call in self._slots.values():
            call.release_taps()
        self._slots.clear()
        self.taps.silence()
        for acc in self.accounts:
            try:
                acc.shutdown()
            except pj.Error:
                pass
        self.accounts.clear()
        sys.last_type = sys.last_value = sys.last_traceback = None  # type: ignore[assignment]
        gc.collect()
        ep.libDestroy()
        self.taps.abandon()
        self.ep = None

    # --- calls (SIP thread: pjsua callbacks) ---
    def incoming(self, acc: SipAccount, slot: int, raw: str, source: str) -> None:
        """``onIncomingCall``: answer the call, or refuse it right after this callback."""
        self.counts["offered"] += 1
        dialog = Dialog.of_invite(raw)
        plan = plan_incoming(raw, source, self.settings.sip, self.allowed_networks,
                             direct=acc.direct, disk_ok=self.guard.allowed(),
                             stopping=self._stopping)
        with self._lock:
            if plan.accepted and dialog.key in self.recordings:
                plan.status, plan.reason = 482, "Loop Detected (this dialog is already recorded)"
        if not plan.accepted:
            self.counts["refused"] += 1
            log.warning("call refused", extra={"status": plan.status, "reason": plan.reason,
                                               "source": source, "sip_call_id": dialog.call_id})
            call = PjCall(self, acc, slot, plan, None)
            self._slots[slot] = call
            # Rejected after this callback, not inside it: pjsua 2.15.1 aborts (double free
            # of the cloned INVITE) when a body-less INVITE is rejected from onIncomingCall.
            self._call_soon(lambda: call.end(f"refused {plan.status}", plan.status))
            return
        try:
            rec = RecordedCall(self.settings, plan, dialog, self.stages, on_done=self.call_done)
        except OSError as exc:      # the recording cannot be created: the PBX must know
            log.error("recording not started", extra={"reason": str(exc),
                                                      "sip_call_id": dialog.call_id})
            plan.status, plan.reason = 503, "Service Unavailable (recording cannot be written)"
            call = PjCall(self, acc, slot, plan, None)
            self._slots[slot] = call
            self._call_soon(lambda: call.end("refused 503", 503))
            return
        with self._lock:
            self.recordings[dialog.key] = rec
        call = PjCall(self, acc, slot, plan, rec)
        self._slots[slot] = call
        self.counts["answered"] += 1
        op = pj.CallOpParam()
        op.statusCode = 200
        op.opt.audioCount = plan.audio_count
        op.opt.videoCount = 0
        try:
            call.answer(op)
        except pj.Error as exc:
            log.error("answer failed", extra={"uid": rec.uid, "reason": exc.info()})
            call.end(f"answer failed: {exc.reason}")
        self.write_state()

    def forget(self, call: PjCall) -> None:
        """A call's slot is disconnected: drop its object now (see ``call.py``)."""
        if self._slots.get(call.slot) is call:
            del self._slots[call.slot]

    def call_done(self, result: dict[str, Any]) -> None:
        """A live call's recording and analysis are final (called on its worker thread)."""
        uid = result.get("call", {}).get("extra", {}).get("uid")
        with self._lock:
            for key, rec in list(self.recordings.items()):
                if rec.uid == uid:
                    del self.recordings[key]
            self.finished_results += 1
        self.write_state()

    def registration_changed(self, acc: SipAccount, changed: bool) -> None:
        # the state file is what the daemon, health and MQTT status read
        self.write_state()

    # --- maintenance (SIP thread, once a second) ---
    def _maintain(self, now: float) -> None:
        if self.recordings or now - self._state_at > STATE_EVERY_S * 10:
            if now - self._state_at >= STATE_EVERY_S:
                self.write_state()          # calls in progress: their length stays current
        sip = self.settings.sip
        for call in list(self._slots.values()):
            if call.recorded is None or call.disconnected or not call.taps:
                continue
            # a held stream may carry no RTP at all (a=inactive: an SRC pausing a held call)
            timeout = (max(sip.rtp_timeout_s, sip.rtp_hold_timeout_s) if call.recorded.on_hold
                       else sip.rtp_timeout_s)
            if call.rtp_idle_s(now) > timeout:
                log.warning("rtp timeout", extra={"uid": call.recorded.uid, "idle_s": timeout,
                                                  "on_hold": call.recorded.on_hold})
                call.end("rtp timeout")

    def _end_calls(self, reason: str) -> None:
        for call in list(self._slots.values()):
            call.end(reason)

    # --- state for the rest of the appliance (any thread) ---
    @property
    def registrations(self) -> list[Registration]:
        return [a.registration for a in self.accounts if not a.direct]

    def state(self) -> dict[str, Any]:
        with self._lock:
            calls = [r.capture_info() for r in self.recordings.values() if not r.ended]
            recordings = len(self.recordings)
        return {"registrations": [r.as_dict() for r in self.registrations],
                "active_calls": calls, "finalizing": recordings - len(calls),
                "calls_finalized": self.finished_results, "counts": dict(self.counts),
                "updated_at": time.time()}

    def write_state(self, stopped: bool = False) -> None:
        """Hand the current state to its file's writer thread (the SIP thread calls this on
        every call and must not wait on the disk); ``stopped``: the last one, waited for."""
        with self._state_lock:
            if self._state_final:
                return              # a call finalized after the stop must not undo it
            state = self.state()
            state["running"] = not stopped
            self._snapshots.put(state)
            self._state_at = time.monotonic()
            self._state_final = stopped
        if stopped:
            self._snapshots.close()
