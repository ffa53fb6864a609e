"""A day of an office's calls against a running appliance: many calls, through slot reuse.

Arrivals are a Poisson process at a chosen share of the box's capacity; call lengths are
drawn between a minimum and a maximum. The calls are of every kind a recorder meets:

- ``siprec``: a two-stream SIPREC session with metadata (a pjsua2 caller, real speech);
- ``plain``: an ordinary one-stream call (pjsua2);
- ``hold``: a call put on hold and taken off again by re-INVITEs (pjsua2);
- ``sipp``: a plain G.711 call from sipp, real speech from a pcap;
- ``vanish``: a sipp caller that goes away without a BYE (the box must time it out);
- ``cancel``: an INVITE cancelled at once (a raw user agent; the answer may win the race);
- ``refused``: an INVITE the box must refuse (its only audio stream rejected: 488);
- bursts of INVITEs above the box's capacity (raw user agents; each either answered and
  hung up, or refused with 486/503).

``SoakReport.problems()`` lists every way the box fell short: an answered call with no
complete call JSON, a recording left open, a refusal that is not 486/503, an answered call
the box hung up (a vanished caller excepted), and growth of threads, open files or memory
after warm-up.
"""

from __future__ import annotations

import itertools
import json
import logging
import random
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import sippcall
from .procstats import TreeUsage, tree_usage
from .rawsip import HOST, RawUA, free_port, invite, sdp

log = logging.getLogger(__name__)

KINDS = ("siprec", "plain", "hold", "sipp", "vanish", "cancel", "refused")
CLEAN_REFUSALS = (486, 503)


@dataclass
class SoakPlan:
    calls: int = 300
    load: float = 0.7                  # offered traffic as a share of the box's capacity
    min_s: float = 1.0
    max_s: float = 5.0
    mean_s: float = 2.5
    mix: dict[str, float] = field(default_factory=lambda: {
        "siprec": 0.35, "plain": 0.15, "hold": 0.1, "sipp": 0.15, "vanish": 0.05,
        "cancel": 0.1, "refused": 0.1})
    burst_every: int = 100             # calls between bursts (0: none)
    burst_extra: int = 4               # a burst offers capacity + this many calls at once
    seed: int = 7

    def length(self, rng: random.Random) -> float:
        # exponential above the minimum: many short calls, a few long ones
        return min(self.max_s, self.min_s + rng.expovariate(1.0 / max(0.1, self.mean_s - self.min_s)))


@dataclass
class Outcome:
    id: str
    kind: str
    sip_call_id: str
    answered: bool = False
    status: int = 0
    box_hung_up: bool = False          # the box ended an answered call
    held: bool = False                 # the caller put the call on hold by re-INVITE
    error: str | None = None


