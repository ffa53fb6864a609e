"""Speech recognition on real recordings, the model's checks, and the hallucination filter."""

import json

import numpy as np
import pytest
import soxr

from appliance.asr.filters import clean_transcript
from appliance.asr.model import ModelError, find_model, verify
from appliance.asr.recognizer import WhisperRecognizer
from appliance.asr.stage import AsrService, _cut
from appliance.config import AsrSettings, Settings
from appliance.media.session import CallMeta, CallSession, Stages
from appliance.simulate.calls import make_noise
from appliance.simulate.scoring import word_errors, words


def wer(ref: str, hyp: str) -> float:
    return word_errors(words(ref), words(hyp)) / max(1, len(words(ref)))


@pytest.fixture(scope="module")
def recognizer():
    # make test builds the model first; its absence is an error here, not a skip
    return WhisperRecognizer(find_model(), "ru", "int8", threads=2)


@pytest.mark.slow
@pytest.mark.parametrize("telephone", [False, True])
def test_recognises_real_russian_recordings(recognizer, corpus, telephone):
    utts = corpus[40:46]
    errors = []
    for u in utts:
        x = u.audio
        if telephone:     # 8 kHz telephone band and back
            x = soxr.resample(soxr.resample(x, 16000, 8000), 8000, 16000)
        errors.append(wer(u.text, recognizer.transcribe(x)))
    assert np.mean(errors) < 0.35, errors


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


class Parrot:
    """A recognizer that says what it is told (to test the stage around it)."""

    name = "parrot"

    def __init__(self, text: str) -> None:
        self.text = text
        self.calls: list[int] = []

    def transcribe(self, audio: np.ndarray) -> str:
        self.calls.append(len(audio))
        return self.text


def fake_audio(quiet_party=None):
    def audio(party, a, b):
        level = -70.0 if party == quiet_party else -20.0
        return np.zeros((b - a) * 320, np.int16), np.full(b - a, level, np.float32)
    return audio


def test_quiet_segments_are_not_decoded_and_long_ones_are_cut():
    from appliance.asr.stage import CallTranscriber
    parrot = Parrot("Продолжение следует...")
    service = AsrService(AsrSettings(workers=2), recognizer=parrot)
    tr = CallTranscriber(service, fake_audio(quiet_party="client"))
    tr.add("agent", 0, 60 * 50)                   # a 60 s segment
    tr.add("client", 0, 100)
    assert tr.transcript() == []                  # stock subtitle line filtered out
    assert len(parrot.calls) == 3                 # 60 s cut into pieces <= 25 s; quiet skipped
    assert max(parrot.calls) <= 25 * 16000
    service.close()


def test_close_segments_are_recognised_together():
    from appliance.asr.stage import CallTranscriber
    parrot = Parrot("Добрый день")
    service = AsrService(AsrSettings(workers=1), recognizer=parrot)
    tr = CallTranscriber(service, fake_audio())
    tr.add("agent", 0, 100)
    tr.tick(190, {"agent": 130})                  # the next segment (from 130) is still open
    tr.add("agent", 130, 200)                     # 0.6 s pause: same chunk, pause included
    tr.tick(205, {"agent": None})
    tr.add("agent", 300, 400)                     # 2 s later: a new chunk
    tr.tick(500, {"agent": None})                 # long after: the last chunk is decoded
    lines = tr.transcript()
    assert len(parrot.calls) == 2 and sorted(parrot.calls) == [100 * 320, 200 * 320]
    assert [(t["start"], t["end"]) for t in lines] == [(0.0, 4.0), (6.0, 8.0)]
    service.close()


def test_cuts_at_the_quietest_frame():
    levels = np.zeros(3000, np.float32)
    levels[2000] = -90
    pieces = _cut(100, 3100, levels, 1250)
    assert pieces[0][0] == 100 and pieces[-1][1] == 3100
    assert all(b - a <= 1250 for a, b in pieces)
    assert (2100 in [b for _, b in pieces])


@pytest.mark.parametrize("text, expected", [
    ("[музыка]", ""),
    ("(смех) Да, конечно.", "Да, конечно."),
    ("Продолжение следует...", ""),
    ("Субтитры сделал DimaTorzok", ""),
    ("Thank you for watching!", ""),
    ("да да да да да да да", "да да"),
    ("я хотел спросить я хотел спросить я хотел спросить", "я хотел спросить я хотел спросить"),
    ("Добрый день, компания Ромашка.", "Добрый день, компания Ромашка."),
    ("Спасибо, всего доброго!", "Спасибо, всего доброго!"),
])
def test_hallucination_filter(text, expected):
    assert clean_transcript(text) == expected


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


def test_a_failing_recognizer_costs_only_its_text(real_call):
    settings = Settings()
    stages = Stages(asr=AsrService(settings.asr, recognizer=Broken()))
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
