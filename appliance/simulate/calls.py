"""Two-party calls assembled from single-speaker recordings, with exact ground truth.

A call alternates turns between agent and client, each turn one real utterance. Transitions
are ordinary replies (short gap), dead air (a long gap), or interruptions (the next speaker
starts inside the current utterance, which then stops after a short overlap). Short
backchannels ("ага"-length pieces of speech) are dropped over the other party's speech.
Ground truth comes from the recordings' phone labels, shifted and cut exactly as the audio.

Variants model what a PBX writes: ``clean16`` (16 kHz PCM), ``tel8`` (telephone band,
8 kHz G.711 A-law), ``tel8_snr10`` / ``tel8_snr5`` (the same with line noise per party at
10 or 5 dB SNR over active speech: white, pink, brown, or mains hum over pink), and
``tel8_echo`` (each party's channel also carries the other party 20-30 dB down, 30-150 ms
late: line or acoustic echo, recorder bleed).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr

from .corpus import Utterance

RATE = 16000
BRIDGE_S = 0.3          # pauses shorter than this are part of a speech segment in the truth
VARIANTS = ("clean16", "tel8", "tel8_snr10", "tel8_snr5", "tel8_echo")
NOISES = ("white", "pink", "brown", "hum")


@dataclass
class CallTruth:
    duration: float
    speech: dict[str, list[tuple[float, float]]]
    interruptions: list[tuple[str, float]] = field(default_factory=list)   # (by, at)
    backchannels: list[tuple[str, float]] = field(default_factory=list)    # (party, at)
    dead_air: list[tuple[float, float]] = field(default_factory=list)      # inner, >= 3 s
    utterances: list[tuple[str, str, bool]] = field(default_factory=list)  # (party, id, whole)
    # what else the call carries (simulate/artefacts.py): (kind, party, start, end, digits)
    events: list[tuple[str, str, float, float, str]] = field(default_factory=list)
    holds: list[tuple[str, float, float]] = field(default_factory=list)    # (party, start, end)
    sounds: list[tuple[str, str, float, float]] = field(default_factory=list)  # audible parts
    # digital silence the network put on a party's line (packet loss, DTX without comfort
    # noise): zero samples in any variant, whatever line noise is added before it
    silent: list[tuple[str, float, float]] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "CallTruth":
        d = json.loads(text)
        return cls(d["duration"], {k: [tuple(x) for x in v] for k, v in d["speech"].items()},
                   [tuple(x) for x in d["interruptions"]], [tuple(x) for x in d["backchannels"]],
                   [tuple(x) for x in d["dead_air"]],
                   [tuple(x) for x in d.get("utterances", [])],
                   [tuple(x) for x in d.get("events", [])], [tuple(x) for x in d.get("holds", [])],
                   [tuple(x) for x in d.get("sounds", [])],
                   [tuple(x) for x in d.get("silent", [])])


def fade(x: np.ndarray, ms: float = 15.0) -> np.ndarray:
    """Short fade-in and fade-out, so a cut piece of speech does not click."""
    n = min(len(x) // 2, int(RATE * ms / 1000))
    if n:
        ramp = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x = x.copy()
        x[:n] *= ramp
        x[-n:] *= ramp[::-1]
    return x


def _bridge(intervals: list[tuple[float, float]], gap: float) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for s, e in sorted(intervals):
        if out and s - out[-1][1] < gap:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


def _clip(intervals: Sequence[tuple[float, float]], lo: float, hi: float,
          shift: float) -> list[tuple[float, float]]:
    return [(max(s, lo) - lo + shift, min(e, hi) - lo + shift)
            for s, e in intervals if e > lo and s < hi and min(e, hi) - max(s, lo) > 0.01]


def mutual_silences(speech: dict[str, list[tuple[float, float]]], duration: float,
                    min_s: float = 3.0) -> list[tuple[float, float]]:
    """Inner gaps (after first speech, before last) where nobody speaks for >= min_s."""
    merged = _bridge([iv for ivs in speech.values() for iv in ivs], 0.0)
    return [(a[1], b[0]) for a, b in zip(merged, merged[1:]) if b[0] - a[1] >= min_s]


class Track:
    """One party's channel: pieces of audio placed in time, and where speech is."""

    def __init__(self) -> None:
        self.pieces: list[tuple[int, np.ndarray]] = []
        self.speech: list[tuple[float, float]] = []

    def put(self, at: float, audio: np.ndarray, speech: list[tuple[float, float]]) -> None:
        self.pieces.append((int(round(at * RATE)), audio))
        self.speech.extend(speech)

    def render(self, n: int) -> np.ndarray:
        out = np.zeros(n, np.float32)
        for start, audio in self.pieces:
            end = min(n, start + len(audio))
            out[start:end] += audio[: end - start]
        return out


