"""A call that arrives in real time: frames queued by a capture callback are recorded and
analysed on the call's own worker thread.

The capture side (a pjsua2 media callback) only calls ``push``: an append to a queue. The
worker aligns the two parties, appends them to the recording as they stream and feeds the same
``CallSession`` a file goes through; ``end`` finalizes recording and analysis.
"""

from __future__ import annotations

import logging
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..system import sealing
from ..system.atomic import write_json_atomic
from ..core.frames import PARTIES, PIPELINE_RATE, Party
from .recorder import StereoRecorder, wav_to_flac
from .session import CallMeta, CallSession, Stages

log = logging.getLogger(__name__)

# Which capture process records the call ("" for the daemon itself): a worker that dies has
# its calls recovered by tag while the other workers' calls go on.
PROCESS_TAG = os.environ.get("APPLIANCE_WORKER", "")

MAX_SKEW_S = 2.0     # a party this far behind the other is padded with silence (stalled stream)
# The DSP's Python bookkeeping costs per chunk fed; a worker on an idle box would otherwise
# wake for every 20 ms frame and pay it each time (bench/speed.py). 100 ms delays nothing
# anyone sees.
MIN_FEED_S = 0.1


def new_uid(started_at: float | None = None) -> str:
    """A call's id on the box: its start time and 6 random hex digits (never reused, unlike
    a PBX's file names or a SIP slot)."""
    return f"{time.strftime('%Y%m%d-%H%M%S', time.localtime(started_at))}-{secrets.token_hex(3)}"


def day_folder(calls_dir: Path, started_at: float) -> Path:
    """Where a call's files live: one folder per day of its start."""
    return calls_dir / time.strftime("%Y-%m-%d", time.localtime(started_at))


def call_paths(calls_dir: Path, uid: str, started_at: float) -> tuple[Path, Path, Path]:
    """Recording, metadata and analysis files of a live call (one folder per day)."""
    day = day_folder(calls_dir, started_at)
    return day / f"{uid}.wav", day / f"{uid}.meta.json", day / f"{uid}.json"


