"""Streaming DSP of a call: wraps the native detectors with the configured settings."""

from __future__ import annotations

import logging
from array import array
from typing import Any

import numpy as np

from ..config import VadSettings
from ..core.frames import PARTIES, PIPELINE_RATE, SAMPLES_PER_FRAME, Party, s_to_frames
from ..core.window import AudioWindow
from ..native import CLS_MUSIC, CLS_SPEECH, CLS_TONE, CallDetector, PartyDetector, Segmenter
from .speech_check import WINDOW, MusicSpeechCheck, SpeechModel, speech_model

log = logging.getLogger(__name__)


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
SEGMENTER_KEYS = ("onset_frames", "hangover_frames", "min_speech_frames", "tail_frames")
OVER_MUSIC_MIN_FRAMES = 15  # speech heard over music lasts 300 ms or more
BREAKS = np.full(4096, 2, np.uint8)     # frames that are no music, for the over-music segmenter
NEAR_MUSIC_FRAMES = 150     # a segment starting this soon after music may be more of it
SPEECH_SHARE_MIN = 0.2      # ... unless Silero hears speech in this share of its frames,
END_FRAMES = 25             # or of its last half second;
GOES_ON_MIN_FRAMES = 30     # a shorter one (a reply of a word) is too short for Silero to judge
MUSIC = bytes([CLS_MUSIC])


