"""Calls that carry what real calls carry, with exact truth: ringback before the answer, a
hold with music on the agent's channel, the client keying digits, comfort noise on a silent
line and packet-loss dropouts; and calls that are only that (an abandoned hold, a busy
number, a special information tone, a fax, silence).

A call is a sequence of blocks on one timeline: ringback, conversation (``build_call``),
hold, conversation, DTMF, conversation. A hold follows an agent's turn ("one moment, I'll
check") and the agent speaks first after it. The truth adds ``events`` (kind, party, start,
end, digits) and ``holds`` (party, start, end) to the speech of ``build_call``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from . import signals
from .calls import RATE, CallTruth, build_call, digital_silence, mutual_silences
from .corpus import Utterance

SPEECH_DB = -17.5          # active speech level of build_call's calls (dBFS RMS)
SPECIAL = ("abandoned_hold", "busy", "sit", "fax", "silence")


class Timeline:
    """Both parties' audio placed block after block, with the truth gathered on the way."""

    def __init__(self) -> None:
        self.parts: list[tuple[int, int, np.ndarray]] = []     # (channel, start sample, audio)
        self.speech: dict[str, list[tuple[float, float]]] = {"agent": [], "client": []}
        self.events: list[tuple[str, str, float, float, str]] = []
        self.holds: list[tuple[str, float, float]] = []
        self.sounds: list[tuple[str, str, float, float]] = []
        self.interruptions: list[tuple[str, float]] = []
        self.backchannels: list[tuple[str, float]] = []
        self.utterances: list[tuple[str, str, bool]] = []
        self.t = 0.0

    def put(self, party: str, at: float, audio: np.ndarray) -> None:
        self.parts.append((0 if party == "agent" else 1, int(round(at * RATE)), audio))

    def conversation(self, stereo: np.ndarray, truth: CallTruth) -> None:
        """A build_call call whose first speech starts at the current time."""
        first = min(iv[0] for ivs in truth.speech.values() for iv in ivs)
        shift = self.t - first
        lead = int(first * RATE)
        self.put("agent", self.t, stereo[lead:, 0])
        self.put("client", self.t, stereo[lead:, 1])
        for p in ("agent", "client"):
            self.speech[p] += [(s + shift, e + shift) for s, e in truth.speech[p]]
        self.interruptions += [(p, round(a + shift, 3)) for p, a in truth.interruptions]
        self.backchannels += [(p, round(a + shift, 3)) for p, a in truth.backchannels]
        self.utterances += truth.utterances
        self.t = max(e for ivs in self.speech.values() for _, e in ivs)

    def sound(self, party: str, kind: str, sound: signals.Sound, digits: str = "") -> None:
        """A tone sequence at the current time: one event from its first to its last sound."""
        self.put(party, self.t, sound.audio)
        self.events.append((kind, party, round(self.t + sound.on[0][0], 3),
                            round(self.t + sound.on[-1][1], 3), digits))
        self.sounds += [(kind, party, round(self.t + s, 3), round(self.t + e, 3))
                        for s, e in sound.on]
        self.t += sound.on[-1][1]

    def gap(self, rng: np.random.Generator, lo: float, hi: float) -> None:
        self.t += float(rng.uniform(lo, hi))

    def render(self, tail: float) -> tuple[np.ndarray, CallTruth]:
        n = int((self.t + tail) * RATE)
        out = np.zeros((n, 2), np.float32)
        for ch, start, audio in self.parts:
            end = min(n, start + len(audio))
            out[start:end, ch] += audio[: end - start]
        duration = round(n / RATE, 3)
        truth = CallTruth(duration, self.speech, self.interruptions, self.backchannels,
                          mutual_silences(self.speech, n / RATE), self.utterances,
                          events=sorted(self.events, key=lambda e: e[2]),
                          holds=self.holds, sounds=sorted(self.sounds, key=lambda x: x[2]))
        # inner dead air never spans a hold: a hold is not silence
        truth.dead_air = [(s, e) for s, e in truth.dead_air
                          if not any(hs < e and s < he for _, hs, he in self.holds)]
        return out, truth


def _ringback(tl: Timeline, rng: np.random.Generator) -> None:
    country = signals.COUNTRIES[int(rng.integers(len(signals.COUNTRIES)))]
    freqs, cadence = signals.PROGRESS[country]["ringback"]
    period = sum(cadence)
    cycles = int(rng.integers(1, 4))
    seconds = cycles * period - cadence[-1] + 0.01
    tl.sound("client", "ringback", signals.cadenced(
        freqs, cadence, seconds, SPEECH_DB + float(rng.uniform(-12, 0)), rng))


def _hold(tl: Timeline, rng: np.random.Generator, kinds: Sequence[str],
          seconds: float | None = None) -> None:
    seconds = float(rng.uniform(15.0, 35.0)) if seconds is None else seconds
    kind = kinds[int(rng.integers(len(kinds)))]
    x = signals.music(kind, seconds, rng, SPEECH_DB + float(rng.uniform(-10.0, 2.0)))
    tl.put("agent", tl.t, x)
    tl.events.append(("music", "agent", round(tl.t, 3), round(tl.t + seconds, 3), ""))
    tl.sounds.append(("music", "agent", round(tl.t, 3), round(tl.t + seconds, 3)))
    tl.holds.append(("agent", round(tl.t, 3), round(tl.t + seconds, 3)))
    tl.t += seconds


