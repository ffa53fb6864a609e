"""What of a call is sent to the recognizer: each party's speech segments, joined into pieces.

A party's consecutive segments with pauses under ``join_s`` are decoded together (up to
``max_segment_s``, the real pause audio included): Whisper reads a sentence split at every
breath much worse than the whole sentence. A longer stretch is cut at its quietest frame,
because Whisper reads only the first 30 s of its input. Pieces too quiet or too short to
carry a word are not decoded (they stay in the metrics as speech or backchannels).

The cutter runs where the call is analysed (a capture worker, or the daemon for files); it
hands each piece, with its audio, to a sink: the box's one recognition service, in this
process or over a local socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from ..config import AsrSettings
from ..core.frames import FRAME_S, SAMPLES_PER_FRAME


@dataclass(frozen=True)
class PieceSpec:
    """One piece of one party's speech, in 20 ms frames from the call's start."""

    party: str
    start: int
    end: int

    def as_list(self) -> list[object]:
        return [self.party, self.start, self.end]

    @classmethod
    def from_list(cls, raw: object) -> "PieceSpec":
        """From the call JSON (``[party, start, end]``); ValueError when malformed."""
        if (not isinstance(raw, (list, tuple)) or len(raw) != 3 or raw[0] not in ("agent", "client")
                or not all(isinstance(v, int) for v in raw[1:]) or not 0 <= raw[1] < raw[2]):
            raise ValueError(f"not a speech piece: {raw!r:.80}")
        return cls(str(raw[0]), int(raw[1]), int(raw[2]))

    @property
    def seconds(self) -> float:
        return (self.end - self.start) * FRAME_S


class PieceSink(Protocol):
    """Where a call's pieces go (the recognition service, here or in the daemon)."""

    def offer(self, ref: str, piece: PieceSpec, pcm: np.ndarray) -> None:
        """One piece's audio (int16, 16 kHz); must not block for long."""


@dataclass
class _Chunk:
    start: int
    end: int
    pcm: list[np.ndarray]
    levels: list[np.ndarray]


AudioFn = Callable[[str, int, int], tuple[np.ndarray, np.ndarray]]
BarrierFn = Callable[[str, int, int], bool]


class PieceCutter:
    """One call's speech segments in, pieces out to ``sink`` (``ref`` names the call)."""

    def __init__(self, settings: AsrSettings, audio: AudioFn, sink: PieceSink, ref: str,
                 barrier: BarrierFn | None = None) -> None:
        self.audio = audio
        # whether frames [a, b) of a party hold something that is not speech (a tone, music):
        # segments on both sides of it are never decoded together, or its audio would be
        self.barrier = barrier
        self.sink = sink
        self.ref = ref
        self.pieces: list[PieceSpec] = []
        self._open: dict[str, _Chunk] = {}
        self.max_frames = int(settings.max_segment_s / FRAME_S)
        self.join_frames = int(settings.join_s / FRAME_S)
        self.min_frames = max(1, int(settings.min_piece_s / FRAME_S))
        self.min_level = settings.min_level_dbfs

    def add(self, party: str, start: int, end: int) -> None:
        """A closed speech segment of ``party`` (frames); its audio is read at once."""
        chunk = self._open.get(party)
        if (chunk and start - chunk.end <= self.join_frames and end - chunk.start <= self.max_frames
                and not (self.barrier is not None and self.barrier(party, chunk.end, start))):
            for a, b in ((chunk.end, start), (start, end)):
                pcm, lv = self.audio(party, a, b)
                chunk.pcm.append(pcm)
                chunk.levels.append(lv)
            chunk.end = end
            return
        if chunk:
            self._emit(party, chunk)
        pcm, lv = self.audio(party, start, end)
        self._open[party] = _Chunk(start, end, [pcm], [lv])

    def tick(self, frame: int, open_starts: dict[str, int | None]) -> None:
        """The call has reached ``frame`` (``open_starts``: each party's segment in progress):
        send the chunks that no segment can join any more."""
        for party, chunk in list(self._open.items()):
            nxt = open_starts.get(party)
            if (nxt if nxt is not None else frame) - chunk.end > self.join_frames:
                self._emit(party, self._open.pop(party))

    def finish(self) -> list[PieceSpec]:
        """Send what is left; every piece sent for this call, in order of start."""
        for party in list(self._open):
            self._emit(party, self._open.pop(party))
        return sorted(self.pieces, key=lambda p: (p.start, p.party))

    def _emit(self, party: str, chunk: _Chunk) -> None:
        pcm, levels = np.concatenate(chunk.pcm), np.concatenate(chunk.levels)
        for a, b in cut(chunk.start, chunk.end, levels, self.max_frames):
            lv = levels[a - chunk.start: b - chunk.start]
            if b - a < self.min_frames or len(lv) == 0 or float(np.max(lv)) < self.min_level:
                continue            # a breath, a click or an "mm": nothing to read
            piece = PieceSpec(party, a, b)
            self.pieces.append(piece)
            lo, hi = (a - chunk.start) * SAMPLES_PER_FRAME, (b - chunk.start) * SAMPLES_PER_FRAME
            self.sink.offer(self.ref, piece, pcm[lo:hi])


def cut(start: int, end: int, levels: np.ndarray, max_frames: int) -> list[tuple[int, int]]:
    """Split [start, end) into pieces of at most max_frames, each cut at the quietest frame
    of its last quarter. ``levels`` are the frames' dBFS from ``start`` on."""
    seg0, pieces = start, []
    while end - start > max_frames:
        lo, hi = start + max_frames * 3 // 4, start + max_frames
        window = levels[lo - seg0: hi - seg0]
        cut_at = lo + int(np.argmin(window)) if len(window) else hi
        pieces.append((start, cut_at))
        start = cut_at
    pieces.append((start, end))
    return pieces
