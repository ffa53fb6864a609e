"""Calls written before their transcript: the daemon's recognizer completes them.

A call JSON with ``asr.status = pending`` (from a capture worker, the inbox, an upload or a
recovered recording) lists its speech pieces. Adopting it closes the call at the recognizer;
when the transcript is ready the JSON is completed (tags, score) and rewritten, and the
store is told. A daemon that stops with calls pending adopts them again at its next start.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..system import sealing
from .pieces import PieceSpec
from .service import AsrService, Transcript

log = logging.getLogger(__name__)

Complete = Callable[[dict[str, Any], Transcript, int], Any]
LoadAudio = Callable[[list[PieceSpec]], dict[PieceSpec, np.ndarray]]
AudioReader = Callable[[dict[str, Any], Path], LoadAudio]


class PendingCalls:
    def __init__(self, service: AsrService, complete: Complete, audio_reader: AudioReader,
                 on_final: Callable[[Path], object],
                 mute: Callable[[dict[str, Any], Path], object] | None = None) -> None:
        """``complete(result, transcript, failed)`` masks, tags and scores; ``audio_reader(
        result, json_path)`` gives what reads a call's pieces from its recording (keeping
        only what it needs of the call JSON: a backlog of thousands of calls waits in
        memory); ``mute(result, json_path)`` silences what was masked in the recording;
        ``on_final(json_path)`` tells the store."""
        self.mute = mute
        self.service = service
        self.complete = complete
        self.audio_reader = audio_reader
        self.on_final = on_final
        self._adopted: set[str] = set()
        self._lock = threading.Lock()

    def adopt(self, path: Path, result: dict[str, Any]) -> bool:
        """Have the recognizer finish this call (once per call); whether it was new."""
        asr = result.get("asr", {})
        ref = asr.get("ref")
        if not isinstance(ref, str) or not ref:
            ref = f"file:{path}"
        with self._lock:
            if ref in self._adopted:
                return False
            self._adopted.add(ref)
        try:
            pieces = [PieceSpec.from_list(p) for p in asr.get("pieces", [])]
        except ValueError as exc:
            log.error("call pieces unreadable; completed without a transcript",
                      extra={"file": path.name, "reason": str(exc)})
            pieces = []
        try:
            load: LoadAudio | None = self.audio_reader(result, path)
        except Exception as exc:    # noqa: BLE001 - the call is completed all the same
            log.error("call names no readable recording; its pieces fail",
                      extra={"file": path.name, "reason": str(exc)})
            load = None
        self.service.close(ref, pieces, load,
                           lambda transcript, failed: self._finish(path, ref, transcript, failed))
        return True

    def _finish(self, path: Path, ref: str, transcript: Transcript, failed: int) -> None:
        with self._lock:
            self._adopted.discard(ref)
        with sealing.editing(path):     # a reseal of the file waits for this write
            self._write_transcript(path, ref, transcript, failed)

    def _write_transcript(self, path: Path, ref: str, transcript: Transcript, failed: int) -> None:
        try:
            result = sealing.read_json(path)
        except (OSError, ValueError) as exc:
            log.error("pending call vanished before its transcript",
                      extra={"file": str(path), "reason": str(exc)})
            return
        if result.get("asr", {}).get("ref", f"file:{path}") != ref:
            return                  # rewritten meanwhile (analysed again)
        self.complete(result, transcript, failed)
        if self.mute is not None and result.get("redactions"):
            try:
                self.mute(result, path)
            except Exception as exc:    # noqa: BLE001 - the transcript stays masked anyway
                log.error("recording not muted", extra={"file": path.name, "reason": str(exc)})
                result["call"].setdefault("notes", []).append(
                    f"masked speech not muted in the recording: {exc}")
        try:
            sealing.write_json(path, result)
        except OSError as exc:      # stays pending on disk: done again at the next start
            log.error("transcript not written", extra={"file": str(path), "reason": str(exc)})
            return
        log.info("call transcribed", extra={"file": path.name, "pieces": len(transcript),
                                            "failed": failed})
        self.on_final(path)
