"""The native detector's non-speech classes: tones, key presses and music are never speech."""

import io
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import soxr
from hypothesis import given, settings as hsettings, strategies as hst

from appliance.analysis.dsp import CallStream, detector_params
from appliance.config import Settings
from appliance.native import CLS_MUSIC, CLS_SPEECH, CLS_TONE, PartyDetector
from appliance.simulate import signals
from appliance.simulate.artefacts import SPECIAL, build_artefact_call, build_special_call
from appliance.simulate.calls import build_call, degrade, make_noise, telephone_band
from appliance.simulate.scoring import interval_frames

from conftest import feed_detector, to_pcm

RATE = 16000


def telephone(x: np.ndarray) -> np.ndarray:
    """Through the 300-3400 Hz channel at 8 kHz and back to the pipeline's 16 kHz."""
    return soxr.resample(telephone_band(x), 8000, RATE)


def on_line(x: np.ndarray, rng: np.random.Generator, lead_s: float = 1.0,
            noise_db: float = -58.0) -> np.ndarray:
    """A sound after ``lead_s`` of line noise, with the noise under it and after it."""
    pad = np.zeros(int(lead_s * RATE), np.float32)
    y = np.concatenate([pad, x, pad])
    return y + signals.make_background(len(y), rng, noise_db)


def detect(pcm: np.ndarray, chunks: list[int] | None = None):
    d = feed_detector(PartyDetector(**detector_params(Settings().vad)), pcm, chunks)
    return (d.take_segments(), np.frombuffer(d.take_classes(), np.uint8), d.take_events())


def shifted(on, by: float):
    return [(s + by, e + by) for s, e in on]


def test_dtmf_digits_are_decoded_and_never_speech():
    keys = "0123456789*#ABCD"
    for seed in range(4):
        rng = np.random.default_rng(seed)
        snd = signals.dtmf(keys, rng)
        segs, cls, events = detect(to_pcm(telephone(on_line(snd.audio, rng))))
        assert "".join(e[3] for e in events if e[0] == "dtmf") == keys
        assert segs == []
        # each key is found where it sounds, to the frame
        for (s, e), ev in zip(shifted(snd.on, 1.0), [e for e in events if e[0] == "dtmf"]):
            assert abs(ev[1] * 0.02 - s) <= 0.04 and abs(ev[2] * 0.02 - e) <= 0.06


@pytest.mark.parametrize("country", signals.COUNTRIES)
@pytest.mark.parametrize("kind", ["dial", "ringback", "busy"])
def test_call_progress_tones_are_tones(country, kind):
    rng = np.random.default_rng(11)
    freqs, _ = signals.PROGRESS[country][kind]
    snd = signals.progress_tone(country, kind, 10.0, float(rng.uniform(-35, -15)), rng)
    segs, cls, events = detect(to_pcm(telephone(on_line(snd.audio, rng))))
    assert segs == []
    sounding = interval_frames(shifted(snd.on, 1.0), len(cls))
    assert np.mean(cls[sounding] == CLS_TONE) > 0.9
    tones = [e for e in events if e[0] == "tone"]
    assert tones
    # a pair closer than the analysis resolves (4 bins, 125 Hz) reads as one lobe between
    # them; a wider pair as two tones
    for ev in tones:
        if max(freqs) - min(freqs) < 125:
            assert ev[4] == 0.0 and 0.95 * min(freqs) <= ev[3] <= 1.05 * max(freqs)
        else:
            assert [ev[3], ev[4]] == pytest.approx(sorted(freqs), rel=0.05)


@pytest.mark.parametrize("kind", ["sit", "fax_ced", "fax_cng"])
def test_sit_and_fax_tones_are_tones(kind):
    rng = np.random.default_rng(12)
    snd = {"sit": lambda: signals.sit(rng), "fax_ced": lambda: signals.fax_ced(rng),
           "fax_cng": lambda: signals.fax_cng(8.0, rng)}[kind]()
    segs, cls, events = detect(to_pcm(telephone(on_line(snd.audio, rng))))
    assert segs == []
    sounding = interval_frames(shifted(snd.on, 1.0), len(cls))
    assert np.mean(cls[sounding] == CLS_TONE) > 0.9


