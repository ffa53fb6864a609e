"""What real calls carry besides speech, synthesised or read from packages, at 16 kHz.

- call-progress tones of several countries (dial, ringback, busy), with their cadences;
- special information tones (SIT), DTMF key presses, fax calling (CNG) and answer (CED) tones;
- music on hold: synthesised in several styles (sustained chords, plucked arpeggios, a band
  with drums, a lead melody with vibrato over a pad) and real recordings from Debian's
  ``asterisk-moh-opsound-wav`` (CC-BY-SA 3.0, 8 kHz), when installed;
- comfort noise (a silent line's generated noise switching on and off) and packet-loss
  dropouts (stretches of digital silence).

Each generator returns float32 audio and, where it matters, the exact intervals of its sound.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

RATE = 16000
MOH_DIR = Path("/usr/share/asterisk/moh")

# Call-progress plans: frequencies (Hz) and cadence (on, off, on, off, ...) in seconds; an
# empty cadence is continuous. Values from ITU-T E.180 Supplement 2 and national standards.
PROGRESS: dict[str, dict[str, tuple[tuple[float, ...], tuple[float, ...]]]] = {
    "ru": {"dial": ((425,), ()), "ringback": ((425,), (0.8, 3.2)), "busy": ((425,), (0.4, 0.4))},
    "eu": {"dial": ((425,), ()), "ringback": ((425,), (1.0, 4.0)), "busy": ((425,), (0.5, 0.5))},
    "us": {"dial": ((350, 440), ()), "ringback": ((440, 480), (2.0, 4.0)),
           "busy": ((480, 620), (0.5, 0.5))},
    "uk": {"dial": ((350, 440), ()), "ringback": ((400, 450), (0.4, 0.2, 0.4, 2.0)),
           "busy": ((400,), (0.375, 0.375))},
    "fr": {"dial": ((440,), ()), "ringback": ((440,), (1.5, 3.5)), "busy": ((440,), (0.5, 0.5))},
    "jp": {"dial": ((400,), ()), "ringback": ((384, 416), (1.0, 2.0)), "busy": ((400,), (0.5, 0.5))},
}
COUNTRIES = tuple(PROGRESS)
DTMF_ROWS = (697, 770, 852, 941)
DTMF_COLS = (1209, 1336, 1477, 1633)
DTMF_KEYS = ("123A", "456B", "789C", "*0#D")
SIT_PLANS = ((950.0, 1400.0, 1800.0), (913.8, 1370.6, 1776.7), (985.2, 1428.5, 1776.7))
MUSIC_STYLES = ("chords", "arpeggio", "band", "melody")


@dataclass(frozen=True)
class Sound:
    """A generated sound: audio and where it is audible (seconds from its start)."""

    audio: np.ndarray
    on: tuple[tuple[float, float], ...]


def _ramp(x: np.ndarray, ms: float = 5.0) -> np.ndarray:
    n = min(len(x) // 2, int(RATE * ms / 1000))
    if n:
        r = np.linspace(0.0, 1.0, n, dtype=np.float32)
        x[:n] *= r
        x[-n:] *= r[::-1]
    return x


def _tone(freqs: tuple[float, ...], seconds: float, level_db: float,
          rng: np.random.Generator) -> np.ndarray:
    """Sum of sines (each at ``level_db`` dBFS peak-equivalent), with a short ramp."""
    t = np.arange(int(seconds * RATE)) / RATE
    amp = 10 ** (level_db / 20)
    x = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs) * amp
    return _ramp(np.asarray(x, np.float32))


def cadenced(freqs: tuple[float, ...], cadence: tuple[float, ...], seconds: float,
             level_db: float, rng: np.random.Generator) -> Sound:
    """A tone played to a cadence for ``seconds`` (cut at a whole on-period)."""
    out = np.zeros(int(seconds * RATE), np.float32)
    on: list[tuple[float, float]] = []
    if not cadence:
        out[:] = _tone(freqs, seconds, level_db, rng)
        return Sound(out, ((0.0, seconds),))
    t, k = 0.0, 0
    while True:
        length = cadence[k % len(cadence)]
        if k % 2 == 0:
            if t + length > seconds:
                break
            x = _tone(freqs, length, level_db, rng)
            i = int(t * RATE)
            out[i:i + len(x)] = x[: len(out) - i]
            on.append((t, t + length))
        t += length
        k += 1
    return Sound(out, tuple(on))


def progress_tone(country: str, kind: str, seconds: float, level_db: float,
                  rng: np.random.Generator) -> Sound:
    freqs, cadence = PROGRESS[country][kind]
    return cadenced(freqs, cadence, seconds, level_db, rng)


def sit(rng: np.random.Generator, level_db: float = -18.0, repeats: int = 2) -> Sound:
    """Special information tone: three rising segments, then 1 s of silence, repeated."""
    plan = SIT_PLANS[int(rng.integers(len(SIT_PLANS)))]
    parts, on, n = [], [], 0          # n: samples so far, so the truth is sample-exact
    for _ in range(repeats):
        for f in plan:
            x = _tone((f,), float(rng.uniform(0.27, 0.38)), level_db, rng)
            parts.append(x)
            on.append((n / RATE, (n + len(x)) / RATE))
            n += len(x)
        parts.append(np.zeros(RATE, np.float32))
        n += RATE
    return Sound(np.concatenate(parts), tuple(on))


def dtmf(digits: str, rng: np.random.Generator, level_db: float | None = None) -> Sound:
    """Key presses: each 60-150 ms of a row and a column tone (twist up to 4 dB), 60-300 ms
    apart, as phones and IVR users send them."""
    parts, on, n = [], [], 0          # n: samples so far, so the truth is sample-exact
    base = float(rng.uniform(-24.0, -10.0)) if level_db is None else level_db
    for d in digits:
        row = next(i for i, keys in enumerate(DTMF_KEYS) if d in keys)
        col = DTMF_KEYS[row].index(d)
        length = float(rng.uniform(0.06, 0.15))
        twist = float(rng.uniform(-4.0, 4.0))
        x = _tone((DTMF_ROWS[row],), length, base - twist / 2, rng) + \
            _tone((DTMF_COLS[col],), length, base + twist / 2, rng)
        parts.append(x)
        on.append((n / RATE, (n + len(x)) / RATE))
        n += len(x)
        gap = int(float(rng.uniform(0.06, 0.3)) * RATE)
        parts.append(np.zeros(gap, np.float32))
        n += gap
    return Sound(np.concatenate(parts), tuple(on))


def fax_cng(seconds: float, rng: np.random.Generator, level_db: float = -16.0) -> Sound:
    """The calling fax: 1100 Hz, 0.5 s on, 3 s off."""
    return cadenced((1100.0,), (0.5, 3.0), seconds, level_db, rng)


def fax_ced(rng: np.random.Generator, level_db: float = -14.0) -> Sound:
    """The answering fax or modem: 2100 Hz for 2.6-4 s, its phase reversed every 450 ms
    (V.25 with echo-canceller disabling, as modern fax machines send it)."""
    seconds = float(rng.uniform(2.6, 4.0))
    t = np.arange(int(seconds * RATE)) / RATE
    phase = np.pi * (np.floor(t / 0.45) % 2)
    x = np.sin(2 * np.pi * 2100.0 * t + phase) * 10 ** (level_db / 20)
    return Sound(_ramp(x.astype(np.float32)), ((0.0, seconds),))


# --- music --------------------------------------------------------------------------------

def _note_hz(midi: float) -> float:
    return 440.0 * 2 ** ((midi - 69) / 12)


def _harmonic(f0: float, n: int, decay: float, bright: float, vibrato: float = 0.0,
              rng: np.random.Generator | None = None) -> np.ndarray:
    """A note of ``n`` samples with harmonics falling off by ``bright`` per harmonic, an
    exponential ``decay`` (per second; 0 sustains) and optional vibrato (cents)."""
    t = np.arange(n) / RATE
    phase0 = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
    inst = f0 * (1 + (2 ** (vibrato * np.sin(2 * np.pi * 5.5 * t) / 1200) - 1))
    phase = 2 * np.pi * np.cumsum(inst) / RATE + phase0
    x = np.zeros(n)
    k = 1
    while k * f0 < 3800 and k <= 24:
        x += np.sin(k * phase) * bright ** (k - 1)
        k += 1
    env = np.exp(-decay * t) if decay > 0 else np.ones(n)
    attack = min(n, int(0.015 * RATE))
    env[:attack] *= np.linspace(0, 1, attack)
    return (x * env).astype(np.float32)


def _chord_roots(rng: np.random.Generator, count: int) -> list[list[int]]:
    """A pop progression in a random key: triads (MIDI notes) around middle C."""
    key = int(rng.integers(0, 12))
    degrees = [(0, 4, 7), (9, 12, 16), (5, 9, 12), (7, 11, 14), (2, 5, 9), (4, 7, 11)]
    order = [0, 3, 1, 2] if rng.random() < 0.5 else [0, 2, 3, 0]
    return [[48 + key + d for d in degrees[order[i % len(order)]]] for i in range(count)]


def synth_music(style: str, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """Music in one of MUSIC_STYLES, normalised to unit RMS."""
    n = int(seconds * RATE)
    out = np.zeros(n + RATE * 4, np.float32)
    tempo = float(rng.uniform(80, 132))
    beat = 60.0 / tempo
    bar = 4 * beat
    chords = _chord_roots(rng, int(seconds / bar) + 2)

    def put(at: float, x: np.ndarray, gain: float) -> None:
        i = int(at * RATE)
        if i < len(out):
            m = min(len(x), len(out) - i)
            out[i:i + m] += gain * x[:m]

    for b, chord in enumerate(chords):
        t0 = b * bar
        if t0 > seconds:
            break
        if style == "chords":               # sustained pad, slow attack, a chord per bar
            for note in chord:
                put(t0, _harmonic(_note_hz(note), int(bar * RATE * 1.05), 0.15, 0.55,
                                  rng=rng), 0.3)
            put(t0, _harmonic(_note_hz(chord[0] - 12), int(bar * RATE), 0.3, 0.5, rng=rng), 0.4)
        elif style == "arpeggio":           # plucked notes, decaying, eighths
            for k in range(8):
                note = chord[k % 3] + 12 * (k // 3 % 2)
                put(t0 + k * beat / 2, _harmonic(_note_hz(note), int(beat * RATE * 1.5), 3.0,
                                                 0.45, rng=rng), 0.5)
        elif style == "band":               # bass, comping chords, kick, snare and hi-hat
            for k in range(4):
                put(t0 + k * beat, _harmonic(_note_hz(chord[0] - 12), int(beat * RATE), 2.0,
                                             0.6, rng=rng), 0.6)
                for note in chord:
                    put(t0 + k * beat + beat / 2,
                        _harmonic(_note_hz(note + 12), int(beat * RATE / 2), 5.0, 0.5, rng=rng),
                        0.2)
                put(t0 + k * beat, _drum("kick" if k % 2 == 0 else "snare", rng), 0.8)
                put(t0 + k * beat + beat / 2, _drum("hat", rng), 0.3)
        elif style == "melody":             # a lead with vibrato over a soft pad
            for note in chord:
                put(t0, _harmonic(_note_hz(note), int(bar * RATE), 0.2, 0.35, rng=rng), 0.15)
            k = 0.0
            while k < 4:
                length = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
                note = chord[int(rng.integers(3))] + 12 + int(rng.choice([0, 2, -1, 0]))
                put(t0 + k * beat, _harmonic(_note_hz(note), int(length * beat * RATE), 0.8,
                                             0.5, vibrato=float(rng.uniform(15, 40)), rng=rng),
                    0.5)
                k += length
        else:
            raise ValueError(f"unknown music style {style!r}; one of {MUSIC_STYLES}")
    x = out[:n]
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-9)).astype(np.float32)


def _drum(kind: str, rng: np.random.Generator) -> np.ndarray:
    n = int(0.25 * RATE)
    t = np.arange(n) / RATE
    if kind == "kick":
        f = 120 * np.exp(-t * 20) + 45
        return (np.sin(2 * np.pi * np.cumsum(f) / RATE) * np.exp(-t * 12)).astype(np.float32)
    noise = rng.standard_normal(n).astype(np.float32)
    if kind == "hat":
        noise = np.diff(noise, prepend=0.0).astype(np.float32)
        return noise * np.exp(-t * 60).astype(np.float32) * 0.5
    snare = (noise * 0.7 + np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 18)
    return snare.astype(np.float32)


def moh_files() -> list[Path]:
    """Real music-on-hold recordings, when Debian's asterisk-moh-opsound-wav is installed."""
    return sorted(MOH_DIR.glob("*.wav")) if MOH_DIR.is_dir() else []


