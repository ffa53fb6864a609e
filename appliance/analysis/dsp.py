"""Streaming DSP of a call: wraps the native detectors with the configured settings."""

from __future__ import annotations

from array import array
from typing import Any

import numpy as np

from ..config import VadSettings
from ..core.frames import PARTIES, PIPELINE_RATE, Party, s_to_frames
from ..native import CLS_MUSIC, CLS_TONE, CallDetector, PartyDetector


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


ECHO_DELAY_FRAMES = 9     # echo arrives up to 180 ms after its source


class CallStream:
    """Both parties of one call through the native CallDetector.

    Each party's PCM may arrive in chunks of any size and at different moments (two RTP
    streams); samples are buffered until both parties have them, then analysed in lockstep,
    so the result never depends on the chunking.
    """

    def __init__(self, vad: VadSettings, sample_rate: int = PIPELINE_RATE) -> None:
        self.echo_below_db = vad.echo_below_db
        self.echoes: dict[Party, int] = {p: 0 for p in PARTIES}
        self._detector = CallDetector(leak_margin_db=vad.leak_margin_db,
                                      **detector_params(vad, sample_rate))
        self._pending: dict[Party, list[np.ndarray]] = {p: [] for p in PARTIES}
        self._pending_n: dict[Party, int] = {p: 0 for p in PARTIES}
        self.segments: dict[Party, list[tuple[int, int]]] = {p: [] for p in PARTIES}
        self.levels_db: dict[Party, array] = {p: array("f") for p in PARTIES}
        # per decided frame: CLS_SILENCE, CLS_SPEECH, CLS_TONE or CLS_MUSIC (native.vad)
        self.classes: dict[Party, bytearray] = {p: bytearray() for p in PARTIES}
        # tones, key presses and music as the detector reports them (frames, end exclusive)
        self.events: dict[Party, list[tuple[Any, ...]]] = {p: [] for p in PARTIES}

    @property
    def frames(self) -> int:
        """Frames analysed so far (levels are known up to here)."""
        return self._detector.frames_done

    @property
    def decided(self) -> int:
        """Frames classified so far: segments can still open at or after this frame only.
        Trails ``frames`` by the detector's look-ahead until the call ends."""
        return min(self._detector.agent.frames_decided, self._detector.client.frames_decided)

    def nonspeech(self, party: Party, start: int, end: int) -> bool:
        """Whether frames [start, end) of a party (decided ones) hold a tone or music."""
        return any(c in (CLS_TONE, CLS_MUSIC) for c in self.classes[party][start:end])

    def open_start(self, party: Party) -> int | None:
        """Start frame of the party's segment in progress, or None."""
        det = self._detector.agent if party == "agent" else self._detector.client
        return det.open_segment_start

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
        dets = dict(zip(PARTIES, (self._detector.agent, self._detector.client)))
        for party, det in dets.items():
            _, levels = det.take_frames()
            self.levels_db[party].extend(levels)
            self.classes[party].extend(det.take_classes())
            self.events[party].extend(det.take_events())
        closed: dict[Party, list[tuple[int, int]]] = {}
        for party, det in dets.items():
            other: Party = "client" if party == "agent" else "agent"
            closed[party] = [seg for seg in det.take_segments() if not self._is_echo(seg, party, other)]
            self.segments[party].extend(closed[party])
        return closed

    def _is_echo(self, seg: tuple[int, int], party: Party, other: Party) -> bool:
        """A segment far below the other party's simultaneous speech is its echo or bleed.

        The CallDetector removes a leak once it has learnt it; this catches the first
        moments of a call, before the other party has spoken enough to learn from. Both
        parties' levels are known up to the segment's end (lockstep), so the decision is
        the same streaming or batch.
        """
        start, end = seg
        if self.echo_below_db <= 0 or end <= start:
            return False
        mine = np.frombuffer(self.levels_db[party], dtype=np.float32)[start:end]
        theirs = np.frombuffer(self.levels_db[other], dtype=np.float32)
        lo = max(0, start - ECHO_DELAY_FRAMES)
        before = np.full(ECHO_DELAY_FRAMES - (start - lo), -120.0, np.float32)  # call start
        window = np.concatenate([before, theirs[lo:end]])
        peak = np.lib.stride_tricks.sliding_window_view(window, ECHO_DELAY_FRAMES + 1).max(axis=1)
        below = np.median(mine - peak)
        if below < -self.echo_below_db:
            self.echoes[party] += 1
            return True
        return False