def split_music(events: list[tuple[Any, ...]], speech: list[tuple[int, int]]
                ) -> list[tuple[Any, ...]]:
    """Music events with the spans heard as speech over the music taken out of them."""
    out: list[tuple[Any, ...]] = []
    for ev in events:
        if ev[0] != "music":
            out.append(ev)
            continue
        s, e = ev[1], ev[2]
        for a, b in sorted(speech):
            if b <= s or a >= e:
                continue
            if a > s:
                out.append(("music", s, a))
            s = max(s, b)
        if e > s:
            out.append(("music", s, e))
    return out


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
        # speech heard over music by the second opinion (analysis.speech_check), per party
        self.over_music: dict[Party, list[tuple[int, int]]] = {p: [] for p in PARTIES}
        # the detector's segments that Silero took for more of the music before them
        self.music_going_on: dict[Party, list[tuple[int, int]]] = {p: [] for p in PARTIES}
        self._second = vad.music_second_opinion and sample_rate == PIPELINE_RATE
        self._audio = {p: AudioWindow() for p in PARTIES} if self._second else {}
        self._checks: dict[Party, MusicSpeechCheck] = {}
        self._failed = False
        self._kept_from: dict[Party, int] = {p: 0 for p in PARTIES}
        params = detector_params(vad, sample_rate)
        over = {k: params[k] for k in SEGMENTER_KEYS}
        # a word at least: a network's blip on music is shorter
        over["min_speech_frames"] = max(over["min_speech_frames"], OVER_MUSIC_MIN_FRAMES)
        self._over_seg = {p: Segmenter(**over) for p in PARTIES} if self._second else {}

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
        """Start frame of the party's segment in progress (the detector's own or speech heard
        over music), or None."""
        det = self._detector.agent if party == "agent" else self._detector.client
        starts = [det.open_segment_start,
                  self._over_seg[party].open_segment_start if self._second else None]
        return min((s for s in starts if s is not None), default=None)

    def feed(self, party: Party, pcm: np.ndarray) -> dict[Party, list[tuple[int, int]]]:
        """Add int16 samples of one party; return segments that closed, per party."""
        if len(pcm):
            self._pending[party].append(np.ascontiguousarray(pcm, dtype=np.int16))
            self._pending_n[party] += len(pcm)
        n = min(self._pending_n.values())
        if n == 0:
            return {p: [] for p in PARTIES}
        agent, client = (self._take(p, n) for p in PARTIES)
        self._process(agent, client)
        return self._drain()

    def _process(self, agent: np.ndarray, client: np.ndarray) -> None:
        if self._second:
            self._audio["agent"].append(agent)
            self._audio["client"].append(client)
        self._detector.process(agent, client)

    def finish(self) -> dict[Party, list[tuple[int, int]]]:
        """End of call: the party with fewer samples is padded with silence; close segments."""
        n = max(self._pending_n.values())
        if n:
            short = {p: n - self._pending_n[p] for p in PARTIES}
            agent, client = (np.concatenate([self._take(p, self._pending_n[p]),
                                             np.zeros(short[p], np.int16)])
                             for p in PARTIES)
            self._process(agent, client)
        self._detector.flush()
        closed = self._drain(final=True)
        for p in PARTIES:
            self.events[p] = split_music(self.events[p], self.over_music[p])
        return closed

    def _take(self, party: Party, n: int) -> np.ndarray:
        buf = np.concatenate(self._pending[party]) if len(self._pending[party]) > 1 else (
            self._pending[party][0] if self._pending[party] else np.zeros(0, np.int16))
        head, rest = buf[:n], buf[n:]
        self._pending[party] = [rest] if len(rest) else []
        self._pending_n[party] = len(rest)
        return head

    def _drain(self, final: bool = False) -> dict[Party, list[tuple[int, int]]]:
        dets = dict(zip(PARTIES, (self._detector.agent, self._detector.client)))
        over: dict[Party, list[tuple[int, int]]] = {p: [] for p in PARTIES}
        for party, det in dets.items():
            _, levels = det.take_frames()
            self.levels_db[party].extend(levels)
            first = len(self.classes[party])
            self.classes[party].extend(det.take_classes())
            self.events[party].extend(det.take_events())
            if self._second:
                over[party] = self._speech_over_music(party, first, final)
        closed: dict[Party, list[tuple[int, int]]] = {}
        for party, det in dets.items():
            other: Party = "client" if party == "agent" else "agent"
            heard = [seg for seg in over[party] if not self._is_echo(seg, party, other)]
            for a, b in heard:          # speech now, and no longer part of the music
                self.over_music[party].append((a, b))
                for f in range(a, b):
                    if self.classes[party][f] == CLS_MUSIC:
                        self.classes[party][f] = CLS_SPEECH
            # after the speech heard over music is speech again (whether the two closed in
            # one drain or in two must not change what is near music)
            mine = [seg for seg in det.take_segments() if not self._is_echo(seg, party, other)]
            if self._second and mine:
                mine = self._music_goes_on(party, mine)
            # the two never overlap (one has only music frames, the other none)
            closed[party] = sorted(mine + heard)
            self.segments[party].extend(closed[party])
            if heard:
                self.segments[party].sort()
            if self._second:
                self._trim(party)
        return closed

    def _speech_over_music(self, party: Party, first: int, final: bool) -> list[tuple[int, int]]:
        """Segments of speech heard by the second opinion in what the detector took for music,
        closed with the frames decided from ``first`` on. Its segmenter sees only music
        frames: any other frame is a break, so its segments never reach into the detector's."""
        decided = len(self.classes[party])
        new = self.classes[party][first:]
        seg = self._over_seg[party]
        check = self._checks.get(party)
        if (CLS_MUSIC not in new and seg.open_segment_start is None
                and (check is None or check.oldest_needed is None)):
            # no music and nothing in progress (most of a call): every frame is a break
            seg.push_many(BREAKS[:len(new)] if len(new) <= len(BREAKS)
                          else np.full(len(new), 2, np.uint8))
            return []
        music = np.frombuffer(bytes(new), np.uint8) == CLS_MUSIC
        check = self._check(party, bool(music.any()))
        heard = np.zeros(len(music), bool)
        if check is not None and len(music):
            # the audio this drain may read, in one piece: from where a stretch in progress
            # stands (or half a second before the first new frame) to the last window a
            # decided frame needs, and the windows after it read ahead if they are here
            lo = check.start_frame(first) * SAMPLES_PER_FRAME
            if check.oldest_needed is not None:
                lo = min(lo, check.oldest_needed)
            f0 = lo // SAMPLES_PER_FRAME
            hi = decided * SAMPLES_PER_FRAME + WINDOW
            available = min(self._audio[party].end, hi + MusicSpeechCheck.READ_AHEAD * WINDOW)
            buf = self._audio[party].slice(f0, -(-max(hi, available) // SAMPLES_PER_FRAME))
            base = f0 * SAMPLES_PER_FRAME
            try:
                heard = check.frames(music, first, lambda a, b: buf[a - base: b - base],
                                     available)
            except Exception as exc:    # noqa: BLE001 - the call goes on with the detector alone
                self._give_up(party, exc)
                heard = np.zeros(len(music), bool)
        seg.push_many(np.where(music, heard, 2).astype(np.uint8))
        if final:
            seg.flush()
        return seg.take_segments()

    def _give_up(self, party: Party, exc: Exception) -> None:
        log.error("second opinion on music failed; this call goes on without it",
                  extra={"party": party, "reason": repr(exc)})
        self._failed = True
        self._checks.clear()        # no stretch in progress holds audio or the slow path

    def _near_music(self, party: Party, frame: int) -> bool:
        """Whether the party had music in the NEAR_MUSIC_FRAMES before ``frame``."""
        return self.classes[party].rfind(MUSIC, max(0, frame - NEAR_MUSIC_FRAMES), frame) >= 0

    def _music_goes_on(self, party: Party, segs: list[tuple[int, int]]
                       ) -> list[tuple[int, int]]:
        """The detector's segments, less those that are music going on.

        In line noise the quiet parts of hold music lose their notes and beat, and their
        sound reads as speech: the hold ends early and the music goes to the recognizer.
        A segment that starts within 3 s of the party's music is asked of Silero, which
        tells a voice from music in noise; where it hears speech in under a fifth of the
        segment's frames, and of its last half second, the frames are music (and join the
        hold). A return from hold is speech to Silero, so it stays."""
        kept = []
        for a, b in segs:
            # only then the model: a process that never meets music never loads it
            model = None if (self._failed or b - a < GOES_ON_MIN_FRAMES
                             or not self._near_music(party, a)) else speech_model()
            if model is None:
                kept.append((a, b))
                continue
            try:
                heard = self._heard(party, model, a, b)
            except Exception as exc:    # noqa: BLE001 - the call goes on with the detector alone
                self._give_up(party, exc)
                heard = np.ones(b - a, bool)
            # the segment's end counts on its own: a short reply after the hold often shares
            # a segment with the music's last notes, which outweigh it in the whole
            if (heard.mean() >= SPEECH_SHARE_MIN
                    or heard[-END_FRAMES:].mean() >= SPEECH_SHARE_MIN):
                kept.append((a, b))
                continue
            self.classes[party][a:b] = MUSIC * (b - a)
            self.events[party].append(("music", a, b))
            self.music_going_on[party].append((a, b))
        return kept

    def _heard(self, party: Party, model: SpeechModel, a: int, b: int) -> np.ndarray:
        """Whether Silero hears speech in each of frames [a, b): the frames read as one
        stretch of their own (from half a second before ``a``, a fresh state)."""
        check = MusicSpeechCheck(model, SAMPLES_PER_FRAME)
        lo = check.start_frame(a)
        buf = self._audio[party].slice(lo, -(-(b * SAMPLES_PER_FRAME + WINDOW) // SAMPLES_PER_FRAME))
        base = lo * SAMPLES_PER_FRAME
        return check.frames(np.ones(b - a, bool), a, lambda x, y: buf[x - base: y - base])

    def _trim(self, party: Party) -> None:
        """Forget audio no later reading needs, a second at a time (it costs per call).
        Kept: half a second before the next decided frame (a stretch of music starting
        there reads it), what a stretch of music in progress still needs, and a segment in
        progress that may be music going on."""
        keep = len(self.classes[party]) - MusicSpeechCheck.LEAD_FRAMES
        check = self._checks.get(party)
        if check is not None and check.oldest_needed is not None:
            keep = min(keep, check.oldest_needed // SAMPLES_PER_FRAME)
        det = self._detector.agent if party == "agent" else self._detector.client
        start = det.open_segment_start
        if start is not None and self._near_music(party, start):
            keep = min(keep, start - MusicSpeechCheck.LEAD_FRAMES)
        if keep - self._kept_from[party] >= 50:
            self._audio[party].drop_before(keep)
            self._kept_from[party] = keep

    def _check(self, party: Party, music: bool) -> MusicSpeechCheck | None:
        """The party's second opinion; the model loads at the first music a process meets."""
        if self._failed:
            return None
        check = self._checks.get(party)
        if check is None and music:
            model = speech_model()
            if model is not None:
                check = self._checks[party] = MusicSpeechCheck(model, SAMPLES_PER_FRAME)
        return check

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
