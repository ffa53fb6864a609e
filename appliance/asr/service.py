"""The box's one speech recognizer: pieces of every call in, each call's transcript out.

One model in memory for the whole box, in the daemon. Capture workers and the file sources
offer pieces as the calls go (``offer``); when a call's analysis is written, its owner closes
it (``close``) with the full list of its pieces and a way to read any piece whose audio never
arrived (a worker that died, a daemon restart, a full buffer): the recording is on disk, so
falling behind never loses audio. Decoders take pieces of closed calls first, oldest hang-up
first, then live pieces in arrival order, so no call waits behind a long one.

Memory is bounded: live audio beyond ``asr.buffer_s`` seconds is not kept but read back from
the recording when its call closes, and only one closed call's missing audio is read at a time.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..config import AsrSettings
from ..core.frames import PIPELINE_RATE, frames_to_s
from ..system.priority import lower_priority
from .cancelled import Cancelled
from .filters import clean_transcript
from .model import ModelError, find_model
from .pieces import PieceSpec
from .recognizer import Recognizer, load_recognizer

log = logging.getLogger(__name__)

Transcript = list[dict[str, Any]]
LoadAudio = Callable[[list[PieceSpec]], dict[PieceSpec, np.ndarray]]
OnDone = Callable[[Transcript, int], None]

STALE_LIVE_S = 3 * 3600.0     # a call never closed (its worker died): its pieces are dropped

WAITING, QUEUED, DECODING, DONE, FAILED = "waiting", "queued", "decoding", "done", "failed"


def _at_low_priority(nice: int, build: Callable[[], Any]) -> Any:
    """Run ``build`` on a reniced thread: onnxruntime's decoding threads, created with the
    session, inherit its niceness."""
    out: dict[str, Any] = {}

    def target() -> None:
        lower_priority(nice)
        try:
            out["value"] = build()
        except BaseException as exc:    # noqa: BLE001 - re-raised in the caller's thread
            out["error"] = exc

    t = threading.Thread(target=target, name="asr-load")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


@dataclass
class _Piece:
    state: str = WAITING
    pcm: np.ndarray | None = None
    text: str | None = None


@dataclass
class _Call:
    ref: str
    seen_at: float
    pieces: dict[PieceSpec, _Piece] = field(default_factory=dict)
    closed_at: float | None = None
    load: LoadAudio | None = None
    on_done: OnDone | None = None
    loading: bool = False
    origin: object = None            # who offered its live pieces (a worker's connection)

    def open_pieces(self) -> list[PieceSpec]:
        return [s for s, p in self.pieces.items() if p.state not in (DONE, FAILED)]


class AsrService:
    """The recognizer and its decoder threads; thread-safe."""

    def __init__(self, settings: AsrSettings, recognizer: Recognizer | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.clock = clock
        self.status = "disabled"
        self.reason = "asr.enabled is false"
        self.recognizer = recognizer
        self._calls: dict[str, _Call] = {}
        self._heap: list[tuple[int, float, int, str, PieceSpec | None]] = []
        self._seq = itertools.count()
        self._cv = threading.Condition()
        self._stop = False
        self._buffered = 0                      # samples of live audio held
        self._max_buffered = int(settings.buffer_s * PIPELINE_RATE)
        self._threads: list[threading.Thread] = []
        self.decoded = 0                        # pieces decoded since start
        if not settings.enabled:
            return
        cores = max(1, os.cpu_count() or 1)
        workers = settings.workers
        if recognizer is None:
            try:
                model = find_model(settings.model_dir)
            except ModelError as exc:
                self.status, self.reason = "unavailable", str(exc)
                log.warning("speech recognition unavailable", extra={"reason": str(exc)})
                return
            # Decoders run in parallel, each on cores // workers threads. Memory grows with
            # the number of decoders (the encoder on a 25 s piece holds ~150 MB).
            self.recognizer = _at_low_priority(settings.nice, lambda: load_recognizer(
                model, settings.language, settings.precision, threads=max(1, cores // workers)))
        for i in range(workers):
            t = threading.Thread(target=self._decode_loop, name=f"asr-{i}", daemon=True)
            t.start()
            self._threads.append(t)
        self.status, self.reason = "ok", ""

    @property
    def available(self) -> bool:
        return bool(self._threads)

    # --- producers (any thread) ---
    def offer(self, ref: str, piece: PieceSpec, pcm: np.ndarray, origin: object = None,
              block: bool = False) -> None:
        """A live piece of call ``ref`` (int16, 16 kHz). Kept for decoding unless the buffer
        is full (then it is read from the recording when the call closes); ``block`` waits
        for room instead (a command-line analysis, which has no recording to go back to)."""
        if not self.available:
            return
        with self._cv:
            if block:
                self._cv.wait_for(lambda: self._stop or self._buffered + len(pcm)
                                  <= max(self._max_buffered, len(pcm)))
            call = self._calls.get(ref)
            if call is None:
                call = self._calls[ref] = _Call(ref, self.clock(), origin=origin)
            call.seen_at = self.clock()
            if piece in call.pieces:
                return
            p = call.pieces[piece] = _Piece()
            if self._buffered + len(pcm) <= self._max_buffered or block:
                p.pcm, p.state = np.asarray(pcm, np.int16), QUEUED
                self._buffered += len(pcm)
                self._push(call, piece)

    def close(self, ref: str, pieces: list[PieceSpec], load: LoadAudio | None,
              on_done: OnDone) -> None:
        """Call ``ref`` is over and these are all its pieces: decode what is left (reading the
        audio not offered with ``load``), then ``on_done(transcript, failed)`` (on a decoder
        thread, or here when nothing is left to do)."""
        done: list[tuple[OnDone, Transcript, int]] = []
        with self._cv:
            if not self.available:
                done.append((on_done, [], 0))
            else:
                call = self._calls.get(ref)
                if call is None:
                    call = self._calls[ref] = _Call(ref, self.clock())
                wanted = set(pieces)
                for spec in [s for s in call.pieces if s not in wanted]:
                    self._drop_piece(call, spec)      # offered, then not kept by the analysis
                for spec in pieces:
                    call.pieces.setdefault(spec, _Piece())
                call.closed_at, call.load, call.on_done = self.clock(), load, on_done
                for spec, p in call.pieces.items():
                    if p.state == QUEUED:
                        self._push(call, spec)        # again, at the closed call's priority
                if load is None:                      # nothing to read them from
                    for p in call.pieces.values():
                        if p.state == WAITING:
                            p.state = FAILED
                elif any(p.state == WAITING for p in call.pieces.values()):
                    self._push(call, None)            # read the missing audio first
                self._check_done(call, done)
        self._run_done(done)

    def transcribe(self, ref: str, pieces: list[PieceSpec], load: LoadAudio | None = None,
                   timeout: float | None = None) -> tuple[Transcript, int]:
        """``close`` and wait: (transcript, pieces the recognizer failed on)."""
        got: list[tuple[Transcript, int]] = []
        ready = threading.Event()

        def on_done(transcript: Transcript, failed: int) -> None:
            got.append((transcript, failed))
            ready.set()
        self.close(ref, pieces, load, on_done)
        if not ready.wait(timeout):
            raise TimeoutError(f"transcript of {ref} not ready after {timeout} s")
        return got[0]

    def forget_origin(self, origin: object) -> int:
        """Drop the live calls ``origin`` offered and never closed (its worker is gone; the
        call's recovery reads them again from the recording). Returns how many."""
        with self._cv:
            gone = [c for c in self._calls.values() if c.origin is origin and c.closed_at is None]
            for call in gone:
                self._drop_call(call)
        return len(gone)

    # --- state (any thread) ---
    def backlog(self) -> dict[str, Any]:
        """What is waiting: calls, seconds of audio, age of the oldest waiting call."""
        now = self.clock()
        with self._cv:
            self._drop_stale(now)
            waiting = [(c, c.open_pieces()) for c in self._calls.values()]
            waiting = [(c, open_) for c, open_ in waiting if open_]
            seconds = sum(s.seconds for _, open_ in waiting for s in open_)
            oldest = min((c.closed_at if c.closed_at is not None else c.seen_at
                          for c, _ in waiting), default=None)
            return {"calls": len(waiting), "closed": sum(1 for c, _ in waiting if c.closed_at),
                    "pieces": sum(len(o) for _, o in waiting), "audio_s": round(seconds, 1),
                    "oldest_s": round(now - oldest, 1) if oldest is not None else 0.0,
                    "buffered_s": round(self._buffered / PIPELINE_RATE, 1),
                    "decoded": self.decoded}

    @property
    def queue_length(self) -> int:
        """Pieces not yet decoded, across all calls."""
        with self._cv:
            return sum(len(c.open_pieces()) for c in self._calls.values())

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.available:
            out.update(language=self.settings.language, model=self.recognizer.name)  # type: ignore[union-attr]
        else:
            out["reason"] = self.reason
        return out

    def close_service(self) -> None:
        """Stop the decoders, also in the middle of a batch (what is queued or being decoded
        stays on disk as pending calls, finished at the next start)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()
        if self.recognizer is not None:
            self.recognizer.cancel()
        for t in self._threads:
            t.join(timeout=60)

    # --- internals (hold self._cv) ---
    def _push(self, call: _Call, spec: PieceSpec | None) -> None:
        # closed calls first, oldest hang-up first; then live pieces in arrival order
        key = (0, call.closed_at) if call.closed_at is not None else (1, self.clock())
        heapq.heappush(self._heap, (key[0], key[1], next(self._seq), call.ref, spec))
        self._cv.notify()

    def _drop_piece(self, call: _Call, spec: PieceSpec) -> None:
        p = call.pieces.pop(spec)
        if p.pcm is not None:
            self._buffered -= len(p.pcm)
            self._cv.notify_all()

    def _drop_call(self, call: _Call) -> None:
        for spec in list(call.pieces):
            self._drop_piece(call, spec)
        self._calls.pop(call.ref, None)

    def _drop_stale(self, now: float) -> None:
        for call in [c for c in self._calls.values()
                     if c.closed_at is None and now - c.seen_at > STALE_LIVE_S]:
            log.warning("recognition dropped a call never closed",
                        extra={"ref": call.ref, "pieces": len(call.pieces)})
            self._drop_call(call)

    def _next(self) -> tuple[str, list[tuple[_Call, PieceSpec]]] | None:
        """The next job: ("load", [(call, missing piece)...]) or ("decode", a batch)."""
        while self._heap:
            entry = heapq.heappop(self._heap)
            call, spec = self._calls.get(entry[3]), entry[4]
            if call is None:
                continue
            if spec is None:
                missing = [s for s, p in call.pieces.items() if p.state == WAITING]
                if missing and not call.loading and call.load is not None:
                    call.loading = True
                    return "load", [(call, s) for s in missing]
                if missing and call.load is None:   # nothing to read them from
                    for s in missing:
                        call.pieces[s].state = FAILED
                continue
            p = call.pieces.get(spec)
            if p is None or p.state != QUEUED:
                continue                            # a stale heap entry
            p.state = DECODING
            return "decode", [(call, spec)] + self._companions(spec)
        return None

    def _companions(self, first: PieceSpec) -> list[tuple[_Call, PieceSpec]]:
        """Queued pieces to decode with ``first``: the next ones in priority order whose
        length is close to its own (a batch is padded to its longest piece)."""
        batch: list[tuple[_Call, PieceSpec]] = []
        skipped = []
        looked = 0
        while self._heap and len(batch) < self.settings.batch - 1 and looked < 4 * self.settings.batch:
            entry = heapq.heappop(self._heap)
            looked += 1
            call, spec = self._calls.get(entry[3]), entry[4]
            if call is None or spec is None:
                skipped.append(entry)
                continue
            p = call.pieces.get(spec)
            if p is None or p.state != QUEUED:
                continue
            if 0.5 * first.seconds <= spec.seconds <= 1.5 * first.seconds + 1.0:
                p.state = DECODING
                batch.append((call, spec))
            else:
                skipped.append(entry)
        for entry in skipped:
            heapq.heappush(self._heap, entry)
        return batch

    def _check_done(self, call: _Call, done: list[tuple[OnDone, Transcript, int]]) -> None:
        if call.closed_at is None or call.on_done is None or call.open_pieces():
            return
        transcript = [{"party": s.party, "start": frames_to_s(s.start), "end": frames_to_s(s.end),
                       "text": p.text}
                      for s, p in sorted(call.pieces.items(), key=lambda kv: (kv[0].start,
                                                                              kv[0].party))
                      if p.state == DONE and p.text]
        failed = sum(1 for p in call.pieces.values() if p.state == FAILED)
        done.append((call.on_done, transcript, failed))
        self._drop_call(call)

    @staticmethod
    def _run_done(done: list[tuple[OnDone, Transcript, int]]) -> None:
        for on_done, transcript, failed in done:
            try:
                on_done(transcript, failed)
            except Exception:   # noqa: BLE001 - the next call's transcript must still come
                log.exception("transcript not delivered")

    # --- decoder threads ---
    def _decode_loop(self) -> None:
        lower_priority(self.settings.nice)
        while True:
            with self._cv:
                job = None
                while not self._stop and (job := self._next()) is None:
                    self._cv.wait()
                if self._stop:
                    return
            assert job is not None
            kind, items = job
            if kind == "load":
                self._load(items[0][0], [s for _, s in items])
            else:
                self._decode(items)

    def _load(self, call: _Call, specs: list[PieceSpec]) -> None:
        try:
            audio = call.load(specs) if call.load is not None else {}
        except Exception as exc:    # noqa: BLE001 - the call's other pieces stand
            log.error("speech audio not readable", extra={"ref": call.ref, "reason": str(exc)})
            audio = {}
        done: list[tuple[OnDone, Transcript, int]] = []
        with self._cv:
            call.loading = False
            for spec in specs:
                p = call.pieces.get(spec)
                if p is None or p.state != WAITING:
                    continue
                pcm = audio.get(spec)
                if pcm is None or not len(pcm):
                    p.state = FAILED
                    continue
                p.pcm, p.state = pcm, QUEUED
                self._buffered += len(pcm)
                self._push(call, spec)
            self._check_done(call, done)
        self._run_done(done)

    def _decode(self, items: list[tuple[_Call, PieceSpec]]) -> None:
        with self._cv:
            held = [(c, s, c.pieces.get(s)) for c, s in items]
            batch = [(c, s, p.pcm) for c, s, p in held if p is not None and p.pcm is not None]
        if not batch:
            return                  # every call of the batch was dropped meanwhile
        try:
            texts = self._recognize([pcm for _, _, pcm in batch])
        except Cancelled:
            return                  # shutting down: the calls stay pending on disk
        done: list[tuple[OnDone, Transcript, int]] = []
        with self._cv:
            for (call, spec, _), text in zip(batch, texts):
                p = call.pieces.get(spec)
                if p is not None:
                    p.state, p.text = (DONE, text) if text is not None else (FAILED, None)
                    if p.pcm is not None:
                        self._buffered -= len(p.pcm)
                        p.pcm = None
                self.decoded += 1
            self._cv.notify_all()
            for call in {id(c): c for c, _, _ in batch}.values():
                if self._calls.get(call.ref) is call:
                    self._check_done(call, done)
        self._run_done(done)

    def _recognize(self, pcms: list[np.ndarray]) -> list[str | None]:
        """Texts of a batch; a batch that fails is retried piece by piece, so one bad piece
        costs only its own text."""
        audio = [p.astype(np.float32) / 32768.0 for p in pcms]
        rec = self.recognizer
        assert rec is not None
        try:
            return [clean_transcript(t) for t in rec.transcribe_batch(audio)]
        except Cancelled:
            raise
        except Exception:           # noqa: BLE001
            if len(audio) == 1:
                log.exception("speech recognition failed on a piece",
                              extra={"seconds": round(len(audio[0]) / PIPELINE_RATE, 2)})
                return [None]
        out: list[str | None] = []
        for a in audio:
            out += self._recognize([(a * 32768.0).astype(np.int16)])
        return out
