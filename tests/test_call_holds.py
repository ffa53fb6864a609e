"""Calls with holds, tones and key presses through the whole per-call pipeline."""

import numpy as np
import pytest

from appliance.media.session import CallMeta, CallSession, Stages
from appliance.simulate import signals
from appliance.simulate.artefacts import SPECIAL, build_artefact_call, build_special_call
from appliance.simulate.calls import degrade

from conftest import to_pcm


class Pieces:
    """A recognizer's inbox: keeps what it is offered."""

    def __init__(self) -> None:
        self.offered = []
        self.pcm = {}

    def offer(self, ref, piece, pcm) -> None:
        self.offered.append(piece)
        self.pcm[piece] = pcm


def analyse(settings, stereo: np.ndarray, chunk: int | None = None, sink=None):
    sink = sink if sink is not None else Pieces()
    session = CallSession(settings, CallMeta(source="file", call_id="c1"),
                          Stages.capture(sink))
    pcm = to_pcm(stereo)
    step = chunk or len(pcm)
    for i in range(0, len(pcm), step):
        session.feed("agent", pcm[i:i + step, 0])
        session.feed("client", pcm[i:i + step, 1])
    return session.finish(), sink.offered


def overlap(a0, a1, b0, b1):
    return max(0.0, min(a1, b1) - max(a0, b0))


@pytest.fixture(scope="module")
def artefact_call(corpus):
    stereo, truth = build_artefact_call(corpus, np.random.default_rng(61),
                                        music_kinds=signals.MUSIC_STYLES)
    audio, rate, _, _ = degrade(stereo, truth, "tel8", np.random.default_rng(62))
    import soxr
    return soxr.resample(audio, rate, 16000), truth


def test_hold_music_tones_and_keys_in_the_call_json(settings, artefact_call):
    audio, truth = artefact_call
    result, pieces = analyse(settings, audio)
    (_, hs, he), = truth.holds
    assert len(result["holds"]) == 1
    h = result["holds"][0]
    assert h["party"] == "agent" and h["by"] == ["music"]
    assert overlap(h["start"], h["end"], hs, he) >= 0.9 * (he - hs)
    assert result["totals"]["hold_s"] == pytest.approx(he - hs, abs=1.5)
    # the hold is not dead air, and no inner silence reaches into it
    assert not any(overlap(s["start"], s["end"], hs, he) > 0 for s in result["silences"]
                   if s["position"] == "inner")
    kinds = {(e["kind"], e["party"]) for e in result["events"]}
    assert {("music", "agent"), ("dtmf", "client")} <= kinds
    dtmf = next(e for e in result["events"] if e["kind"] == "dtmf")
    true_keys = next(e[4] for e in truth.events if e[0] == "dtmf")
    assert dtmf["keys"] == len(true_keys) and "digits" not in dtmf
    # nothing of the music, the tones or the keys goes to the recognizer
    sounds = [(p, s, e) for _, p, s, e in truth.sounds]
    for piece in pieces:
        a, b = piece.start * 0.02, piece.end * 0.02
        hit = sum(overlap(a, b, s, e) for p, s, e in sounds if p == piece.party)
        assert hit <= 0.1 * (b - a), (piece, hit)
    assert result["asr"]["status"] == "pending" and result["asr"]["pieces"]


def test_digits_are_kept_only_when_the_setting_allows(settings, artefact_call):
    audio, truth = artefact_call
    settings.conversation.dtmf_digits = True
    result, _ = analyse(settings, audio)
    dtmf = next(e for e in result["events"] if e["kind"] == "dtmf")
    assert dtmf["digits"] == next(e[4] for e in truth.events if e[0] == "dtmf")