def _digits(rng: np.random.Generator) -> str:
    keys = "0123456789" * 3 + "*#ABCD"
    return "".join(keys[int(rng.integers(len(keys)))] for _ in range(int(rng.integers(4, 13))))


def _line(stereo: np.ndarray, truth: CallTruth, rng: np.random.Generator) -> np.ndarray:
    """The client's line: background noise under everything, which in the client's silences
    the far end's DTX replaces by comfort noise (a spectrally smoothed copy at about the same
    level, its level sent in 1 dB steps) or by digital silence (a receiver without comfort
    noise); and packet-loss dropouts on both channels. Digital silence goes into
    ``truth.silent``."""
    x = stereo.copy()
    n = len(x)
    quiet = np.ones(n, bool)                 # the client's line is idle here
    for s, e in truth.speech["client"]:
        quiet[max(0, int((s - 0.3) * RATE)): int((e + 0.3) * RATE)] = False
    for _, party, s, e, _ in truth.events:
        if party == "client":
            quiet[max(0, int((s - 0.3) * RATE)): int((e + 0.3) * RATE)] = False
    level = float(rng.uniform(-62.0, -50.0))
    background = signals.make_background(n, rng, level)
    cn = signals.comfort_noise(n, rng, level)
    x[:, 1] += np.where(quiet, cn, background).astype(np.float32)
    # DTX stretches without comfort noise, and packet loss
    i = 0
    while i < n:
        length = int(rng.uniform(1.0, 6.0) * RATE)
        if rng.random() < 0.3:
            edges = np.flatnonzero(np.diff(np.concatenate([[0], quiet[i:i + length], [0]]).astype(np.int8)))
            for a, b in zip(edges[::2], edges[1::2]):
                truth.silent.append(("client", round((i + a) / RATE, 4), round((i + b) / RATE, 4)))
        i += length
    for party in ("agent", "client"):
        truth.silent += [(party, round(s, 4), round(e, 4)) for s, e in signals.dropouts(n / RATE, rng)]
    truth.silent.sort(key=lambda x: x[1])
    return digital_silence(x, RATE, truth)


def build_artefact_call(utts: Sequence[Utterance], rng: np.random.Generator,
                        music_kinds: Sequence[str] | None = None
                        ) -> tuple[np.ndarray, CallTruth]:
    """A conversation with ringback (two calls in three), a hold with music and the client
    keying digits, in random order, and line artefacts: (16 kHz stereo, truth)."""
    kinds = list(music_kinds) if music_kinds else signals.music_kinds()
    tl = Timeline()
    tl.gap(rng, 0.2, 1.0)
    if rng.random() < 0.67:
        _ringback(tl, rng)
        tl.gap(rng, 0.3, 1.5)
    order = ["hold", "dtmf"] if rng.random() < 0.5 else ["dtmf", "hold"]
    tl.conversation(*build_call(utts, rng, turns=int(rng.choice([3, 5]))))   # ends with the agent
    for block in order:
        tl.gap(rng, 0.4, 1.5)
        if block == "hold":
            _hold(tl, rng, kinds)
        else:
            digits = _digits(rng)
            tl.sound("client", "dtmf", signals.dtmf(digits, rng), digits)
        tl.gap(rng, 0.4, 1.5)
        last = block == order[-1]
        tl.conversation(*build_call(utts, rng, turns=int(rng.choice([4, 6])) if last else 3))
    stereo, truth = tl.render(float(rng.uniform(0.5, 2.0)))
    return _line(stereo, truth, rng), truth


def build_special_call(kind: str, rng: np.random.Generator,
                       music_kinds: Sequence[str] | None = None) -> tuple[np.ndarray, CallTruth]:
    """A call without a conversation: an ``abandoned_hold`` (the client waits on music and
    hangs up), a ``busy`` number or a ``sit`` after ringback, a ``fax`` answering, or
    ``silence``."""
    tl = Timeline()
    tl.gap(rng, 0.3, 1.0)
    if kind == "abandoned_hold":
        _hold(tl, rng, list(music_kinds) if music_kinds else signals.music_kinds(),
              float(rng.uniform(30.0, 70.0)))
    elif kind in ("busy", "sit"):
        _ringback(tl, rng)
        tl.gap(rng, 0.2, 0.8)
        if kind == "busy":
            country = signals.COUNTRIES[int(rng.integers(len(signals.COUNTRIES)))]
            freqs, cadence = signals.PROGRESS[country]["busy"]
            tl.sound("client", "busy", signals.cadenced(freqs, cadence, float(rng.uniform(4, 8)),
                                                        SPEECH_DB - 6, rng))
        else:
            tl.sound("client", "sit", signals.sit(rng, SPEECH_DB - 3, int(rng.integers(2, 4))))
    elif kind == "fax":
        if rng.random() < 0.5:          # the agent called a fax machine: it answers
            _ringback(tl, rng)
            tl.gap(rng, 0.2, 0.8)
            tl.sound("client", "fax", signals.fax_ced(rng))
        else:                           # a fax machine called the agent
            tl.sound("client", "fax", signals.fax_cng(float(rng.uniform(7, 14)), rng))
    elif kind == "silence":
        tl.gap(rng, 20.0, 40.0)
    else:
        raise ValueError(f"unknown special call {kind!r}; one of {SPECIAL}")
    stereo, truth = tl.render(float(rng.uniform(0.5, 2.0)))
    return _line(stereo, truth, rng), truth
