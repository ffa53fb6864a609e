"""The pjsua2 endpoint: transports, codecs, accounts, the calls in progress, and shutdown.

pjsua2 rules this module keeps (each was seen to abort the process otherwise): every thread
that calls pjsua2 registers itself first; no ``Call`` or ``AudioMediaPort`` may be alive when
``libDestroy`` runs; and the library is created once per process.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import ipaddress
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pjsua2 as pj

from ... import __version__
from ...bus import Bus
from ...config import SipAccount as AccountSettings
from ...config import Settings
from ...media.session import Stages
from ...system.atomic import write_json_atomic
from ...system.disk import RecordingGuard
from .account import Registration, SipAccount, plan_for
from .call import RecordedCall

log = logging.getLogger(__name__)
pjlog = logging.getLogger("pjsip")

MAINTENANCE_S = 1.0
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
    """Runs the SIP side of the appliance: ``start()``, then ``stop()`` from the same thread."""

    def __init__(self, settings: Settings, stages: Stages | None = None,
                 bus: Bus | None = None, *, sip_address: tuple[str, int] | None = None,
                 contact: tuple[str, int] | None = None, state_name: str = "sip") -> None:
        """``sip_address`` overrides where SIP listens (a capture worker: loopback, behind the
        front); ``contact`` is the address registrations announce (the front's)."""
        self.settings = settings
        self.sip_address = sip_address or (settings.sip.bind_address, settings.sip.port)
        self.contact = contact
        self.stages = stages
        self.bus = bus or Bus()
        sip = settings.sip
        self.allowed_networks = [ipaddress.ip_network(n, strict=False) for n in sip.allowed_sources]
        settings.paths.data_dir.mkdir(parents=True, exist_ok=True)
        self.guard = RecordingGuard(settings.paths.data_dir, settings.retention.stop_recording_free_mb)
        self.ep: pj.Endpoint | None = None
        self.accounts: list[SipAccount] = []
        self.calls: dict[int, RecordedCall] = {}
        self.ended: list[RecordedCall] = []
        self.finished_results = 0
        self._lock = threading.RLock()
        self._state_lock = threading.Lock()
        self._writer = _LogWriter()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._deferred: queue.SimpleQueue[tuple[RecordedCall, pj.CallOpParam]] = queue.SimpleQueue()
        self._maint: threading.Thread | None = None
        self.state_path = settings.paths.data_dir / "run" / f"{state_name}.json"

    # --- start / stop ---
    def start(self) -> None:
        sip = self.settings.sip
        ep = pj.Endpoint()
        with _quiet_stdout():       # pjlib prints its start-up chatter before logging is set
            ep.libCreate()
        self.ep = ep
        cfg = pj.EpConfig()
        cfg.uaConfig.maxCalls = sip.max_calls
        cfg.uaConfig.threadCnt = 1
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
        try:
            ep.libInit(cfg)
            host, port = self.sip_address
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
            self._set_codecs()
            add_siprec_capability()
            self._add_accounts()
        except pj.Error as exc:
            self.stop()
            raise SipError(f"SIP endpoint failed to start on {host}:{port}: "
                           f"{exc.info()}; check sip.bind_address / sip.port (is another SIP "
                           "service using the port?)") from None
        self._maint = threading.Thread(target=self._maintain, name="sip-maint", daemon=True)
        self._maint.start()
        log.info("sip endpoint started", extra={"address": f"{host}:{port}",
                                                "transports": ",".join(sip.transports),
                                                "accounts": len(sip.accounts),
                                                "direct_calls": sip.direct_calls})
        self.write_state()

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

    def stop(self) -> None:
        """Hang up, finalize every call, release pjsua2 objects, destroy the library."""
        self._stop.set()
        self._wake.set()
        if self._maint is not None:
            self._maint.join(timeout=10)
        ep = self.ep
        if ep is None:
            return
        try:
            ep.hangupAllCalls()
        except pj.Error:
            pass
        deadline = time.monotonic() + 5
        while self.calls and time.monotonic() < deadline:
            time.sleep(0.1)     # DISCONNECTED callbacks arrive on pjsua's worker thread
        self._release_calls()
        for acc in self.accounts:
            try:
                acc.shutdown()
            except pj.Error:
                pass
        self.accounts.clear()
        sys.last_type = sys.last_value = sys.last_traceback = None  # type: ignore[assignment]
        gc.collect()
        ep.libDestroy()
        self.ep = None
        self.write_state(stopped=True)
        log.info("sip endpoint stopped")

    def _release_calls(self) -> None:
        """Finalize and drop every call. A separate frame so that no local variable keeps a
        ``pj.Call`` alive into ``libDestroy`` (which aborts the process)."""
        with self._lock:
            pending = list(self.calls.values()) + self.ended
        for call in pending:
            call.finish("appliance stopping")
        for call in pending:
            if call.live is not None and not call.live.wait(FINALIZE_WAIT_S):
                log.error("call not finalized before shutdown", extra={"uid": call.uid})
        with self._lock:
            for call in pending:
                call.release()
            self.calls.clear()
            self.ended.clear()

    # --- calls (pjsua worker thread) ---
    def incoming(self, acc: SipAccount, call_id: int, raw: str, source: str) -> None:
        plan = plan_for(raw, source, self, acc.direct)
        call = RecordedCall(self, acc, call_id, plan)
        op = pj.CallOpParam()
        with self._lock:
            self.calls[call_id] = call
        if not plan.accepted:
            log.warning("call refused", extra={"status": plan.status, "reason": plan.reason,
                                               "source": source,
                                               "sip_call_id": plan.extra.get("sip_call_id")})
            op.statusCode = plan.status
            op.reason = plan.reason
            # Rejected from the maintenance thread, not inside this callback: pjsua 2.15.1
            # aborts (double free of the cloned INVITE) when a body-less INVITE is rejected
            # from onIncomingCall.
            self._deferred.put((call, op))
            self._wake.set()
            return
        call.start_recording()
        op.statusCode = 200
        op.opt.audioCount = plan.audio_count
        op.opt.videoCount = 0
        try:
            call.answer(op)
        except pj.Error as exc:
            log.error("answer failed", extra={"uid": call.uid, "reason": exc.info()})
            call.finish(f"answer failed: {exc.reason}")
        self.write_state()
        self.bus.publish("call.started", uid=call.uid, source=plan.source, agent=plan.agent,
                         client=plan.client, direction=plan.direction)

    def call_ended(self, call: RecordedCall) -> None:
        with self._lock:
            for cid, c in list(self.calls.items()):
                if c is call:
                    del self.calls[cid]
            self.ended.append(call)
        if call.live is not None:
            log.info("call ended", extra={"uid": call.uid, "reason": call.live.meta.extra.get(
                "end_reason")})

    def call_done(self, result: dict[str, Any]) -> None:
        """A live call's recording and analysis are final (called on its worker thread)."""
        self.finished_results += 1
        self.bus.publish("call.analysed", result=result)
        self.write_state()

    def registration_changed(self, acc: SipAccount) -> None:
        self.bus.publish("sip.registration", **acc.registration.as_dict())
        self.write_state()

    # --- maintenance thread ---
    def _maintain(self) -> None:
        assert self.ep is not None
        self.ep.libRegisterThread("sip-maint")
        timeout = self.settings.sip.rtp_timeout_s
        while not self._stop.is_set():
            self._wake.wait(MAINTENANCE_S)
            self._wake.clear()
            self._reject_deferred()
            now = time.monotonic()
            with self._lock:
                active = list(self.calls.values())
            for call in active:
                if call.live is None or call.ended_at is not None:
                    continue
                if call.rtp_idle_s(now) > timeout:
                    log.warning("rtp timeout", extra={"uid": call.uid, "idle_s": timeout})
                    call.end_reason = "rtp timeout"
                    try:
                        call.hangup(pj.CallOpParam())
                    except pj.Error:
                        pass
                    call.finish("rtp timeout")
            with self._lock:
                done = [c for c in self.ended if c.ended_at and now - c.ended_at > 2
                        and (c.live is None or c.live.done.is_set())]
                self.ended = [c for c in self.ended if c not in done]
            for call in done:
                call.release()
            del done, active

    def _reject_deferred(self) -> None:
        while True:
            try:
                call, op = self._deferred.get_nowait()
            except queue.Empty:
                return
            try:
                call.hangup(op)     # an unanswered incoming call: sends the final response
            except pj.Error as exc:
                log.warning("reject failed", extra={"reason": exc.info()})
            call.finish(f"refused {op.statusCode}")
            del call

    # --- state for the rest of the appliance ---
    @property
    def registrations(self) -> list[Registration]:
        return [a.registration for a in self.accounts if not a.direct]

    def state(self) -> dict[str, Any]:
        with self._lock:
            calls = [c.capture_info() for c in self.calls.values() if c.live is not None]
        asr = self.stages.asr if self.stages is not None else None
        return {"registrations": [r.as_dict() for r in self.registrations],
                "active_calls": calls, "calls_finalized": self.finished_results,
                "asr_queue": asr.queue_length if asr is not None and asr.available else 0,
                "updated_at": time.time()}

    def write_state(self, stopped: bool = False) -> None:
        try:
            with self._state_lock:
                self.state_path.parent.mkdir(parents=True, exist_ok=True)
                state = self.state()
                state["running"] = not stopped
                write_json_atomic(self.state_path, state)
        except OSError as exc:
            log.error("sip state not written", extra={"reason": str(exc)})