def test_music_on_hold_is_music_not_speech():
    speech = total = 0
    for kind in signals.music_kinds():
        rng = np.random.default_rng(13)
        x = signals.music(kind, 25.0, rng, float(rng.uniform(-28, -16)))
        segs, cls, events = detect(to_pcm(telephone(on_line(x, rng))))
        music = interval_frames([(1.0, 26.0)], len(cls))
        # sustained pads fade into the noise floor in places (silence, not speech), and a
        # note that reads as a pure tone is a tone: never speech either
        assert np.mean(np.isin(cls[music], (CLS_MUSIC, CLS_TONE))) > 0.65, kind
        # a recording may open with a few seconds that read as speech before the music is
        # confirmed (the look-ahead is about 6 s); over all kinds at most 2 %
        assert np.mean(cls[music] == CLS_SPEECH) < 0.1, kind
        speech += int(np.sum(cls[music] == CLS_SPEECH))
        total += int(music.sum())
        runs = [e for e in events if e[0] == "music"]
        assert runs and (runs[-1][2] - runs[0][1]) * 0.02 > 0.8 * 25.0, kind
    assert speech / total < 0.02


def music_in_noise(kind: str, noise: str, rng: np.random.Generator, noise_db: float
                   ) -> tuple[int, int, int]:
    """25 s of music at -24 dBFS between 1 s pads, over line noise at ``noise_db``, through
    the telephone band: (its frames read as speech, as music or tones, all its frames)."""
    x = signals.music(kind, 25.0, rng, -24.0)
    pad = np.zeros(RATE, np.float32)
    y = np.concatenate([pad, x, pad])
    y = y + make_noise(noise, len(y), rng) * 10 ** (noise_db / 20)
    _, cls, _ = detect(to_pcm(telephone(y)))
    music = interval_frames([(1.0, 26.0)], len(cls))
    return (int(np.sum(cls[music] == CLS_SPEECH)),
            int(np.sum(np.isin(cls[music], (CLS_MUSIC, CLS_TONE)))), int(music.sum()))


def test_quiet_music_in_line_noise_is_still_music_not_speech():
    """Music 2 dB over white or pink line noise: the noise hides notes and activity, and
    what is left must still read as music (or tones), not as speech. Over all kinds together:
    some stay hard (the `band` style's drums and short chords in pink noise read as noise
    with blips of speech, with or without the weak path)."""
    if not signals.moh_files():
        pytest.skip("the real recordings are missing: `make install-test` installs "
                    "asterisk-moh-opsound-wav")
    speech = heard = total = 0
    for kind in signals.music_kinds():
        for noise in ("white", "pink"):
            counts = music_in_noise(kind, noise, np.random.default_rng(13), -26.0)
            speech, heard, total = (a + b for a, b in zip((speech, heard, total), counts))
    assert speech / total < 0.06
    assert heard / total > 0.72


ESPEAK_VOICES = [("ru+f3", "ru"), ("en-us+f2", "en"), ("en+f4", "en"), ("en", "en")]
ESPEAK_TEXT = {
    "ru": ["Добрый день, компания слушает, чем могу помочь?",
           "Одну минуту, я проверю ваш заказ в системе.",
           "Назовите, пожалуйста, номер договора и дату доставки."],
    "en": ["Good morning, thank you for calling, how can I help you today?",
           "Please hold on for a moment, I will check your order in our system.",
           "Could you tell me your account number and the date of delivery?"]}