def test_streamed_in_chunks_the_call_json_is_the_same(settings, artefact_call):
    audio, _ = artefact_call
    whole, pieces = analyse(settings, audio)
    streamed, streamed_pieces = analyse(settings, audio, chunk=777)
    for key in ("events", "holds", "segments", "silences", "totals", "parties"):
        assert streamed[key] == whole[key], key
    key = lambda p: (p.start, p.party)  # noqa: E731
    assert sorted(streamed_pieces, key=key) == sorted(pieces, key=key)
    assert streamed["asr"]["pieces"] == whole["asr"]["pieces"]


@pytest.mark.parametrize("kind", SPECIAL)
def test_a_call_of_only_music_tones_or_silence_gives_events_and_no_speech(settings, kind):
    stereo, truth = build_special_call(kind, np.random.default_rng(71),
                                       music_kinds=signals.MUSIC_STYLES)
    result, pieces = analyse(settings, stereo)
    assert pieces == [] and result["segments"] == []
    assert result["transcript"] == [] and result["asr"]["pieces"] == []
    found = {e["kind"] for e in result["events"]}
    want = {e[0] for e in truth.events}
    assert found == want
    assert bool(result["holds"]) == (kind == "abandoned_hold")
    # completing it (no transcript to wait for) scores it without error
    stages = Stages()
    done = stages.complete(result, [], 0)
    assert done["transcript"] == []


@pytest.mark.slow
def test_the_recognizer_hears_the_conversation_and_never_the_music_or_the_tones(settings,
                                                                                artefact_call):
    """The whole pipeline with the real speech model (make test builds it)."""
    audio, truth = artefact_call
    stages = Stages.load(settings, wait=True)
    try:
        session = CallSession(settings, CallMeta(source="file", call_id="asr"), stages)
        pcm = to_pcm(audio)
        session.feed("agent", pcm[:, 0])
        session.feed("client", pcm[:, 1])
        result = session.finish()
        assert result["asr"]["status"] == "ok"
        assert result["transcript"]
        sounds = [(p, s, e) for _, p, s, e in truth.sounds]
        for line in result["transcript"]:
            hit = sum(overlap(line["start"], line["end"], s, e) for p, s, e in sounds
                      if p == line["party"])
            assert hit <= 0.1 * (line["end"] - line["start"]), line
        # a call that is only hold music: its events, and nothing to transcribe
        stereo, _ = build_special_call("abandoned_hold", np.random.default_rng(72))
        session = CallSession(settings, CallMeta(source="file", call_id="moh"), stages)
        pcm = to_pcm(stereo)
        session.feed("agent", pcm[:, 0])
        session.feed("client", pcm[:, 1])
        only_music = session.finish()
        assert only_music["transcript"] == [] and only_music["holds"]
        assert only_music["asr"]["status"] == "ok"
    finally:
        stages.close()


def test_speech_over_background_music_reaches_the_recognizer_whole(settings, corpus):
    """Speech heard over music by the second opinion goes through the same session as any
    other: its pieces arrive in time order, never overlap the detector's own, carry the
    real audio from their first frame (the session keeps it while such a segment is open),
    and the call reads the same fed 20 ms at a time or whole."""
    from test_nonspeech import over_music

    stereo, truth = over_music(corpus, "band", 18.0)
    pcm = to_pcm(stereo)
    results = {}
    for chunk in (None, 320):
        sink = Pieces()
        result, pieces = analyse(settings, stereo, chunk, sink)
        results[chunk] = result
        for party, ch in (("agent", 0), ("client", 1)):
            mine = [p for p in pieces if p.party == party]
            assert all(a.end <= b.start for a, b in zip(mine, mine[1:])), party
            for p in mine:
                assert np.array_equal(sink.pcm[p], pcm[p.start * 320: p.end * 320, ch])
        spans = [(s["start"], s["end"]) for s in result["segments"] if s["party"] == "agent"]
        heard = sum(overlap(a, b, c, d) for a, b in truth.speech["agent"] for c, d in spans)
        assert heard > 0.85 * sum(b - a for a, b in truth.speech["agent"])
    assert results[None]["segments"] == results[320]["segments"]
    assert results[None]["events"] == results[320]["events"]