@dataclass
class SoakReport:
    outcomes: list[Outcome]
    samples: list[tuple[float, TreeUsage]]
    warm: TreeUsage | None
    end: TreeUsage | None
    finished: set[str]                 # SIP Call-IDs with a complete call JSON
    open_recordings: list[str]
    elapsed_s: float
    capacity: int
    sip_held: set[str] = field(default_factory=set)   # ... whose JSON has a hold from SIP
    backlog: list[tuple[float, dict[str, Any]]] = field(default_factory=list)  # recognizer's

    def counts(self) -> dict[str, Any]:
        answered = [o for o in self.outcomes if o.answered]
        return {"offered": len(self.outcomes), "answered": len(answered),
                "recorded": sum(1 for o in answered if o.sip_call_id in self.finished),
                "refused_clean": sum(1 for o in self.outcomes if o.status in CLEAN_REFUSALS),
                "by_kind": dict(Counter(o.kind for o in self.outcomes)),
                "statuses": dict(Counter(o.status for o in self.outcomes)),
                "open_recordings": len(self.open_recordings),
                "held": sum(1 for o in answered if o.held and o.sip_call_id in self.finished),
                "held_with_sip_hold": sum(1 for o in answered if o.held
                                          and o.sip_call_id in self.sip_held)}

    def problems(self, threads_slack: int = 8, files_slack: int = 24,
                 rss_slack_mb: float = 150.0) -> list[str]:
        out = []
        for o in self.outcomes:
            if o.answered and o.sip_call_id not in self.finished:
                out.append(f"{o.id} ({o.kind}) answered but has no complete call JSON")
            if o.answered and o.box_hung_up and o.kind != "vanish":
                out.append(f"{o.id} ({o.kind}) answered, then hung up by the box")
            if not o.answered and o.kind not in ("cancel", "refused") \
                    and o.status not in CLEAN_REFUSALS:
                out.append(f"{o.id} ({o.kind}) not answered: status {o.status} {o.error or ''}")
            if o.kind == "refused" and o.status not in (488, *CLEAN_REFUSALS):
                out.append(f"{o.id} (refused) got {o.status}, not 488")
            if o.kind == "cancel" and o.status not in (200, 487, *CLEAN_REFUSALS):
                out.append(f"{o.id} (cancel) got {o.status}, not 487 or 200")
        out += [f"recording left open: {u}" for u in self.open_recordings]
        if self.warm and self.end:
            w, e = self.warm, self.end
            if e.threads > w.threads + threads_slack:
                out.append(f"threads grew from {w.threads} to {e.threads}")
            if e.open_files > w.open_files + files_slack:
                out.append(f"open files grew from {w.open_files} to {e.open_files}")
            if e.rss_mb > w.rss_mb + rss_slack_mb:
                out.append(f"memory grew from {w.rss_mb} to {e.rss_mb} MB")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {"counts": self.counts(), "problems": self.problems(),
                "elapsed_s": round(self.elapsed_s, 1), "capacity": self.capacity,
                "warm": self.warm.as_dict() if self.warm else None,
                "end": self.end.as_dict() if self.end else None,
                "peak": {k: max(getattr(s, k) for _, s in self.samples)
                         for k in ("threads", "open_files", "rss_mb", "pss_mb")}
                if self.samples else None,
                "samples": [[round(t, 1), s.as_dict()] for t, s in self.samples],
                "backlog": [[round(t, 1), b] for t, b in self.backlog]}


class _Callers:
    """pjsua2 caller processes (4 calls each) placing the pjsua2 kinds."""

    def __init__(self, count: int, workdir: Path, on_report: Callable[[dict], None],
                 rtp_base: int) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.busy: list[set[str]] = []
        self.on_report = on_report
        self.lock = threading.Lock()
        for i in range(count):
            p = subprocess.Popen([sys.executable, "-m", "appliance.simulate.caller",
                                  "--port", str(free_port()), "--rtp-port",
                                  str(rtp_base + i * 40)],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=open(workdir / f"caller{i}.log", "w"), text=True)
            self.procs.append(p)
            self.busy.append(set())
            threading.Thread(target=self._read, args=(i,), daemon=True).start()

    def _read(self, i: int) -> None:
        for line in self.procs[i].stdout:       # type: ignore[union-attr]
            report = json.loads(line)
            with self.lock:
                self.busy[i].discard(report["id"])
            self.on_report(report)

    def place(self, cmd: dict) -> bool:
        with self.lock:
            free = [i for i, b in enumerate(self.busy) if len(b) < 4]
            if not free:
                return False
            i = min(free, key=lambda k: len(self.busy[k]))
            self.busy[i].add(cmd["id"])
        self.procs[i].stdin.write(json.dumps(cmd) + "\n")   # type: ignore[union-attr]
        self.procs[i].stdin.flush()                           # type: ignore[union-attr]
        return True

    def idle(self) -> bool:
        with self.lock:
            return not any(self.busy)

    def close(self) -> None:
        for p in self.procs:
            try:
                p.stdin.close()                                 # type: ignore[union-attr]
            except OSError:
                pass
        for p in self.procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()