def espeak(voice: str, text: str) -> np.ndarray:
    """A sentence from espeak-ng (a monotone formant voice: steady harmonics, like notes)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is missing: `make install-test` installs the test packages")
    wav = subprocess.run(["espeak-ng", "-v", voice, "--stdout", text], check=True,
                         capture_output=True).stdout
    x, rate = sf.read(io.BytesIO(wav), dtype="float32")
    return soxr.resample(x, rate, RATE).astype(np.float32)


def test_a_steady_beat_in_line_noise_is_music_not_speech():
    """A band (bass, chords, drums) 2 and 5 dB over white or pink line noise: the noise
    drowns its notes first, and its drums read as blips of speech unless the beat is heard.
    Over four arrangements together, more of it is music and less is speech than without
    the beat (without: 48 % music, 8.7 % speech)."""
    speech = heard = total = 0
    for noise in ("white", "pink"):
        for seed in (13, 14, 15, 16):
            for snr in (2.0, 5.0):
                counts = music_in_noise("band", noise, np.random.default_rng(seed),
                                        -24.0 - snr)
                speech, heard, total = (a + b for a, b in zip((speech, heard, total), counts))
    assert speech / total < 0.075
    assert heard / total > 0.6


@pytest.mark.parametrize("voice,lang", ESPEAK_VOICES)
def test_the_weak_music_gates_take_no_synthetic_voice_for_music(voice, lang):
    """Quiet music is told from the noise by a second that misses the usual gates but scores
    clearly as music, or carries a steady beat. Synthetic voices, female ones included, hold
    their pitch like notes and speak at an even pace; in white or pink noise at 10 and 5 dB
    SNR those paths must add no music frames to them, and they must still be heard as
    speech. (One of them in pink noise at 10 dB reads as music for a few seconds through the
    usual gates, with or without the weak paths: see docs/benchmarks.md.)"""
    rng = np.random.default_rng(17)
    said = [espeak(voice, text) for text in ESPEAK_TEXT[lang]]
    parts = []
    for x in said * 3:
        parts += [x, np.zeros(int(rng.uniform(0.3, 1.5) * RATE), np.float32)]
    x = np.concatenate(parts)
    x *= 0.1 / np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2))
    for snr in (10.0, 5.0):
        for noise in ("white", "pink"):
            y = x + make_noise(noise, len(x), rng) * 0.1 * 10 ** (-snr / 20)
            pcm = to_pcm(telephone(y))
            _, cls, _ = detect(pcm)
            strict = PartyDetector(**detector_params(Settings().vad))
            strict.music_weak_margin = float("inf")
            strict.music_beat_min = float("inf")
            base = np.frombuffer(feed_detector(strict, pcm, None).take_classes(), np.uint8)
            assert not np.any((cls == CLS_MUSIC) & (base != CLS_MUSIC)), (snr, noise)
            assert np.mean(cls == CLS_SPEECH) > 0.2, (snr, noise)


@pytest.mark.parametrize("variant", ["tel8", "tel8_snr5"])
def test_real_speech_is_not_taken_for_music_or_tones(corpus, variant):
    stereo, truth = build_call(corpus, np.random.default_rng(31), turns=8)
    audio, rate, _, _ = degrade(stereo, truth, variant, np.random.default_rng(32))
    audio = soxr.resample(audio, rate, RATE)
    for ch, party in enumerate(("agent", "client")):
        _, cls, _ = detect(to_pcm(np.ascontiguousarray(audio[:, ch])))
        speech = interval_frames(truth.speech[party], len(cls))
        assert np.mean(np.isin(cls[speech], (CLS_TONE, CLS_MUSIC))) < 0.01


def stream(stereo: np.ndarray, sizes: list[int] | None = None) -> CallStream:
    s = CallStream(Settings().vad)
    pcm = to_pcm(stereo)
    if sizes is None:
        s.feed("agent", pcm[:, 0])
        s.feed("client", pcm[:, 1])
    else:
        pos = {"agent": 0, "client": 0}
        i = 0
        while min(pos.values()) < len(pcm):
            for ch, party in enumerate(("agent", "client")):
                n = sizes[i % len(sizes)] * (ch + 1)    # the parties' chunks differ too
                s.feed(party, pcm[pos[party]: pos[party] + n, ch])
                pos[party] += n
                i += 1
    s.finish()
    return s


def test_artefact_call_gives_the_same_result_whatever_the_chunking(corpus):
    stereo, truth = build_artefact_call(corpus, np.random.default_rng(41),
                                        music_kinds=signals.MUSIC_STYLES)
    whole = stream(stereo)
    rng = np.random.default_rng(42)
    for sizes in ([160], [320 * 50], list(rng.integers(1, 5000, 37))):
        part = stream(stereo, [int(n) for n in sizes])
        assert part.segments == whole.segments
        assert part.classes == whole.classes
        assert part.events == whole.events
    n = len(whole.classes["agent"])
    assert n == whole.frames == whole.decided
    # what the truth says sounds is never speech
    for party in ("agent", "client"):
        cls = np.frombuffer(bytes(whole.classes[party]), np.uint8)
        sounds = interval_frames([(s, e) for _, p, s, e in truth.sounds if p == party], n)
        assert np.mean(cls[sounds] == CLS_SPEECH) < 0.02
    digits = "".join(e[3] for e in whole.events["client"] if e[0] == "dtmf")
    assert digits == next(e[4] for e in truth.events if e[0] == "dtmf")


@pytest.mark.parametrize("kind", SPECIAL)
def test_calls_without_speech_give_events_and_no_segments(kind):
    stereo, truth = build_special_call(kind, np.random.default_rng(51),
                                       music_kinds=signals.MUSIC_STYLES)
    s = stream(stereo)
    assert s.segments == {"agent": [], "client": []}
    found = {e[0] for p in ("agent", "client") for e in s.events[p]}
    if kind == "silence":
        assert found == set()
    elif kind == "abandoned_hold":
        assert "music" in found
    else:
        assert found == {"tone"}


def _mixed_line() -> np.ndarray:
    """Speech, a ringback, key presses and music on one telephone line, with noise."""
    from appliance.simulate.corpus import load_corpus

    rng = np.random.default_rng(81)
    parts = [np.zeros(RATE // 2, np.float32),
             signals.progress_tone("uk", "ringback", 3.1, -24.0, rng).audio,
             load_corpus()[3].audio * 0.4, np.zeros(RATE // 3, np.float32),
             signals.dtmf("1590#", rng).audio,
             signals.music("arpeggio", 9.0, rng, -20.0), load_corpus()[5].audio * 0.4]
    x = np.concatenate(parts)
    return to_pcm(telephone(x + signals.make_background(len(x), rng, -55.0)))


_MIXED = None


@hsettings(max_examples=15, deadline=None)
@given(hst.lists(hst.integers(min_value=0, max_value=40000), min_size=1, max_size=30))
def test_classes_and_events_never_depend_on_the_chunking(chunks):
    global _MIXED
    if _MIXED is None:
        pcm = _mixed_line()
        _MIXED = pcm, detect(pcm)
    pcm, whole = _MIXED
    segs, cls, events = detect(pcm, chunks)
    assert segs == whole[0] and events == whole[2]
    assert np.array_equal(cls, whole[1])
    assert {e[0] for e in events} == {"tone", "dtmf", "music"}
    assert "".join(e[3] for e in events if e[0] == "dtmf") == "1590#"
    assert segs                                  # and the speech is still speech


def over_music(corpus, kind: str, below_db: float, seed: int = 5):
    """A party's speech with music ``below_db`` under it (a radio where the client calls
    from), the other party silent; (stereo at 16 kHz, truth)."""
    rng = np.random.default_rng(seed)
    stereo, truth = build_call(corpus, rng, turns=8)
    x = signals.music_under(stereo[:, 0].astype(np.float32), kind, below_db, rng)
    quiet = signals.make_background(len(x), rng, -60.0)
    return np.stack([telephone(x), telephone(quiet)], axis=1), truth


def heard(s: CallStream, truth, party: str = "agent") -> float:
    flags = np.zeros(len(s.classes[party]), bool)
    for a, b in s.segments[party]:
        flags[a:b] = True
    return float(np.mean(flags[interval_frames(truth.speech[party], len(flags))]))


@pytest.mark.parametrize("kind", ["arpeggio", "band"])
def test_speech_over_background_music_is_still_heard(corpus, kind):
    """Music under a voice has the notes, beat and activity the music detector looks for, and
    the detector alone takes most of the speech with it; the second opinion on music
    (analysis/speech_check.py) hears the voice and gives it back, whatever the chunking,
    and the music around the words is no hold."""
    stereo, truth = over_music(corpus, kind, 18.0)
    s = stream(stereo)
    assert heard(s, truth) > 0.9
    alone = Settings().vad.model_copy(update={"music_second_opinion": False})
    bare = CallStream(alone)
    bare.feed("agent", to_pcm(stereo)[:, 0])
    bare.feed("client", to_pcm(stereo)[:, 1])
    bare.finish()
    assert heard(bare, truth) < 0.75             # what the second opinion is for
    part = stream(stereo, [int(n) for n in np.random.default_rng(3).integers(1, 5000, 29)])
    assert part.segments == s.segments and part.classes == s.classes and part.events == s.events
    speech = interval_frames(truth.speech["agent"], len(s.classes["agent"]))
    music = [e for e in s.events["agent"] if e[0] == "music"]
    inside = sum(int(speech[a:b].sum()) for _, a, b in music)
    assert inside < 0.05 * speech.sum()          # the music events leave the words out


def bare_stream(stereo: np.ndarray) -> CallStream:
    """The call through the detector alone (no second opinion on music)."""
    s = CallStream(Settings().vad.model_copy(update={"music_second_opinion": False}))
    s.feed("agent", to_pcm(stereo)[:, 0])
    s.feed("client", to_pcm(stereo)[:, 1])
    s.finish()
    return s


def no_model(monkeypatch, path):
    from appliance.analysis import speech_check

    monkeypatch.setattr(speech_check, "_model", None)
    monkeypatch.setattr(speech_check, "_unavailable", None)
    monkeypatch.setattr(speech_check, "silero_path", lambda: path)
    return speech_check


@pytest.mark.parametrize("problem", ["missing", "altered", "unloadable"])
def test_without_a_usable_second_opinion_music_is_told_as_before(corpus, monkeypatch, caplog,
                                                                  tmp_path, problem):
    """A box whose silero-vad wheel is missing, altered or will not load says so once, with
    what to do, and every call goes on with the detector alone."""
    path = None
    if problem != "missing":
        path = tmp_path / "silero_vad.onnx"
        path.write_bytes(b"not the model")
    speech_check = no_model(monkeypatch, path)
    if problem == "unloadable":     # right hash, and no ONNX model inside
        monkeypatch.setattr(speech_check, "SILERO_SHA256",
                            __import__("hashlib").sha256(b"not the model").hexdigest())
    stereo, _ = over_music(corpus, "arpeggio", 18.0)
    with caplog.at_level("WARNING", logger="appliance.analysis.speech_check"):
        first, second = stream(stereo), stream(stereo)
    said = [r for r in caplog.records if "no second opinion on music" in r.getMessage()]
    assert len(said) == 1
    reason = said[0].__dict__["reason"]
    expected = {"missing": "pip install --no-deps silero-vad==", "altered": "is not silero-vad",
                "unloadable": "cannot read the onnx model"}[problem]
    assert expected in reason.lower() and "silero-vad==" in reason
    bare = bare_stream(stereo)
    for s in (first, second):
        assert s.segments == bare.segments and s.classes == bare.classes
        assert s.events == bare.events


def test_a_second_opinion_that_fails_mid_call_leaves_the_call_to_the_detector(corpus,
                                                                            monkeypatch, caplog):
    from appliance.analysis import speech_check

    model = speech_check.speech_model()
    assert model is not None, "make install-test installs the silero-vad wheel"
    stereo, _ = over_music(corpus, "arpeggio", 18.0)
    full = stream(stereo, [1600])
    works = model.probabilities
    calls = []

    def failing_later(windows, state):
        calls.append(len(windows))
        if len(calls) > 3:
            raise MemoryError("out of memory")
        return works(windows, state)
    monkeypatch.setattr(model, "probabilities", failing_later)
    with caplog.at_level("ERROR", logger="appliance.analysis.dsp"):
        s = stream(stereo, [1600])          # fed live, 100 ms at a time
    assert len(calls) == 4                  # three answers, then the failure, then no more
    said = [r for r in caplog.records if "second opinion on music failed" in r.getMessage()]
    assert len(said) == 1 and "MemoryError" in said[0].__dict__["reason"]
    # what was decided before the failure stands; after it the detector decides alone
    heard = sum(b - a for a, b in s.over_music["agent"])
    assert 0 < heard < sum(b - a for a, b in full.over_music["agent"])
    assert len(s.classes["agent"]) == len(full.classes["agent"])


def test_the_second_opinion_answers_as_onnxruntime_does_on_the_same_file(corpus):
    """The box runs Silero's network in numpy (no onnxruntime in the capture processes);
    onnxruntime running the wheel's file is the reference. Speech with music under it and
    music alone get the same decisions and, to float32 rounding, the same probabilities;
    and a window's answer does not depend on how many windows were read with it."""
    import onnxruntime as ort

    from appliance.analysis import speech_check

    path = speech_check.silero_path()
    model = speech_check.speech_model()
    assert path is not None and model is not None, "make install-test installs silero-vad"
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    speech, _ = over_music(corpus, "band", 18.0)
    music = telephone(signals.music("arpeggio", 8.0, np.random.default_rng(2), -20.0))
    for x in (speech[:, 0].astype(np.float32), music):
        n = len(x) // speech_check.WINDOW
        stream_ = np.concatenate([np.zeros(speech_check.CONTEXT, np.float32),
                                  x[:n * speech_check.WINDOW]])
        windows = np.lib.stride_tricks.sliding_window_view(
            stream_, speech_check.CONTEXT + speech_check.WINDOW)[::speech_check.WINDOW]
        state = np.zeros((2, 1, speech_check.HIDDEN), np.float32)
        reference = []
        for w in windows:
            out, state = session.run(None, {"input": w[None, :], "state": state,
                                            "sr": np.array(RATE, np.int64)})
            reference.append(float(out[0, 0]))
        start = np.zeros((2, 1, speech_check.HIDDEN), np.float32)
        mine, last = model.probabilities(windows, start)
        assert np.abs(mine - np.array(reference)).max() < 1e-4
        assert ((mine >= 0.5) == (np.array(reference) >= 0.5)).all()
        assert np.allclose(last, state, rtol=1e-4, atol=1e-4)
        if x is not music:      # the decisions compared include both answers
            assert 0.2 < np.mean(mine >= 0.5) < 0.9
        cuts = np.cumsum(np.random.default_rng(4).integers(1, 30, len(windows)))
        parts, state = [], start
        for a, b in zip(np.concatenate([[0], cuts]), cuts):
            p, state = model.probabilities(windows[a:b], state)
            parts.append(p)
        assert np.array_equal(np.concatenate(parts), mine)


