"""Recent audio of one party, addressed by absolute 20 ms frame, kept only while needed."""

from __future__ import annotations

import numpy as np

from ..core.frames import PIPELINE_RATE, SAMPLES_PER_FRAME

TRIM_SAMPLES = 10 * PIPELINE_RATE


class AudioWindow:
    """Append PCM as it arrives; slice closed segments out; drop what no segment can need."""

    def __init__(self) -> None:
        self._chunks: list[np.ndarray] = []
        self._first = 0          # absolute sample index of the first kept sample
        self._total = 0          # absolute sample index after the last appended sample

    def append(self, pcm: np.ndarray) -> None:
        if len(pcm):
            self._chunks.append(np.asarray(pcm, dtype=np.int16))
            self._total += len(pcm)

    def slice(self, start_frame: int, end_frame: int) -> np.ndarray:
        """Samples of frames [start_frame, end_frame); missing samples read as silence."""
        a, b = start_frame * SAMPLES_PER_FRAME, end_frame * SAMPLES_PER_FRAME
        if len(self._chunks) > 1:
            self._chunks = [np.concatenate(self._chunks)]
        buf = self._chunks[0] if self._chunks else np.zeros(0, np.int16)
        out = np.zeros(b - a, np.int16)
        lo, hi = max(a, self._first), min(b, self._total)
        if hi > lo:
            out[lo - a: hi - a] = buf[lo - self._first: hi - self._first]
        return out

    def drop_before(self, frame: int) -> None:
        """Forget samples before ``frame``. Whole chunks go at once; inside a chunk (slice()
        merges them) the tail is copied out only once 10 s or more can go, so the cost stays
        linear in the audio."""
        cut = frame * SAMPLES_PER_FRAME
        while self._chunks and self._first + len(self._chunks[0]) <= cut:
            self._first += len(self._chunks.pop(0))
        if self._chunks and cut - self._first >= TRIM_SAMPLES:
            self._chunks[0] = self._chunks[0][cut - self._first:].copy()
            self._first = cut

    @property
    def end(self) -> int:
        """Absolute sample index after the last appended sample."""
        return self._total

    @property
    def kept_samples(self) -> int:
        return self._total - self._first