def real_music(path: Path, seconds: float, rng: np.random.Generator) -> np.ndarray:
    """A random stretch of a recording, at 16 kHz, normalised to unit RMS."""
    info = sf.info(str(path))
    need = int(seconds * info.samplerate) + 1
    start = int(rng.integers(0, max(1, info.frames - need)))
    x, rate = sf.read(str(path), start=start, frames=need, dtype="float32", always_2d=True)
    x = x.mean(axis=1)
    if rate != RATE:
        x = soxr.resample(x, rate, RATE)
    x = np.resize(x, int(seconds * RATE)) if len(x) < int(seconds * RATE) else x[: int(seconds * RATE)]
    return (x / (np.sqrt(np.mean(x ** 2)) + 1e-9)).astype(np.float32)


def music(kind: str, seconds: float, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """Music on hold at ``level_db`` dBFS RMS: a style of MUSIC_STYLES or a real recording
    (``kind`` is a path)."""
    x = real_music(Path(kind), seconds, rng) if kind not in MUSIC_STYLES else \
        synth_music(kind, seconds, rng)
    return _ramp(x * 10 ** (level_db / 20), 30.0)


def music_under(x: np.ndarray, kind: str, below_db: float, rng: np.random.Generator
                ) -> np.ndarray:
    """Background music (a radio in the room) ``below_db`` under the active level of the
    speech ``x`` (16 kHz float32), added to it."""
    rms = float(np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2)))
    m = music(kind, len(x) / RATE + 1.0, rng, -20.0)[:len(x)]
    return (x + m / np.sqrt(np.mean(m ** 2)) * rms * 10 ** (-below_db / 20)).astype(np.float32)


