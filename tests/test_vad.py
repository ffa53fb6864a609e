"""The native per-party detector on real speech, noise and edge cases."""

import numpy as np
import pytest
from hypothesis import given, settings as hsettings, strategies as st

from appliance.native import PartyDetector, Segmenter
from appliance.simulate.calls import make_noise
from appliance.simulate.scoring import frame_counts, interval_frames

from conftest import feed_detector, to_pcm


def run(pcm: np.ndarray, chunks=None, **kw):
    d = feed_detector(PartyDetector(**kw), pcm, chunks)
    voiced, levels = d.take_frames()
    return d.take_segments(), voiced, levels


def padded(speech: np.ndarray, lead_s=1.5, tail_s=1.5) -> np.ndarray:
    return np.concatenate([np.zeros(int(lead_s * 16000), np.float32), speech,
                           np.zeros(int(tail_s * 16000), np.float32)])


def test_finds_real_speech_and_nothing_in_silence(corpus):
    u = corpus[2]
    segs, _, _ = run(to_pcm(padded(u.audio * 0.5)))
    assert segs, "speech not detected"
    n = int((len(u.audio) / 16000 + 3) / 0.02)
    pred = np.zeros(n, bool)
    for s, e in segs:
        pred[s:e] = True
    truth = interval_frames([(s + 1.5, e + 1.5) for s, e in u.speech], n)
    c = frame_counts(pred, truth)
    assert c.f1 > 0.9, (c.precision, c.recall)
    assert segs[0][0] * 0.02 >= 1.5 - 0.1     # nothing in the leading silence


@pytest.mark.parametrize("kind", ["white", "pink", "brown", "hum"])
@pytest.mark.parametrize("level_db", [-50, -30, -15])
def test_steady_noise_alone_is_not_speech(kind, level_db):
    rng = np.random.default_rng(1)
    noise = make_noise(kind, 16000 * 20, rng) * 10 ** (level_db / 20)
    segs, _, _ = run(to_pcm(noise))
    # at most a start-up blip; never a sustained false segment
    assert sum(e - s for s, e in segs) <= 15, segs


def test_digital_silence_and_dropouts_do_not_trigger():
    rng = np.random.default_rng(2)
    noise = make_noise("pink", 16000 * 12, rng) * 0.02
    noise[16000 * 4:16000 * 5] = 0.0          # a second of packet loss mid-call
    segs, _, _ = run(to_pcm(noise))
    assert sum(e - s for s, e in segs) <= 15, segs
    assert run(np.zeros(16000 * 5, np.int16))[0] == []


@pytest.mark.parametrize("gain_db", [-6, 6, 12])
def test_level_does_not_change_decisions(speech, gain_db):
    # a line always carries some noise: 25 dB under the speech here (the absolute gate
    # below -60 dBFS is the one level-dependent rule, so stay above it)
    x = padded(speech * 0.3)
    rms = np.sqrt(np.mean((speech * 0.3) ** 2))
    x = x + make_noise("pink", len(x), np.random.default_rng(4)) * rms * 10 ** (-25 / 20)
    ref, _, _ = run(to_pcm(x))
    got, _, _ = run(to_pcm(x * 10 ** (gain_db / 20)))
    assert len(got) == len(ref)
    for (a, b), (c, d) in zip(ref, got):
        assert abs(a - c) <= 2 and abs(b - d) <= 3


def test_speech_in_noise_at_10_db_is_found(speech):
    rng = np.random.default_rng(3)
    x = padded(speech * 0.3, 3.0, 3.0)
    p = np.mean((speech * 0.3) ** 2)
    x = x + make_noise("pink", len(x), rng) * np.sqrt(p / 10)
    segs, _, _ = run(to_pcm(x))
    talk = sum(e - s for s, e in segs) * 0.02
    assert 0.7 * len(speech) / 16000 < talk < 1.2 * len(speech) / 16000
    assert segs[0][0] * 0.02 > 2.0            # the leading noise is not speech


@hsettings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=0, max_value=2000), min_size=1, max_size=40))
def test_chunking_never_changes_the_result(chunks):
    pcm = _SPEECH_PCM
    assert run(pcm, chunks) == run(pcm)


def test_frame_by_frame_equals_one_go(speech):
    pcm = to_pcm(padded(speech * 0.4))
    assert run(pcm, [320] * (len(pcm) // 320)) == run(pcm)
    assert run(pcm, [1] * 5000 + [7] * 300) == run(pcm)


def test_8khz_input_supported(speech):
    import soxr
    x8 = soxr.resample(padded(speech * 0.3), 16000, 8000)
    segs8, _, _ = run(to_pcm(x8), sample_rate=8000)
    segs16, _, _ = run(to_pcm(padded(speech * 0.3)))
    assert len(segs8) == len(segs16)


def test_rejects_bad_parameters():
    with pytest.raises(ValueError, match="sample_rate"):
        PartyDetector(sample_rate=44100)
    with pytest.raises(ValueError, match="onset_frames"):
        Segmenter(onset_frames=0)


def test_segmenter_rules():
    seg = Segmenter(onset_frames=2, hangover_frames=5, min_speech_frames=3, tail_frames=1)
    flags = np.array([0, 1, 0, 0, 0, 0, 0, 0,          # single voiced frame: no onset
                      1, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0,   # pause of 2 bridged
                      1, 1, 0, 0, 0, 0, 0, 0], np.uint8)          # 2 frames + tail = 3: kept
    seg.push_many(flags)
    seg.flush()
    assert seg.take_segments() == [(8, 16), (22, 25)]


@pytest.fixture(autouse=True, scope="module")
def _speech_pcm(corpus):
    global _SPEECH_PCM
    _SPEECH_PCM = to_pcm(padded(corpus[5].audio[: 16000 * 4] * 0.4, 0.5, 0.5))
    yield
