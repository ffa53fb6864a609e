"""Speech recognition on real recordings, the model's checks, and the hallucination filter."""

import json

import numpy as np
import pytest
import soxr

from appliance.asr.filters import clean_transcript
from appliance.asr.model import ModelError, find_model, verify
from appliance.asr.recognizer import WhisperRecognizer
from appliance.asr.service import AsrService
from appliance.config import Settings
from appliance.media.session import CallMeta, CallSession, Stages
from appliance.simulate.calls import make_noise
from appliance.simulate.scoring import word_errors, words


def wer(ref: str, hyp: str) -> float:
    return word_errors(words(ref), words(hyp)) / max(1, len(words(ref)))


@pytest.fixture(scope="module")
def recognizer():
    # make test builds the model first; its absence is an error here, not a skip
    return WhisperRecognizer(find_model(), "ru", "int8", threads=2)


@pytest.fixture(scope="module")
def batched():
    from appliance.asr.recognizer import load_recognizer
    return load_recognizer(find_model(), "ru", "int8", threads=2)


@pytest.mark.slow
@pytest.mark.parametrize("telephone", [False, True])
def test_recognises_real_russian_recordings(recognizer, batched, corpus, telephone):
    utts = corpus[40:46]
    audio = [u.audio for u in utts]
    if telephone:     # 8 kHz telephone band and back
        audio = [soxr.resample(soxr.resample(x, 16000, 8000), 8000, 16000) for x in audio]
    one_by_one = [wer(u.text, recognizer.transcribe(x)) for u, x in zip(utts, audio)]
    assert np.mean(one_by_one) < 0.35, one_by_one
    together = [wer(u.text, t) for u, t in zip(utts, batched.transcribe_batch(audio))]
    assert np.mean(together) < 0.35, together
    alone = [wer(u.text, batched.transcribe(x)) for u, x in zip(utts, audio)]
    assert np.mean(alone) < 0.35, alone


@pytest.mark.slow
def test_batched_decoding_detects_the_language_and_keeps_short_pieces(corpus):
    from appliance.asr.recognizer import load_recognizer
    auto = load_recognizer(find_model(), "auto", "int8", threads=2)
    texts = auto.transcribe_batch([corpus[50].audio, corpus[51].audio[:16000]])
    assert all(any("\u0400" <= ch <= "\u04ff" for ch in t) for t in texts), texts
    assert auto.transcribe_batch([]) == []


@pytest.mark.parametrize("precision", ["int8", "fp32"])
def test_a_cancelled_recognizer_stops_instead_of_decoding(corpus, precision):
    from appliance.asr.cancelled import Cancelled
    from appliance.asr.recognizer import load_recognizer
    rec = load_recognizer(find_model(), "ru", precision, threads=1)
    rec.cancel()
    with pytest.raises(Cancelled):
        rec.transcribe_batch([corpus[50].audio, corpus[51].audio])


def test_no_model_path_keeps_the_dsp_results(tmp_path, real_call):
    settings = Settings()
    settings.asr.model_dir = tmp_path / "empty"
    stages = Stages.load(settings)
    assert stages.asr is not None and not stages.asr.available
    session = CallSession(settings, CallMeta(source="file", call_id="x"), stages)
    pcm = (real_call[0] * 32767).astype(np.int16)
    session.feed("agent", pcm[:, 0])
    session.feed("client", pcm[:, 1])
    r = session.finish()
    assert r["segments"] and r["parties"]["agent"]["talk_s"] > 0
    assert r["asr"]["status"] == "unavailable"
    assert "appliance models build" in r["asr"]["reason"]
    assert r["transcript"] == [] and r["tags"] == []
    # items that need words are not evaluated; the metric items still are
    by_id = {i["id"]: i for i in r["score"]["items"]}
    assert by_id["greeting"]["passed"] is None and by_id["talk_share"]["passed"] is not None
    with pytest.raises(ModelError, match="appliance models build"):
        find_model(tmp_path / "empty")


