"""Streaming DSP of a call: wraps the native detectors with the configured settings."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from ..config import VadSettings
from ..media.frames import PARTIES, PIPELINE_RATE, Party, s_to_frames
from ..native import CallDetector, PartyDetector


def detector_params(vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> dict[str, Any]:
    """Native detector parameters from settings (times converted to 20 ms frames)."""
    return dict(
        sample_rate=sample_rate,
        threshold=vad.threshold,
        level_floor_db=vad.level_floor_dbfs,
        onset_frames=s_to_frames(vad.onset_ms / 1000),
        hangover_frames=int(round(vad.hangover_ms / 20)),
        min_speech_frames=s_to_frames(vad.min_speech_ms / 1000),
        tail_frames=int(round(vad.tail_ms / 20)),
        noise_window_s=vad.noise_window_s,
    )


def make_detector(vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> PartyDetector:
    """A single-party detector (no crosstalk compensation: one channel only)."""
    return PartyDetector(**detector_params(vad, sample_rate))


class CallStream:
    """Both parties of one call through the native CallDetector.

    Each party's PCM may arrive in chunks of any size and at different moments (two RTP
    streams); samples are buffered until both parties have them, then analysed in lockstep,
    so the result never depends on the chunking.
    """

    def __init__(self, vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> None:
        self._detector = CallDetector(leak_margin_db=vad.leak_margin_db,
                                      **detector_params(vad, sample_rate))
        self._pending: dict[Party, list[np.ndarray]] = {p: [] for p in PARTIES}
        self._pending_n: dict[Party, int] = {p: 0 for p in PARTIES}
        self.segments: dict[Party, list[tuple[int, int]]] = {p: [] for p in PARTIES}
        self.levels_db: dict[Party, array] = {p: array("f") for p in PARTIES}
        self.voiced: dict[Party, bytearray] = {p: bytearray() for p in PARTIES}

    @property
    def frames(self) -> int:
        return self._detector.frames_done

    def feed(self, party: Party, pcm: np.ndarray) -> dict[Party, list[tuple[int, int]]]:
        """Add int16 samples of one party; return segments that closed, per party."""
        if len(pcm):
            self._pending[party].append(np.ascontiguousarray(pcm, dtype=np.int16))
            self._pending_n[party] += len(pcm)
        n = min(self._pending_n.values())
        if n == 0:
            return {p: [] for p in PARTIES}
        agent, client = (self._take(p, n) for p in PARTIES)
        self._detector.process(agent, client)
        return self._drain()

    def finish(self) -> dict[Party, list[tuple[int, int]]]:
        """End of call: the party with fewer samples is padded with silence; close segments."""
        n = max(self._pending_n.values())
        if n:
            agent, client = (np.concatenate([self._take(p, self._pending_n[p]),
                                             np.zeros(n - self._pending_n[p], np.int16)])
                             for p in PARTIES)
            self._detector.process(agent, client)
        self._detector.flush()
        return self._drain()

    def _take(self, party: Party, n: int) -> np.ndarray:
        buf = np.concatenate(self._pending[party]) if len(self._pending[party]) > 1 else (
            self._pending[party][0] if self._pending[party] else np.zeros(0, np.int16))
        head, rest = buf[:n], buf[n:]
        self._pending[party] = [rest] if len(rest) else []
        self._pending_n[party] = len(rest)
        return head

    def _drain(self) -> dict[Party, list[tuple[int, int]]]:
        closed = {}
        for party, det in zip(PARTIES, (self._detector.agent, self._detector.client)):
            voiced, levels = det.take_frames()
            self.voiced[party] += voiced
            self.levels_db[party].extend(levels)
            closed[party] = det.take_segments()
            self.segments[party].extend(closed[party])
        return closed