def build_call(utts: Sequence[Utterance], rng: np.random.Generator, turns: int = 10,
               p_interrupt: float = 0.2, p_backchannel: float = 0.3,
               p_dead_air: float = 0.12) -> tuple[np.ndarray, CallTruth]:
    """Assemble one call: (16 kHz float32 stereo [agent, client], truth)."""
    tracks = {"agent": Track(), "client": Track()}
    interruptions: list[tuple[str, float]] = []
    backchannels: list[tuple[str, float]] = []
    party, other = "agent", "client"
    t = float(rng.uniform(0.3, 1.5))
    ends: list[float] = []
    used: list[tuple[str, str, bool]] = []
    for turn in range(turns):
        u = utts[int(rng.integers(len(utts)))]
        s0, s1 = u.speech[0][0], u.speech[-1][1]
        lo, hi = max(0.0, s0 - 0.05), min(u.duration, s1 + 0.05)
        start_at = t - (s0 - lo)                   # first speech exactly at t
        # Decide how this turn ends before placing it: an interruption cuts it short.
        speech_len = s1 - s0
        kind = "reply"
        if turn < turns - 1:
            r = rng.random()
            if r < p_interrupt and speech_len > 2.5:
                kind = "interrupt"
            elif r < p_interrupt + p_dead_air:
                kind = "dead_air"
        if kind == "interrupt":
            # cut in strictly inside speech that goes on for at least 0.6 s more, after 1 s
            spots = [(a - s0 + t, b - s0 + t) for a, b in u.speech if b - a > 0.9
                     and b - s0 > 1.6]
            if spots:
                a, b = spots[int(rng.integers(len(spots)))]
                next_t = float(rng.uniform(max(a, t + 1.0), b - 0.6))
                cut = next_t + float(rng.uniform(0.6, 1.2))   # the interrupted party gives up
                hi = min(hi, lo + (cut - start_at))
            else:
                kind = "reply"
        audio = fade(u.audio[int(lo * RATE): int(hi * RATE)])
        speech = _clip(u.speech, lo, hi, start_at)
        tracks[party].put(start_at, audio, speech)
        used.append((party, u.uid, kind != "interrupt"))      # an interrupted turn is cut
        end = speech[-1][1]
        ends.append(end)
        # A backchannel from the other party over the middle of this turn.
        if kind != "interrupt" and speech_len > 3.5 and rng.random() < p_backchannel:
            donor = utts[int(rng.integers(len(utts)))]
            long_runs = [iv for iv in donor.speech if iv[1] - iv[0] > 0.6]
            if long_runs:
                a, b = long_runs[int(rng.integers(len(long_runs)))]
                length = float(rng.uniform(0.25, 0.45))
                cs = float(rng.uniform(a, b - length))
                at = float(rng.uniform(t + 1.5, end - 1.5))
                piece = fade(donor.audio[int(cs * RATE): int((cs + length) * RATE)], 25.0)
                tracks[other].put(at, piece, [(at + 0.01, at + length - 0.01)])
                backchannels.append((other, round(at, 3)))
        if kind == "interrupt":
            interruptions.append((other, round(next_t, 3)))
            t = next_t
        elif kind == "dead_air":
            t = end + float(rng.uniform(3.6, 7.0))
        else:
            t = end + float(rng.uniform(0.25, 1.2))
        party, other = other, party
    duration = max(ends) + float(rng.uniform(0.5, 2.0))
    n = int(duration * RATE)
    stereo = np.stack([tracks["agent"].render(n), tracks["client"].render(n)], axis=1)
    speech = {p: _bridge(tr.speech, BRIDGE_S) for p, tr in tracks.items()}
    truth = CallTruth(round(n / RATE, 3), speech, interruptions, backchannels,
                      mutual_silences(speech, n / RATE), used)
    return stereo, truth