class Soak:
    """Runs a ``SoakPlan`` against the box at ``target`` (host, port) whose processes form
    the session ``session``, with calls JSON under ``data_dir``."""

    def __init__(self, target: tuple[str, int], data_dir: Path, session: int, capacity: int,
                 workdir: Path, call_wavs: list[tuple[Path, Path]], pcap: Path,
                 results: Callable[[], list[dict]], user: str = "recorder",
                 port_base: int = 50000) -> None:
        """Callers use UDP ports from ``port_base`` to ``port_base + 4000``, sipp calls above
        the ephemeral range (or up to ``port_base + 6000``): keep the box's RTP range clear
        of them."""
        self.target, self.data_dir, self.session = target, data_dir, session
        self.capacity, self.workdir = capacity, workdir
        self.call_wavs, self.pcap, self.results, self.user = call_wavs, pcap, results, user
        self.uri = f"sip:{user}@{target[0]}:{target[1]}"
        self.outcomes: dict[str, Outcome] = {}
        self.lock = threading.Lock()
        self.pending: set[str] = set()
        self._ids = itertools.count(1)
        self.port_base = port_base
        # pjsua2 callers' RTP: port_base + 2000 above their first port; sipp's blocks above
        # the ephemeral range (else from port_base + 4000)
        self._ports = sippcall.PortBlocks(port_base + 4000)
        workdir.mkdir(parents=True, exist_ok=True)

    # --- outcomes ---
    def _new(self, kind: str, sip_call_id: str = "") -> Outcome:
        o = Outcome(f"c{next(self._ids)}", kind, sip_call_id)
        with self.lock:
            self.outcomes[o.id] = o
            self.pending.add(o.id)
        return o

    def _done(self, o: Outcome) -> None:
        with self.lock:
            self.pending.discard(o.id)

    def _caller_report(self, r: dict) -> None:
        o = self.outcomes[r["id"]]
        o.sip_call_id = r.get("sip_call_id") or ""
        o.answered, o.status = bool(r.get("answered")), int(r.get("status") or 0)
        o.box_hung_up, o.error = bool(r.get("remote_bye")), r.get("error")
        o.held = bool(r.get("held"))
        if o.answered:
            o.status = 200
        self._done(o)

    # --- kinds ---
    def _pjsua(self, kind: str, seconds: float, rng: random.Random) -> None:
        agent, client = rng.choice(self.call_wavs)
        o = self._new(kind)
        siprec = kind == "siprec" or (kind == "hold" and rng.random() < 0.5)
        cmd = {"id": o.id, "target": self.uri, "siprec": siprec, "duration_s": seconds,
               "streams": [str(client), str(agent)] if siprec else [str(client)]}
        if kind == "hold":
            cmd["hold"] = [seconds * 0.3, seconds * 0.7]
        if not self.callers.place(cmd):
            o.error = "all callers busy"
            self._done(o)

    def _sipp(self, kind: str, seconds: float) -> None:
        o = self._new(kind, f"soak-{uuid.uuid4().hex[:12]}@{HOST}")
        port = self._ports.take()
        proc = sippcall.start(self.workdir / "sipp", o.id, self.target, self.user, self.pcap,
                              seconds, kind != "vanish", port, port + 2, o.sip_call_id)

        def reap() -> None:
            rc = proc.wait()
            got = sippcall.outcome(self.workdir / "sipp", o.id, rc)
            o.answered, o.status = got.answered, got.status
            o.box_hung_up = got.answered and not got.completed
            if not got.completed:
                o.error = got.log[-200:]
            self._done(o)
        threading.Thread(target=reap, daemon=True).start()

    def _raw(self, kind: str, hold_s: float = 1.0) -> None:
        o = self._new(kind)

        def run() -> None:
            ua = RawUA()
            try:
                body = sdp(1, direction="sendonly", port=0 if kind == "refused" else ua.port + 1)
                text, o.sip_call_id = invite(self.uri, body, siprec=False)
                resp = ua.call_and_cancel(text, self.target) if kind == "cancel" else \
                    ua.call(text, self.target)
                o.status = resp.status if resp is not None else 0
                o.answered = o.status == 200
                if o.answered:
                    if kind != "cancel":
                        time.sleep(hold_s)       # a silent caller, until it hangs up
                    bye = ua.bye(self.target)
                    # no answer, or "no such call": the box had already ended it
                    o.box_hung_up = bye is None or bye.status == 481
            except OSError as exc:
                o.error = str(exc)
            finally:
                ua.close()
                self._done(o)
        threading.Thread(target=run, daemon=True).start()

    # --- the run ---
    def _sample(self, stop: threading.Event, t0: float, out: list[tuple[float, TreeUsage]],
                every_s: float, probe: Callable[[], dict[str, Any]] | None,
                backlog: list[tuple[float, dict[str, Any]]]) -> None:
        while not stop.wait(every_s):
            out.append((time.monotonic() - t0, tree_usage(self.session)))
            if probe is not None:
                try:
                    backlog.append((time.monotonic() - t0, probe()))
                except Exception as exc:    # noqa: BLE001 - a busy box answers late; go on
                    log.warning("soak probe failed", extra={"reason": str(exc)})

    def _quiet(self, timeout: float) -> TreeUsage | None:
        """Wait until no call is in progress anywhere, then measure the box."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                busy = bool(self.pending)
            if not busy and self._box_idle():
                time.sleep(2.0)          # let finished calls' threads and files close
                return tree_usage(self.session)
            time.sleep(0.5)
        return None

    def _box_idle(self) -> bool:
        for path in (self.data_dir / "run").glob("sip*.json"):
            try:
                state = json.loads(path.read_text())
            except (OSError, ValueError):
                return False
            if state.get("active_calls") or state.get("finalizing"):
                return False
        return True

    def run(self, plan: SoakPlan, sample_s: float = 5.0, drain_s: float = 600.0,
            progress: Callable[[str], None] | None = None,
            probe: Callable[[], dict[str, Any]] | None = None) -> SoakReport:
        """Offer the plan's calls, then wait up to ``drain_s`` for the box to finish them;
        ``probe()`` (the recognizer's backlog, say) is sampled with the process tree."""
        rng = random.Random(plan.seed)
        rate = plan.load * self.capacity / plan.mean_s          # calls per second
        self.callers = _Callers(max(2, -(-int(self.capacity * 1.5) // 4)), self.workdir,
                                self._caller_report, self.port_base)
        samples: list[tuple[float, TreeUsage]] = []
        backlog: list[tuple[float, dict[str, Any]]] = []
        stop = threading.Event()
        t0 = time.monotonic()
        sampler = threading.Thread(target=self._sample,
                                   args=(stop, t0, samples, sample_s, probe, backlog),
                                   daemon=True)
        sampler.start()
        kinds = [k for k in KINDS if plan.mix.get(k)]
        weights = [plan.mix[k] for k in kinds]
        warm: TreeUsage | None = None
        warm_at = min(20, plan.calls // 10)
        next_t = time.monotonic()
        for n in range(plan.calls):
            if n == warm_at:
                warm = self._quiet(drain_s)      # warmed up: the baseline for growth
                next_t = time.monotonic()
            if plan.burst_every and n and n % plan.burst_every == 0:
                for _ in range(self.capacity + plan.burst_extra):
                    self._raw("burst")
            next_t += rng.expovariate(rate)
            time.sleep(max(0.0, next_t - time.monotonic()))
            kind = rng.choices(kinds, weights)[0]
            seconds = plan.length(rng)
            if kind in ("siprec", "plain", "hold"):
                self._pjsua(kind, seconds, rng)
            elif kind in ("sipp", "vanish"):
                self._sipp(kind, seconds)
            else:
                self._raw(kind)
            if progress and n % 50 == 0:
                progress(f"{n}/{plan.calls} calls offered")
        end = self._quiet(drain_s)
        self.callers.close()
        answered = {o.sip_call_id for o in self.outcomes.values() if o.answered}
        finished: set[str] = set()
        sip_held: set[str] = set()

        def all_final() -> bool:
            finished.clear()
            sip_held.clear()
            for r in self.results():
                finished.add(r["call"]["extra"].get("sip_call_id"))
                if any("sip" in h.get("by", ()) for h in r.get("holds") or ()):
                    sip_held.add(r["call"]["extra"].get("sip_call_id"))
            return answered <= finished
        deadline = time.monotonic() + drain_s
        while not all_final() and time.monotonic() < deadline:
            time.sleep(1.0)
        stop.set()
        sampler.join()
        return SoakReport(list(self.outcomes.values()), samples, warm, end, finished,
                          open_recordings(self.data_dir), time.monotonic() - t0, self.capacity,
                          sip_held, backlog)


def open_recordings(data_dir: Path) -> list[str]:
    """Recordings whose metadata still says ``recording``."""
    out = []
    for meta in (data_dir / "calls").glob("*/*.meta.json"):
        try:
            if json.loads(meta.read_text()).get("state") == "recording":
                out.append(meta.name.removesuffix(".meta.json"))
        except (OSError, ValueError):
            continue
    return out