class LiveCall:
    """Records and analyses one call fed frame by frame from another thread."""

    def __init__(self, settings: Settings, meta: CallMeta, stages: Stages | None,
                 uid: str, parties: tuple[Party, ...] = PARTIES,
                 on_done: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.settings = settings
        self.meta = meta
        self.uid = uid
        self.parties = parties            # parties that have a stream; others are silent
        self.on_done = on_done
        self.wav_path, self.meta_path, self.result_path = call_paths(
            settings.paths.calls, uid, meta.started_at)
        self.recorder = StereoRecorder(self.wav_path, settings.recording.sync_s)
        self.session = CallSession(settings, meta, stages)
        self.received = {p: 0 for p in PARTIES}      # samples per party
        self.padded = {p: 0 for p in PARTIES}
        self.max_queue = 0
        self.result: dict[str, Any] | None = None
        self.recording_error: str | None = None
        # audio (party, pcm), a metadata document to write, or None: the end
        self._q: queue.SimpleQueue[tuple[str, bytes] | dict[str, Any] | None] = queue.SimpleQueue()
        self._pending: dict[Party, list[np.ndarray]] = {p: [] for p in PARTIES}
        self._pending_n = {p: 0 for p in PARTIES}
        self._ended = False
        self.done = threading.Event()
        self._unsaved: dict[str, Any] | None = None  # metadata whose write failed
        self._meta_tried = 0.0
        self._q.put(self._meta_doc("recording"))      # written first, on the call's thread
        self._thread = threading.Thread(target=self._run, name=f"call-{uid}", daemon=True)
        self._thread.start()

    # --- capture side (any thread; must stay cheap) ---
    def push(self, party: str, pcm: bytes) -> None:
        """Queue 16 kHz s16le mono samples of one party."""
        self._q.put((party, pcm))

    def end(self, reason: str) -> None:
        """No more audio: finalize recording and analysis (returns at once)."""
        if not self._ended:
            self._ended = True
            self.meta.extra["end_reason"] = reason
            self._q.put(None)

    def wait(self, timeout: float | None = None) -> bool:
        return self.done.wait(timeout)

    def meta_changed(self) -> None:
        """The call's metadata changed (on the SIP thread): the file beside the recording is
        rewritten on the call's own thread. A durable write can wait seconds on a busy disk,
        and the SIP thread answers every call of its process. The document is taken here,
        where the metadata changes, so the call's thread never reads it mid-change."""
        if not self._ended:
            self._q.put(self._meta_doc("recording"))

    def write_meta(self, state: str) -> None:
        """Write the metadata beside the recording (who, when, state) now."""
        write_json_atomic(self.meta_path, self._meta_doc(state))

    def _meta_doc(self, state: str) -> dict[str, Any]:
        return {"uid": self.uid, "state": state, "recording": self.wav_path.name,
                "process": PROCESS_TAG, "call": asdict(self.meta)}

    def _save_meta(self, doc: dict[str, Any]) -> None:
        """Write ``doc``; if that fails, keep it and try again a second later (until then a
        crash could not be recovered and retention would not know the call is live)."""
        failing = self._unsaved is not None       # an earlier write failed
        self._unsaved, self._meta_tried = doc, time.monotonic()
        try:
            write_json_atomic(self.meta_path, doc)
        except Exception as exc:    # noqa: BLE001 - the recording goes on whatever this is
            if not failing:
                log.error("call metadata not written; retried every second",
                          extra={"uid": self.uid, "reason": str(exc)})
            return
        if failing:
            log.info("call metadata written", extra={"uid": self.uid})
        self._unsaved = None

    # --- worker ---
    def _run(self) -> None:
        try:
            self._loop()
        except Exception:   # noqa: BLE001 - a broken call must not take the others down
            log.exception("live call failed", extra={"call": self.meta.call_id, "uid": self.uid})
            self.meta.notes.append("analysis failed; the recording is kept")
        finally:
            self._finalize()

    def _loop(self) -> None:
        while True:
            item = self._q.get()
            items = [item]
            while True:                    # drain: feed the DSP in chunks, not per 20 ms
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            self.max_queue = max(self.max_queue, len(items))
            stop = False
            for it in items:
                if it is None:
                    stop = True
                    continue
                if isinstance(it, dict):
                    self._save_meta(it)
                    continue
                party, pcm = it
                arr = np.frombuffer(pcm, np.int16)
                self._pending[party].append(arr)      # type: ignore[index]
                self._pending_n[party] += len(arr)    # type: ignore[index]
                self.received[party] += len(arr)      # type: ignore[index]
            if self._unsaved is not None and time.monotonic() - self._meta_tried >= 1.0:
                self._save_meta(self._unsaved)
            self._flush(final=stop)
            if stop:
                return

    def _take(self, party: Party, n: int) -> np.ndarray:
        have = np.concatenate(self._pending[party]) if self._pending[party] else np.zeros(0, np.int16)
        out, rest = have[:n], have[n:]
        if len(out) < n:
            self.padded[party] += n - len(out)
            out = np.concatenate([out, np.zeros(n - len(out), np.int16)])
        self._pending[party] = [rest] if len(rest) else []
        self._pending_n[party] = len(rest)
        return out

    def _flush(self, final: bool) -> None:
        streams = [self._pending_n[p] for p in self.parties]
        n = max(streams) if final else min(streams)
        if not final and max(streams) - n > MAX_SKEW_S * PIPELINE_RATE:
            n = max(streams) - int(MAX_SKEW_S * PIPELINE_RATE)   # the lagging stream stalled
        if n <= 0 or (not final and n < MIN_FEED_S * PIPELINE_RATE):
            return
        agent, client = self._take("agent", n), self._take("client", n)
        if self.recording_error is None:
            try:
                self.recorder.write(agent, client)
            except OSError as exc:
                self._stop_recording(exc)
        self.session.feed("agent", agent)
        self.session.feed("client", client)

    def _stop_recording(self, exc: OSError) -> None:
        """The disk is full (or failing): keep what was synced, go on analysing."""
        self.recording_error = exc.strerror or str(exc)
        kept = self.recorder.synced_s
        self.meta.notes.append(f"recording stopped after {kept:.1f} s: {self.recording_error}; "
                               "the analysis covers the whole call")
        log.error("recording stopped", extra={"uid": self.uid, "reason": self.recording_error,
                                              "kept_s": round(kept, 1)})
        self.recorder.abandon()

    def _finalize(self) -> None:
        try:
            self.recorder.close()
        except OSError as exc:
            log.error("recording close failed", extra={"uid": self.uid, "reason": str(exc)})
        frames = {p: self.received[p] * 50 // PIPELINE_RATE for p in PARTIES}
        self.meta.extra["capture"] = {"frames": frames, "padded_frames": {
            p: self.padded[p] * 50 // PIPELINE_RATE for p in self.parties},
            "max_queue": self.max_queue}
        recording = self.wav_path
        try:
            result = self.session.finish()
        except Exception:   # noqa: BLE001
            log.exception("call analysis failed", extra={"uid": self.uid})
            result = {"call": asdict(self.meta), "error": "analysis failed; the recording is kept"}
        if self.settings.recording.format == "flac" and self.recorder.data_bytes:
            try:
                recording = wav_to_flac(self.wav_path)
            except Exception as exc:   # noqa: BLE001 - the WAV is kept and still valid
                log.error("flac encoding failed", extra={"uid": self.uid, "reason": str(exc)})
        result["call"]["extra"]["recording"] = recording.name
        result["call"]["extra"]["uid"] = self.uid
        self.result = result
        try:
            sealing.write_json(self.result_path, result)
            self.wav_path = recording
            self.write_meta("done")
        except OSError as exc:
            log.error("call result not written", extra={"uid": self.uid, "reason": str(exc)})
        try:
            # [privacy] encrypt, once the call is done: a crash before leaves a clear, finished
            # recording that the next start seals, never a sealed one that recovery would
            # take for a cut WAV
            sealing.seal_file(recording)
        except (OSError, sealing.SealError) as exc:
            log.error("recording not sealed; sealed at the next start",
                      extra={"uid": self.uid, "reason": str(exc)})
        log.info("call finalized", extra={"call": self.meta.call_id, "uid": self.uid,
                                          "recording": recording.name,
                                          "duration_s": round(self.recorder.duration_s, 2),
                                          "reason": self.meta.extra.get("end_reason")})
        self.done.set()
        if self.on_done is not None:
            try:
                self.on_done(result)
            except Exception:   # noqa: BLE001
                log.exception("call done hook failed", extra={"uid": self.uid})