def _active_power(x: np.ndarray, speech: list[tuple[float, float]]) -> float:
    idx = np.zeros(len(x), bool)
    for s, e in speech:
        idx[int(s * RATE): int(e * RATE)] = True
    return float(np.mean(x[idx] ** 2)) if idx.any() else float(np.mean(x ** 2) + 1e-12)


def make_noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-power noise of a colour: white, pink (1/f), brown (1/f^2), hum (50 Hz + pink)."""
    if kind == "hum":
        t = np.arange(n) / RATE
        f0 = 50.0 * (1 + rng.uniform(-0.002, 0.002))
        hum = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3, 5, 7))
        x = hum / np.sqrt(np.mean(hum ** 2)) + 0.5 * make_noise("pink", n, rng)
    else:
        spec = np.fft.rfft(rng.standard_normal(n))
        f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 20.0)
        spec *= {"white": 1.0, "pink": f ** -0.5, "brown": 1.0 / f}[kind]
        x = np.fft.irfft(spec, n)
    return (x / np.sqrt(np.mean(x ** 2))).astype(np.float32)


def telephone_band(x: np.ndarray) -> np.ndarray:
    """300-3400 Hz channel filter (smooth FFT-domain response), then 8 kHz; mono or stereo."""
    spec = np.fft.rfft(x, axis=0)
    f = np.fft.rfftfreq(len(x), 1 / RATE)
    f = f[:, None] if x.ndim == 2 else f
    hp = 1.0 / np.sqrt(1.0 + (300.0 / np.maximum(f, 1.0)) ** 8)
    lp = 1.0 / np.sqrt(1.0 + (f / 3400.0) ** 16)
    y = np.fft.irfft(spec * hp * lp, len(x), axis=0).astype(np.float32)
    return soxr.resample(y, RATE, 8000)


def degrade(stereo: np.ndarray, truth: CallTruth, variant: str,
            rng: np.random.Generator) -> tuple[np.ndarray, int, str, dict[str, str]]:
    """Turn a clean call into a variant: (audio, rate, soundfile subtype, noise per party)."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; one of {VARIANTS}")
    x = stereo.copy()
    noises: dict[str, str] = {}
    for ch, party in enumerate(("agent", "client")):
        gain_db = float(rng.uniform(-8.0, 4.0))            # lines differ in level
        x[:, ch] *= 10 ** (gain_db / 20)
        if variant.startswith("tel8_snr"):
            snr = float(variant.removeprefix("tel8_snr"))
            kind = NOISES[int(rng.integers(len(NOISES)))]
            noises[party] = kind
            p = _active_power(x[:, ch], truth.speech[party])
            x[:, ch] += make_noise(kind, len(x), rng) * np.sqrt(p / 10 ** (snr / 10))
    if variant == "tel8_echo":
        clean = x.copy()
        for ch in (0, 1):
            delay = int(RATE * float(rng.uniform(0.03, 0.15)))
            gain = 10 ** (float(rng.uniform(-30.0, -20.0)) / 20)
            x[delay:, ch] += gain * clean[: len(x) - delay, 1 - ch]
            noises["agent" if ch == 0 else "client"] = "echo of the other party"
    peak = float(np.max(np.abs(x))) or 1.0
    if peak > 0.99:
        x *= 0.99 / peak
    if variant == "clean16":
        return digital_silence(x, RATE, truth), RATE, "PCM_16", noises
    return digital_silence(telephone_band(x), 8000, truth), 8000, "ALAW", noises


def digital_silence(x: np.ndarray, rate: int, truth: CallTruth) -> np.ndarray:
    """Zero the truth's digital silence (stereo [agent, client] at ``rate``), in place."""
    for party, s, e in truth.silent:
        x[int(s * rate): int(e * rate), 0 if party == "agent" else 1] = 0.0
    return x


def write_call(path: Path, audio: np.ndarray, rate: int, subtype: str) -> None:
    """Write a stereo call recording as the PBX would (WAV, given subtype)."""
    sf.write(str(path), audio, rate, subtype=subtype, format="WAV")
