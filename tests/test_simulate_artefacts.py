"""The simulator's non-speech artefacts: the audio is where the truth says, and only there."""

import numpy as np
import pytest

from appliance.simulate import signals
from appliance.simulate.artefacts import SPECIAL, build_artefact_call, build_special_call

RATE = signals.RATE


def peak_hz(x: np.ndarray, count: int) -> list[float]:
    """The ``count`` strongest spectral peaks (Hz), lowest first (1 Hz resolution or better)."""
    n = max(len(x), RATE)
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x)), n))
    freqs = np.fft.rfftfreq(n, 1 / RATE)
    found: list[float] = []
    for i in np.argsort(spec)[::-1]:
        if all(abs(freqs[i] - f) > 20 for f in found):
            found.append(float(freqs[i]))
        if len(found) == count:
            break
    return sorted(found)


def rms_db(x: np.ndarray) -> float:
    return 10 * np.log10(float(np.mean(x.astype(np.float64) ** 2)) + 1e-20)


@pytest.mark.parametrize("country", signals.COUNTRIES)
@pytest.mark.parametrize("kind", ["dial", "ringback", "busy"])
def test_progress_tones_sound_at_their_frequencies_in_their_cadence(country, kind):
    rng = np.random.default_rng(3)
    freqs, cadence = signals.PROGRESS[country][kind]
    snd = signals.progress_tone(country, kind, 9.0, -20.0, rng)
    assert snd.on, "no tone at all"
    for s, e in snd.on:
        inside = snd.audio[int(s * RATE) + 160: int(e * RATE) - 160]
        assert rms_db(inside) > -30
        assert peak_hz(inside, len(freqs)) == pytest.approx(sorted(freqs), abs=3)
    if cadence:
        assert snd.on[0][1] - snd.on[0][0] == pytest.approx(cadence[0], abs=1e-3)
        for (_, e), (s, _) in zip(snd.on, snd.on[1:]):
            gap = snd.audio[int(e * RATE) + 16: int(s * RATE) - 16]
            assert len(gap) and np.max(np.abs(gap)) == 0.0


def test_dtmf_keys_are_a_row_and_a_column_tone_where_the_truth_says():
    rng = np.random.default_rng(4)
    digits = "0123456789*#ABCD"
    snd = signals.dtmf(digits, rng)
    assert len(snd.on) == len(digits)
    for d, (s, e) in zip(digits, snd.on):
        assert 0.06 <= e - s <= 0.15
        row = next(i for i, keys in enumerate(signals.DTMF_KEYS) if d in keys)
        col = signals.DTMF_KEYS[row].index(d)
        key = snd.audio[int(s * RATE): int(e * RATE)]
        assert peak_hz(key, 2) == pytest.approx([signals.DTMF_ROWS[row], signals.DTMF_COLS[col]],
                                                abs=12)
    off = np.ones(len(snd.audio), bool)
    for s, e in snd.on:
        off[int(s * RATE): int(e * RATE) + 1] = False
    assert np.max(np.abs(snd.audio[off])) == 0.0


@pytest.mark.parametrize("style", signals.MUSIC_STYLES)
def test_music_styles_are_pitched_and_at_the_level_asked(style):
    rng = np.random.default_rng(5)
    x = signals.music(style, 12.0, rng, -20.0)
    assert len(x) == 12 * RATE
    assert rms_db(x[RATE:-RATE]) == pytest.approx(-20.0, abs=1.5)
    # pitched: most of the power in a second of music sits in a few narrow peaks
    sec = x[4 * RATE: 5 * RATE]
    spec = np.abs(np.fft.rfft(sec * np.hanning(len(sec)))) ** 2
    top = np.sort(spec)[::-1]
    assert top[: len(top) // 50].sum() > 0.6 * spec.sum()


def test_artefact_call_truth(corpus):
    stereo, truth = build_artefact_call(corpus, np.random.default_rng(6),
                                        music_kinds=signals.MUSIC_STYLES)
    assert stereo.shape[1] == 2 and abs(len(stereo) - truth.duration * RATE) <= RATE / 1000
    kinds = {e[0] for e in truth.events}
    assert {"music", "dtmf"} <= kinds
    assert len(truth.holds) == 1
    party, hs, he = truth.holds[0]
    assert party == "agent" and 15.0 <= he - hs <= 35.0
    # nobody speaks on the holding party's line during the hold; a hold is not dead air
    assert not any(s < he and hs < e for s, e in truth.speech["agent"])
    assert not any(s < he and hs < e for s, e in truth.dead_air)
    # the music is on the agent's channel during the hold and not after it (the client's
    # line noise aside)
    assert rms_db(stereo[int((hs + 1) * RATE): int((he - 1) * RATE), 0]) > -40
    dtmf = next(e for e in truth.events if e[0] == "dtmf")
    assert dtmf[1] == "client" and len(dtmf[4]) >= 4
    # digital silence is exactly zero
    for p, s, e in truth.silent:
        ch = 0 if p == "agent" else 1
        assert not np.any(stereo[int(s * RATE) + 1: int(e * RATE) - 1, ch])


@pytest.mark.parametrize("kind", SPECIAL)
def test_special_calls_have_no_speech(kind):
    stereo, truth = build_special_call(kind, np.random.default_rng(7),
                                       music_kinds=signals.MUSIC_STYLES)
    assert abs(len(stereo) - truth.duration * RATE) <= RATE / 1000   # duration in ms
    assert truth.speech == {"agent": [], "client": []}
    if kind == "silence":
        assert truth.events == []
    else:
        assert truth.events and all(s < e for _, _, s, e, _ in truth.events)
    assert bool(truth.holds) == (kind == "abandoned_hold")


def test_real_music_on_hold_when_installed():
    files = signals.moh_files()
    if not files:
        pytest.skip("asterisk-moh-opsound-wav is not installed")
    x = signals.music(str(files[0]), 10.0, np.random.default_rng(8), -18.0)
    assert len(x) == 10 * RATE
    assert rms_db(x) == pytest.approx(-18.0, abs=2.0)