def test_the_music_check_answers_the_same_however_frames_and_audio_arrive(corpus):
    """Each stretch of music frames is read from half a second before it, whatever the
    drains: frames decided one at a time or all at once, with the audio just arrived or
    seconds ahead (read ahead in batches), the answers are those of the stretch read whole."""
    from appliance.analysis import speech_check as sc

    model = sc.speech_model()
    assert model is not None, "make install-test installs silero-vad"
    stereo, _ = over_music(corpus, "band", 18.0)
    pcm = to_pcm(stereo)[:, 0]
    spf = 320
    n = len(pcm) // spf
    rng = np.random.default_rng(11)
    music = np.zeros(n, bool)
    i = 0
    while i < n:                       # stretches of 1 to 200 frames, a few of one frame
        size = int(rng.integers(1, 200)) if rng.random() < 0.8 else 1
        music[i:i + size] = rng.random() < 0.6
        i += size
    # the oracle: each stretch's windows in one batch, from its own origin
    expected = np.zeros(n, bool)
    edges = np.flatnonzero(np.diff(np.concatenate([[0], music.astype(np.int8), [0]])))
    for a, b in zip(edges[::2], edges[1::2]):
        origin = max(0, a - sc.MusicSpeechCheck.LEAD_FRAMES) * spf
        last = ((b - 1) * spf + spf // 2 - origin) // sc.WINDOW
        x = np.zeros((last + 1) * sc.WINDOW, np.float32)
        got = pcm[origin: origin + len(x)].astype(np.float32) / 32768.0
        x[:len(got)] = got
        windows = np.lib.stride_tricks.sliding_window_view(
            np.concatenate([np.zeros(sc.CONTEXT, np.float32), x]),
            sc.CONTEXT + sc.WINDOW)[::sc.WINDOW]
        probs, _ = model.probabilities(windows, np.zeros((2, 1, sc.HIDDEN), np.float32))
        centre = (np.arange(a, b) * spf + spf // 2 - origin) // sc.WINDOW
        expected[a:b] = probs[centre] >= sc.THRESHOLD
    assert 0 < expected.sum() < music.sum()       # both answers occur
    # audio from ``available`` on has not arrived: it reads as silence, as in CallStream (a
    # live detector decides frames seconds behind the audio; 2 frames cover a frame's window)
    for sizes, ahead in (([n], 2), ([1], 2), ([1], 150), ([7, 1, 30], 3), ([300], 9)):
        check = sc.MusicSpeechCheck(model, spf)
        got, f, j = [], 0, 0
        while f < n:
            size = min(sizes[j % len(sizes)], n - f)
            available = min(len(pcm), (f + size + ahead) * spf)

            def audio(a: int, b: int, available: int = available) -> np.ndarray:
                out = np.zeros(b - a, np.int16)
                here = pcm[a:min(b, available)]
                out[:len(here)] = here
                return out
            got.append(check.frames(music[f:f + size], f, audio, available))
            f, j = f + size, j + 1
        assert np.array_equal(np.concatenate(got), expected), (sizes, ahead)


def hold_in_noise(corpus, kind: str, noise: str, seed: int):
    """The agent's speech, 20 s of hold music 3 dB over the line noise, speech again; the
    noise 10 dB under the speech. (stereo at 16 kHz, hold (s), speech intervals (s))."""
    rng = np.random.default_rng(seed)
    before, after = corpus[2 * seed].audio, corpus[2 * seed + 1].audio
    both = np.concatenate([before, after])
    noise_db = 20 * np.log10(np.sqrt(np.mean(both[np.abs(both) > 1e-3] ** 2))) - 10
    gap = np.zeros(int(0.6 * RATE), np.float32)
    music = signals.music(kind, 20.0, rng, noise_db + 3.0)
    x = np.concatenate([before, gap, music, gap, after])
    x = x + make_noise(noise, len(x), rng) * 10 ** (noise_db / 20)
    start = (len(before) + len(gap)) / RATE
    end = start + len(music) / RATE
    back = end + len(gap) / RATE
    speech = [*corpus[2 * seed].speech, *((back + a, back + b) for a, b in corpus[2 * seed + 1].speech)]
    quiet = signals.make_background(len(x), rng, -60.0)
    return np.stack([telephone(x), telephone(quiet)], axis=1), (start, end), speech


def share_as_speech(s: CallStream, spans) -> float:
    n = len(s.classes["agent"])
    said = np.zeros(n, bool)
    for a, b in s.segments["agent"]:
        said[a:b] = True
    return float(said[interval_frames(spans, n)].mean())


def test_music_that_noise_turns_into_speech_goes_on_as_music(corpus, monkeypatch):
    """In line noise the quiet parts of hold music lose their notes and beat and read as
    speech: the hold ends early and the music goes to the recognizer. A segment starting
    within 3 s of the party's music is asked of Silero; where it hears no voice the
    segment is music. Over every kind of music, less of the holds is speech, and the
    speech on both sides of them is heard as before."""
    import appliance.analysis.dsp as dsp

    near = dsp.NEAR_MUSIC_FRAMES
    checked, alone = [], []
    for i, kind in enumerate(signals.music_kinds()):
        stereo, hold, speech = hold_in_noise(corpus, kind, ("white", "pink")[i % 2], 2)
        runs = []
        for frames in (near, 0):                    # 0: no segment is near music
            monkeypatch.setattr(dsp, "NEAR_MUSIC_FRAMES", frames)
            s = stream(stereo)
            runs.append((share_as_speech(s, [hold]), share_as_speech(s, speech),
                         s.music_going_on["agent"]))
        (hold_on, speech_on, moved), (hold_off, speech_off, _) = runs
        assert hold_on <= hold_off and speech_on == speech_off, kind
        assert all(hold[0] <= a * 0.02 and b * 0.02 <= hold[1] + 0.5 for a, b in moved), kind
        checked.append(hold_on)
        alone.append(hold_off)
    assert np.mean(checked) < 0.8 * np.mean(alone)


@pytest.mark.parametrize("seed", [8, 31])
def test_a_radio_under_a_voice_in_line_noise_gives_one_call_whatever_the_chunking(corpus, seed):
    """Speech heard over music and a segment right after it can close in one drain (a file
    fed whole) or in two (a live call): what counts as near music is the same either way."""
    rng = np.random.default_rng(seed)
    parts = []
    for k in range(5):
        parts += [corpus[(seed * 11 + k) % len(corpus)].audio,
                  np.zeros(int(rng.uniform(0.1, 3.0) * RATE), np.float32)]
    x = signals.music_under(np.concatenate(parts), signals.music_kinds()[seed % 9],
                            float(rng.uniform(3, 12)), rng)
    level = 20 * np.log10(np.sqrt(np.mean(x[np.abs(x) > 1e-3] ** 2)))
    x = x + make_noise(("white", "pink")[seed % 2], len(x), rng) * 10 ** (
        (level - rng.uniform(8, 15)) / 20)
    stereo = np.stack([telephone(x), telephone(signals.make_background(len(x), rng, -60.0))],
                      axis=1)
    whole = stream(stereo)
    assert whole.over_music["agent"]                # speech was heard over the music
    for sizes in ([1600], [320]):
        part = stream(stereo, sizes)
        for name in ("segments", "classes", "events", "over_music", "music_going_on"):
            assert getattr(part, name) == getattr(whole, name), (sizes, name)


def test_a_call_without_music_never_loads_the_second_opinion(corpus, monkeypatch):
    """The model is loaded at the first music a process meets: calls of speech alone never
    pay for it (a segment is only asked about when music is near it)."""
    from appliance.analysis import speech_check

    monkeypatch.setattr(speech_check, "_model", None)
    monkeypatch.setattr(speech_check, "_unavailable", None)
    stereo, _ = build_call(corpus, np.random.default_rng(4), turns=6)
    s = stream(stereo)
    assert s.segments["agent"] and s.segments["client"]
    assert speech_check._model is None
    stream(over_music(corpus, "arpeggio", 18.0)[0])
    assert speech_check._model is not None       # and music does load it
