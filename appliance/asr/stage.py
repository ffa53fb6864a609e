"""ASR as a pipeline stage: speech segments of each party in, a transcript out.

Segments are queued to a worker pool shared by all calls and bounded to the cores. The
queue grows rather than drops (the recording is on disk; a call's transcript is complete
when its last segment is decoded). Long segments are cut at the quietest frame before
``max_segment_s``, because Whisper reads only the first 30 s of its input.
"""

from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from ..config import AsrSettings
from ..media.frames import FRAME_S, SAMPLES_PER_FRAME, frames_to_s
from .filters import clean_transcript
from .model import ModelError, find_model
from .recognizer import Recognizer, WhisperRecognizer

log = logging.getLogger(__name__)


@dataclass
class Piece:
    party: str
    start: int          # frames
    end: int
    future: Future[str | None] | None    # None: not decoded (too quiet)


def _lower_priority(nice: int) -> None:
    """Renice the calling thread (Linux: niceness is per thread, and inherited by threads it
    starts), so recognition yields the CPU to capture and DSP."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
    except OSError as exc:
        log.warning("recognition priority unchanged", extra={"reason": str(exc)})


def _at_low_priority(nice: int, build: Callable[[], Any]) -> Any:
    """Run ``build`` on a reniced thread: onnxruntime's decoding threads, created with the
    session, inherit its niceness."""
    out: dict[str, Any] = {}

    def target() -> None:
        _lower_priority(nice)
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


class AsrService:
    """The process-wide recognizer and its worker pool."""

    def __init__(self, settings: AsrSettings, recognizer: Recognizer | None = None) -> None:
        self.settings = settings
        self.status = "disabled"
        self.reason = "asr.enabled is false"
        self.recognizer = recognizer
        self._pool: ThreadPoolExecutor | None = None
        self._pending = 0
        self._lock = threading.Lock()
        if not settings.enabled:
            return
        # Decoders run in parallel, each on cores // workers threads. Memory grows with the
        # number of decoders (Whisper's encoder on a 25 s chunk holds ~150 MB of activations).
        cores = max(1, os.cpu_count() or 1)
        workers = settings.workers
        if recognizer is None:
            try:
                model = find_model(settings.model_dir)
            except ModelError as exc:
                self.status, self.reason = "unavailable", str(exc)
                log.warning("speech recognition unavailable", extra={"reason": str(exc)})
                return
            self.recognizer = _at_low_priority(settings.nice, lambda: WhisperRecognizer(
                model, settings.language, settings.precision, threads=max(1, cores // workers)))
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="asr",
                                        initializer=_lower_priority, initargs=(settings.nice,))
        self.status, self.reason = "ok", ""

    @property
    def available(self) -> bool:
        return self._pool is not None

    @property
    def queue_length(self) -> int:
        """Segments waiting or being decoded, across all calls."""
        return self._pending

    def submit(self, audio: np.ndarray) -> Future[str | None]:
        assert self._pool is not None and self.recognizer is not None
        with self._lock:
            self._pending += 1
        return self._pool.submit(self._decode, audio)

    def _decode(self, audio: np.ndarray) -> str | None:
        """Text of one piece; None if the recognizer failed (the call's other results stand)."""
        try:
            return clean_transcript(self.recognizer.transcribe(audio))  # type: ignore[union-attr]
        except Exception:
            log.exception("speech recognition failed on a segment",
                          extra={"seconds": round(len(audio) / 16000, 2)})
            return None
        finally:
            with self._lock:
                self._pending -= 1

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    def info(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.available:
            out.update(language=self.settings.language, model=self.recognizer.name)  # type: ignore[union-attr]
        else:
            out["reason"] = self.reason
        return out


@dataclass
class _Chunk:
    start: int
    end: int
    pcm: list[np.ndarray]
    levels: list[np.ndarray]


AudioFn = Callable[[str, int, int], tuple[np.ndarray, np.ndarray]]


class CallTranscriber:
    """One call's speech through the shared service.

    A party's consecutive segments with pauses under ``join_s`` are decoded together (up to
    ``max_segment_s``, the real pause audio included): Whisper reads a sentence split at
    every breath much worse than the whole sentence.
    """

    def __init__(self, service: AsrService, audio: AudioFn) -> None:
        self.service = service
        self.audio = audio
        self.pieces: list[Piece] = []
        self._open: dict[str, _Chunk] = {}
        self.failed = 0             # pieces the recognizer failed on (after transcript())
        s = service.settings
        self.max_frames = int(s.max_segment_s / FRAME_S)
        self.join_frames = int(s.join_s / FRAME_S)
        self.min_level = s.min_level_dbfs

    def add(self, party: str, start: int, end: int) -> None:
        """A closed speech segment of ``party`` (frames); its audio is read at once."""
        if not self.service.available:
            return
        chunk = self._open.get(party)
        if chunk and start - chunk.end <= self.join_frames and end - chunk.start <= self.max_frames:
            for a, b in ((chunk.end, start), (start, end)):
                pcm, lv = self.audio(party, a, b)
                chunk.pcm.append(pcm)
                chunk.levels.append(lv)
            chunk.end = end
            return
        if chunk:
            self._submit(party, chunk)
        pcm, lv = self.audio(party, start, end)
        self._open[party] = _Chunk(start, end, [pcm], [lv])

    def tick(self, frame: int, open_starts: dict[str, int | None]) -> None:
        """The call has reached ``frame`` (``open_starts``: each party's segment in progress):
        decode the chunks that no segment can join any more."""
        for party, chunk in list(self._open.items()):
            nxt = open_starts.get(party)
            if (nxt if nxt is not None else frame) - chunk.end > self.join_frames:
                self._submit(party, self._open.pop(party))

    def _submit(self, party: str, chunk: _Chunk) -> None:
        pcm, levels = np.concatenate(chunk.pcm), np.concatenate(chunk.levels)
        for a, b in _cut(chunk.start, chunk.end, levels, self.max_frames):
            lv = levels[a - chunk.start: b - chunk.start]
            lo, hi = (a - chunk.start) * SAMPLES_PER_FRAME, (b - chunk.start) * SAMPLES_PER_FRAME
            audio = pcm[lo:hi].astype(np.float32) / 32768.0
            quiet = len(lv) == 0 or float(np.max(lv)) < self.min_level
            self.pieces.append(Piece(party, a, b, None if quiet else self.service.submit(audio)))

    def transcript(self) -> list[dict[str, Any]]:
        """Decode what is left, wait for this call's pieces; [{party, start, end, text}]."""
        for party in list(self._open):
            self._submit(party, self._open.pop(party))
        out = []
        self.failed = 0
        for p in sorted(self.pieces, key=lambda p: (p.start, p.party)):
            text = p.future.result() if p.future is not None else ""
            if text is None:
                self.failed += 1
            elif text:
                out.append({"party": p.party, "start": frames_to_s(p.start),
                            "end": frames_to_s(p.end), "text": text})
        return out


def _cut(start: int, end: int, levels: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Split [start, end) into pieces of at most max_frames, each cut at the quietest frame
    of its last quarter. ``levels`` are the frames' dBFS from ``start`` on."""
    seg0, pieces = start, []
    while end - start > max_frames:
        lo, hi = start + max_frames * 3 // 4, start + max_frames
        window = levels[lo - seg0: hi - seg0]
        cut = lo + int(np.argmin(window)) if len(window) else hi
        pieces.append((start, cut))
        start = cut
    pieces.append((start, end))
    return pieces
