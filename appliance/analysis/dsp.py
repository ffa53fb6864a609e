"""Per-party streaming DSP: wraps the native voice detector with the configured settings."""

from __future__ import annotations

from array import array

import numpy as np

from ..config import VadSettings
from ..media.frames import PIPELINE_RATE, s_to_frames
from ..native import PartyDetector


def make_detector(vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> PartyDetector:
    """A native detector configured from settings (times converted to 20 ms frames)."""
    return PartyDetector(
        sample_rate=sample_rate,
        threshold=vad.threshold,
        level_floor_db=vad.level_floor_dbfs,
        onset_frames=s_to_frames(vad.onset_ms / 1000),
        hangover_frames=int(round(vad.hangover_ms / 20)),
        min_speech_frames=s_to_frames(vad.min_speech_ms / 1000),
        tail_frames=int(round(vad.tail_ms / 20)),
        noise_window_s=vad.noise_window_s,
    )


class PartyStream:
    """One party of one call: feeds PCM to the detector and keeps its segments and levels."""

    def __init__(self, vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> None:
        self._detector = make_detector(vad, sample_rate)
        self.segments: list[tuple[int, int]] = []
        self.levels_db = array("f")
        self.voiced = bytearray()

    @property
    def frames(self) -> int:
        return self._detector.frames_done

    def feed(self, pcm: np.ndarray) -> list[tuple[int, int]]:
        """Consume int16 samples; return the segments that closed during this chunk."""
        self._detector.process(np.ascontiguousarray(pcm, dtype=np.int16))
        return self._drain()

    def finish(self) -> list[tuple[int, int]]:
        """End of the call: close the open segment; return what closed."""
        self._detector.flush()
        return self._drain()

    def _drain(self) -> list[tuple[int, int]]:
        voiced, levels = self._detector.take_frames()
        self.voiced += voiced
        self.levels_db.extend(levels)
        closed = self._detector.take_segments()
        self.segments.extend(closed)
        return closed