def test_corrupt_model_is_detected(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "tokens.txt").write_text("abc 0\n")
    import hashlib
    digest = hashlib.sha256(b"abc 0\n").hexdigest()
    (d / "model.json").write_text(json.dumps({"files": {"tokens.txt": digest},
                                              "sizes": {"tokens.txt": 6}}))
    verify(d)
    (d / "tokens.txt").write_text("abd 0\n")
    with pytest.raises(ModelError, match="corrupt.*--force"):
        verify(d)
    (d / "tokens.txt").unlink()
    with pytest.raises(ModelError, match="missing"):
        verify(d)


@pytest.mark.parametrize("text, expected", [
    ("[музыка]", ""),
    ("(смех) Да, конечно.", "Да, конечно."),
    ("Продолжение следует...", ""),
    ("Субтитры сделал DimaTorzok", ""),
    ("Thank you for watching!", ""),
    ("да да да да да да да", "да да"),
    ("я хотел спросить я хотел спросить я хотел спросить", "я хотел спросить я хотел спросить"),
    ("Добрый день, компания Ромашка.", "Добрый день, компания Ромашка."),
    # a whole clause looping, its copies differing by a comma
    ("нашёл искателем Марс над Петербургом, нашёл искателем Марс над Петербургом "
     "нашёл искателем Марс над Петербургом, нашёл искателем Марс над Петербургом,",
     "нашёл искателем Марс над Петербургом, нашёл искателем Марс над Петербургом"),
    ("нет, нет, я не говорил нет", "нет, нет, я не говорил нет"),
    ("Спасибо, всего доброго!", "Спасибо, всего доброго!"),
])
def test_hallucination_filter(text, expected):
    assert clean_transcript(text) == expected


@pytest.mark.parametrize("phrase", [[7], [5, 9], list(range(100, 109)), list(range(200, 224))])
def test_the_decoder_ends_a_loop_of_a_word_or_a_whole_clause(phrase):
    from appliance.asr.whisper import _drop_loop
    said = [1, 2, 3]
    toks: list[int] = []
    stopped = False
    for tok in said + phrase * 5:
        toks.append(tok)
        if _drop_loop(toks):
            stopped = True
            break
    assert stopped and toks == said + phrase            # one copy kept, the loop ended
    varied = said + phrase + [4] + phrase + [5] + phrase  # repeats broken by other tokens
    assert not any(_drop_loop(varied[:i]) for i in range(1, len(varied) + 1))


@pytest.mark.slow
def test_noise_alone_gives_no_transcript(recognizer, tmp_path):
    """Line noise that the VAD passes at a low level must not become words."""
    noise = make_noise("pink", 16000 * 3, np.random.default_rng(1)) * 0.003
    text = clean_transcript(recognizer.transcribe(noise))
    assert len(words(text)) <= 2, text


class Broken:
    name = "broken"

    def transcribe(self, audio):
        raise RuntimeError("onnxruntime: out of memory")

    def transcribe_batch(self, pieces):
        raise RuntimeError("onnxruntime: out of memory")

    def cancel(self):
        pass


def test_a_failing_recognizer_costs_only_its_text(real_call):
    settings = Settings()
    asr = AsrService(settings.asr, recognizer=Broken())
    stages = Stages(asr=asr, pieces=asr, wait=True)
    session = CallSession(settings, CallMeta(source="file", call_id="x"), stages)
    pcm = (real_call[0] * 32767).astype(np.int16)
    session.feed("agent", pcm[:, 0])
    session.feed("client", pcm[:, 1])
    r = session.finish()
    assert r["segments"] and r["transcript"] == []
    assert r["asr"]["status"] == "ok" and r["asr"]["failed_segments"] > 0
    stages.close()


def test_killed_builds_leave_no_lasting_litter(tmp_path):
    import os
    import time

    from appliance.asr.model import _remove_stale_builds
    old, new = tmp_path / ".build-old", tmp_path / ".build-new"
    old.mkdir()
    new.mkdir()
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    _remove_stale_builds(tmp_path)
    assert not old.exists() and new.exists()      # a build in progress is left alone