def music_kinds() -> list[str]:
    """Every kind of music the simulator can play: the synthesised styles, then the real
    recordings that are installed."""
    return [*MUSIC_STYLES, *(str(p) for p in moh_files())]


# --- line artefacts ---------------------------------------------------------------------------

def make_background(n: int, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """A line's background noise (room, handset) at ``level_db`` dBFS: noise with a gently
    falling spectrum and a slowly wandering level (+-1.5 dB)."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 50.0)
    spec *= (f / 500.0) ** -0.5
    x = np.fft.irfft(spec, n)
    x /= np.sqrt(np.mean(x ** 2)) + 1e-12
    wander = np.interp(np.arange(n), np.linspace(0, n, 8), rng.uniform(-1.5, 1.5, 8))
    return (x * 10 ** ((level_db + wander) / 20)).astype(np.float32)


def comfort_noise(n: int, rng: np.random.Generator, level_db: float) -> np.ndarray:
    """Comfort noise as a DTX receiver generates it (RFC 3389): smooth-spectrum noise at the
    level each silence-insertion descriptor sends, in whole dB, one every 100-500 ms, near
    ``level_db`` dBFS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.maximum(np.fft.rfftfreq(n, 1 / RATE), 50.0)
    spec *= (f / 500.0) ** -0.4
    x = np.fft.irfft(spec, n)
    x /= np.sqrt(np.mean(x ** 2)) + 1e-12
    env = np.empty(n)
    i = 0
    while i < n:
        step = int(rng.uniform(0.1, 0.5) * RATE)
        env[i:i + step] = 10 ** (round(level_db + rng.uniform(-1.0, 1.0)) / 20)
        i += step
    return (x * env).astype(np.float32)


def dropouts(duration: float, rng: np.random.Generator, per_minute: float = 6.0
             ) -> list[tuple[float, float]]:
    """Packet-loss dropouts: 20-200 ms stretches (1 to 10 lost packets), Poisson in time."""
    out, t = [], 0.0
    while True:
        t += float(rng.exponential(60.0 / per_minute))
        if t >= duration:
            return out
        length = 0.02 * int(rng.integers(1, 11))
        out.append((t, min(duration, t + length)))
        t += length
