"""The box's one recognizer: pieces, scheduling, bounded memory, pending calls, the link."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import soundfile as sf

from appliance.asr import link
from appliance.asr.cancelled import Cancelled
from appliance.asr.pending import PendingCalls
from appliance.asr.pieces import PieceCutter, PieceSpec, cut
from appliance.asr.service import STALE_LIVE_S, AsrService
from appliance.config import AsrSettings
from appliance.media.session import CallMeta, CallSession, Stages
from appliance.sources.files import call_audio, read_pieces
from appliance.store.calls import CallStore
from appliance.store.ingest import Ingester
from conftest import to_pcm
from waiting import Heard, wait_for


class Parrot:
    """A recognizer that says how many samples it got; ``gate`` holds it back."""

    name = "parrot"

    def __init__(self, text: str | None = None) -> None:
        self.text = text
        self.calls: list[int] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Semaphore(0)
        self.cancelled = False

    def transcribe_batch(self, pieces: list[np.ndarray]) -> list[str]:
        return [self.transcribe(p) for p in pieces]

    def cancel(self) -> None:
        self.cancelled = True
        self.gate.set()

    def transcribe(self, audio: np.ndarray) -> str:
        self.entered.release()
        self.gate.wait(30)
        if self.cancelled:
            raise Cancelled
        self.calls.append(len(audio))
        return self.text if self.text is not None else f"n{len(audio)}"


class Sink:
    def __init__(self) -> None:
        self.got: list[tuple[str, PieceSpec, int]] = []

    def offer(self, ref, piece, pcm):
        self.got.append((ref, piece, len(pcm)))


def fake_audio(quiet_party=None):
    def audio(party, a, b):
        level = -70.0 if party == quiet_party else -20.0
        return np.zeros((b - a) * 320, np.int16), np.full(b - a, level, np.float32)
    return audio


def spec(start, end, party="agent"):
    return PieceSpec(party, start, end)


def pcm_for(s: PieceSpec) -> np.ndarray:
    return np.zeros((s.end - s.start) * 320, np.int16)


# --- the cutter ---------------------------------------------------------------------------

def test_quiet_and_short_speech_is_not_sent_and_long_speech_is_cut():
    sink = Sink()
    cutter = PieceCutter(AsrSettings(min_piece_s=0.3), fake_audio(quiet_party="client"), sink, "c1")
    cutter.add("agent", 0, 60 * 50)                   # 60 s of speech
    cutter.add("client", 0, 100)                      # quiet
    cutter.add("agent", 5000, 5010)                   # 0.2 s: a click or an "mm"
    pieces = cutter.finish()
    assert [p.party for p in pieces] == ["agent"] * 3
    assert all(p.seconds <= 25.0 for p in pieces)
    assert pieces[0].start == 0 and pieces[-1].end == 3000
    assert [(g[1], g[2]) for g in sink.got] == [(p, (p.end - p.start) * 320) for p in pieces]


def test_close_segments_are_sent_together_with_the_pause():
    sink = Sink()
    cutter = PieceCutter(AsrSettings(), fake_audio(), sink, "c1")
    cutter.add("agent", 0, 100)
    cutter.tick(190, {"agent": 130})                  # the next segment (from 130) is open
    cutter.add("agent", 130, 200)                     # 0.6 s pause: same piece
    cutter.tick(205, {"agent": None})
    assert sink.got == []                             # a segment may still join
    cutter.add("agent", 300, 400)                     # 2 s later: a new piece
    cutter.tick(500, {"agent": None})
    assert [g[1] for g in sink.got] == [spec(0, 200), spec(300, 400)]
    assert cutter.finish() == [spec(0, 200), spec(300, 400)]


def test_cuts_at_the_quietest_frame():
    levels = np.zeros(3000, np.float32)
    levels[2000] = -90
    pieces = cut(100, 3100, levels, 1250)
    assert pieces[0][0] == 100 and pieces[-1][1] == 3100
    assert all(b - a <= 1250 for a, b in pieces)
    assert 2100 in [b for _, b in pieces]


@pytest.mark.parametrize("raw", [None, [], ["agent", 1], ["boss", 0, 5], ["agent", 5, 5],
                                 ["agent", "0", 5], ["agent", -1, 5]])
def test_malformed_pieces_are_refused(raw):
    with pytest.raises(ValueError):
        PieceSpec.from_list(raw)


# --- the service --------------------------------------------------------------------------

def done_collector():
    out: dict[str, tuple[list, int]] = {}
    event = threading.Event()

    def make(ref):
        def on_done(transcript, failed):
            out[ref] = (transcript, failed)
            event.set()
        return on_done
    return out, make


def test_live_pieces_are_decoded_and_the_transcript_comes_in_order():
    parrot = Parrot()
    svc = AsrService(AsrSettings(), recognizer=parrot)
    out, make = done_collector()
    b, a = spec(100, 150, "client"), spec(0, 50)
    svc.offer("c1", b, pcm_for(b))
    svc.offer("c1", a, pcm_for(a))
    svc.close("c1", [a, b], None, make("c1"))
    assert wait_for(lambda: "c1" in out, 10)
    transcript, failed = out["c1"]
    assert failed == 0
    assert [(t["party"], t["start"], t["text"]) for t in transcript] == [
        ("agent", 0.0, "n16000"), ("client", 2.0, "n16000")]
    assert svc.backlog()["calls"] == 0 and svc.backlog()["buffered_s"] == 0
    svc.close_service()


def test_a_stop_ends_a_decode_in_progress_and_leaves_its_call_pending():
    parrot = Parrot()
    parrot.gate.clear()                 # a decode that would take long (a busy box)
    svc = AsrService(AsrSettings(workers=1), recognizer=parrot)
    out, make = done_collector()
    a = spec(0, 50)
    svc.offer("c1", a, pcm_for(a))
    svc.close("c1", [a], None, make("c1"))
    assert parrot.entered.acquire(timeout=10)
    svc.close_service()
    assert parrot.cancelled and parrot.calls == []
    assert "c1" not in out              # no transcript written: finished at the next start


def test_closed_calls_go_first_oldest_hang_up_first():
    parrot = Parrot()
    parrot.gate.clear()
    svc = AsrService(AsrSettings(workers=1), recognizer=parrot)
    out, make = done_collector()
    blocker = spec(0, 10)
    svc.offer("blocker", blocker, pcm_for(blocker))
    assert parrot.entered.acquire(timeout=10)          # the decoder is busy
    order = []
    for ref in ("live", "second", "first"):
        s = spec(0, 50 + len(ref))
        svc.offer(ref, s, pcm_for(s))
    svc.close("first", [spec(0, 55)], None, lambda t, f: order.append("first"))
    svc.close("second", [spec(0, 56)], None, lambda t, f: order.append("second"))
    svc.close("blocker", [blocker], None, make("blocker"))
    backlog = svc.backlog()
    assert backlog["calls"] == 4 and backlog["closed"] == 3
    parrot.gate.set()
    assert wait_for(lambda: len(order) == 2 and len(parrot.calls) == 4, 10)
    assert order == ["first", "second"]              # closed before the live call's piece
    assert parrot.calls[1:3] == [55 * 320, 56 * 320] and parrot.calls[3] == 54 * 320
    svc.close_service()


def test_audio_beyond_the_buffer_is_read_back_at_close():
    parrot = Parrot()
    parrot.gate.clear()
    svc = AsrService(AsrSettings(workers=1, buffer_s=30), recognizer=parrot)
    pieces = [spec(i * 1000, i * 1000 + 500) for i in range(4)]    # 10 s each
    for p in pieces:
        svc.offer("c1", p, pcm_for(p))
    assert svc.backlog()["buffered_s"] <= 30          # the fourth was not kept
    loaded = []

    def load(specs):
        loaded.extend(specs)
        return {s: pcm_for(s) for s in specs}
    out, make = done_collector()
    svc.close("c1", pieces, load, make("c1"))
    parrot.gate.set()
    assert wait_for(lambda: "c1" in out, 10)
    assert loaded == [pieces[3]]
    assert len(out["c1"][0]) == 4 and out["c1"][1] == 0
    svc.close_service()


def test_pieces_never_offered_are_read_and_unreadable_ones_count_as_failed():
    svc = AsrService(AsrSettings(), recognizer=Parrot())
    pieces = [spec(0, 50), spec(100, 150)]
    out, make = done_collector()
    svc.close("c1", pieces, lambda specs: {specs[0]: pcm_for(specs[0])}, make("c1"))
    assert wait_for(lambda: "c1" in out, 10)
    transcript, failed = out["c1"]
    assert len(transcript) == 1 and failed == 1

    def broken(specs):
        raise OSError("recording gone")
    svc.close("c2", pieces, broken, make("c2"))
    assert wait_for(lambda: "c2" in out, 10)
    assert out["c2"] == ([], 2)
    svc.close_service()


def test_a_call_without_pieces_completes_at_once_and_unavailable_completes_empty():
    svc = AsrService(AsrSettings(), recognizer=Parrot())
    out, make = done_collector()
    svc.close("c1", [], None, make("c1"))
    assert out["c1"] == ([], 0)
    svc.close_service()
    off = AsrService(AsrSettings(enabled=False))
    off.offer("c2", spec(0, 50), pcm_for(spec(0, 50)))
    off.close("c2", [spec(0, 50)], None, make("c2"))
    assert out["c2"] == ([], 0) and off.backlog()["calls"] == 0


def test_a_dead_workers_unclosed_calls_and_stale_calls_are_dropped():
    now = [1000.0]
    parrot = Parrot()
    parrot.gate.clear()
    svc = AsrService(AsrSettings(workers=1), recognizer=parrot, clock=lambda: now[0])
    blocker = spec(0, 10)
    svc.offer("blocker", blocker, pcm_for(blocker))
    assert parrot.entered.acquire(timeout=10)
    worker, other = object(), object()
    for ref, origin in (("w1", worker), ("w2", worker), ("o1", other)):
        svc.offer(ref, spec(0, 50), pcm_for(spec(0, 50)), origin=origin)
    assert svc.forget_origin(worker) == 2
    assert svc.backlog()["calls"] == 2                # the blocker and o1
    now[0] += STALE_LIVE_S + 1
    assert svc.backlog()["calls"] == 0                # never closed: dropped as stale
    assert svc.backlog()["buffered_s"] == 0
    parrot.gate.set()
    svc.close_service()


def test_many_calls_through_the_service_leave_nothing_behind():
    svc = AsrService(AsrSettings(workers=2), recognizer=Parrot())
    out, make = done_collector()
    for i in range(300):
        ref = f"c{i}"
        pieces = [spec(0, 20 + i % 7), spec(100, 130, "client")]
        for p in pieces[: i % 3]:
            svc.offer(ref, p, pcm_for(p))
        svc.close(ref, pieces, lambda specs: {s: pcm_for(s) for s in specs}, make(ref))
    assert wait_for(lambda: len(out) == 300, 30)
    assert all(len(t) == 2 and f == 0 for t, f in out.values())
    backlog = svc.backlog()
    assert backlog["calls"] == 0 and backlog["buffered_s"] == 0 and backlog["decoded"] == 600
    svc.close_service()


# --- pending calls: written first, completed by the daemon's recognizer -------------------

def test_a_pending_call_is_completed_from_its_recording_and_stored_once(tmp_path, settings,
                                                                         real_call):
    audio, _ = real_call
    calls = settings.paths.calls
    day = calls / "2026-11-28"
    day.mkdir(parents=True)
    pcm = to_pcm(audio)
    sf.write(str(day / "u1.wav"), pcm, 16000, subtype="PCM_16")
    remote = Stages.capture(None)                     # a capture worker: nothing loaded
    session = CallSession(settings, CallMeta(source="siprec", call_id="u1",
                                             extra={"uid": "u1", "recording": "u1.wav"}), remote)
    session.cutter = PieceCutter(settings.asr, session._audio, Sink(), session.ref)
    session.feed("agent", pcm[:, 0])
    session.feed("client", pcm[:, 1])
    result = session.finish()
    assert result["asr"]["status"] == "pending" and result["asr"]["pieces"]
    assert "score" not in result and result["transcript"] == []
    path = day / "u1.json"
    path.write_text(json.dumps(result))

    paths, channel = call_audio(result, path)
    specs = [PieceSpec.from_list(p) for p in result["asr"]["pieces"]]
    got = read_pieces(paths, settings, specs, channel)
    first = specs[0]
    src = pcm[:, 0 if first.party == "agent" else 1][first.start * 320:first.end * 320]
    assert np.array_equal(got[first], src)

    parrot = Parrot()
    stages = Stages(asr=AsrService(settings.asr, recognizer=parrot), library=None)
    from appliance.analysis.scoring import load_checklist
    from appliance.analysis.tagger import load_tagger
    stages.tagger, stages.checklist = load_tagger("ru"), load_checklist("sales")
    from appliance.bus import Bus
    bus = Bus()
    events = Heard(bus, "call.stored")
    store = CallStore(settings.paths.data_dir)
    ingester = Ingester(store, calls, bus)
    pending = PendingCalls(stages.asr, stages.complete,
                           lambda r, p: lambda s: read_pieces(*call_audio(r, p)[:1], settings, s, 0),
                           ingester.ingest_file)
    ingester.on_pending = pending.adopt
    assert ingester.scan() == 1
    assert store.get("u1")["asr"] == "pending" and events.now() == []
    assert wait_for(lambda: store.get("u1")["asr"] == "ok", 20)
    final = json.loads(path.read_text())
    assert final["asr"]["status"] == "ok" and len(final["transcript"]) == len(specs)
    assert final["score"]["total"] is not None
    assert len(parrot.calls) == len(specs)
    assert len(events.now()) == 1
    assert ingester.scan() == 0 and len(events.now()) == 1   # nothing twice
    stages.close()
    store.close()


def test_a_backlog_of_pending_calls_does_not_keep_their_call_jsons_in_memory(tmp_path):
    """Thousands of calls can wait for the recognizer (it is behind for hours after a busy
    day): each waits as its pieces and where its recording is, not as its whole call JSON."""
    import gc
    import tracemalloc

    parrot = Parrot()
    parrot.gate.clear()                 # the recognizer is busy: nothing completes meanwhile
    service = AsrService(AsrSettings(), recognizer=parrot)
    service.offer("live", spec(0, 50), pcm_for(spec(0, 50)))
    assert parrot.entered.acquire(timeout=10)      # the one decoder is held in that piece
    pending = PendingCalls(service, lambda *a: None, lambda result, path: lambda specs: {},
                           lambda path: None)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            result = {"asr": {"status": "pending", "ref": f"c{i}",
                              "pieces": [["agent", 10, 60], ["client", 70, 120]]},
                      "levels": f"{i:06d}" * 8000}          # a call JSON's bulk: 48 kB
            assert pending.adopt(tmp_path / f"c{i}.json", result)
        del result
        gc.collect()
        per_call = (tracemalloc.get_traced_memory()[0] - before) / 1000
        assert service.backlog()["calls"] >= 1000
    finally:
        tracemalloc.stop()
        parrot.gate.set()
        service.close_service()
    assert per_call < 8000, f"{per_call:.0f} bytes per pending call"


def test_a_pending_call_whose_recording_cannot_be_named_completes_without_a_transcript(tmp_path):
    """A call JSON that names no recording (or names it oddly) is completed, its pieces failed,
    instead of waiting for the recognizer for ever."""
    parrot = Parrot()
    service = AsrService(AsrSettings(), recognizer=parrot)
    finished = []

    def reader(result, path):
        raise AttributeError("'NoneType' object has no attribute 'get'")
    pending = PendingCalls(service, lambda *a: None, reader, lambda path: None)
    pending._finish = lambda path, ref, transcript, failed: finished.append((ref, failed))
    try:
        for i, bad in enumerate(({"call": {"extra": None}}, {})):
            assert pending.adopt(tmp_path / f"c{i}.json", {
                **bad, "asr": {"status": "pending", "ref": f"c{i}",
                               "pieces": [["agent", 10, 60], ["client", 70, 120]]}})
        assert wait_for(lambda: len(finished) == 2, 10), finished
        assert sorted(finished) == [("c0", 2), ("c1", 2)]
        assert service.backlog()["calls"] == 0 and parrot.calls == []
    finally:
        service.close_service()


# --- the link between capture workers and the daemon --------------------------------------

def test_pieces_cross_the_link_and_bad_messages_are_refused():
    s = spec(10, 60)
    ref, piece, pcm = link.decode(link.encode("c1", s, np.arange(50 * 320, dtype=np.int16)))
    assert (ref, piece) == ("c1", s) and pcm[-1] == 50 * 320 - 1
    good = link.encode("c1", s, pcm_for(s))
    for bad in (b"", good[:10], good[:-2], b"\x00\x00\x10\x00" + good[4:],
                link.encode("", s, pcm_for(s)), link.encode("x" * 65, s, pcm_for(s))):
        with pytest.raises(ValueError):
            link.decode(bad)


def test_a_worker_sends_pieces_over_the_socket_and_a_wrong_key_gets_nothing_in():
    parrot = Parrot()
    parrot.gate.clear()
    svc = AsrService(AsrSettings(workers=1), recognizer=parrot)
    server = link.PieceServer(svc)
    client = link.PieceClient(server.address, server.key)
    intruder = link.PieceClient(server.address, b"wrong key" * 4)
    for i in range(20):
        client.offer(f"c{i}", spec(0, 50), pcm_for(spec(0, 50)))
    intruder.offer("evil", spec(0, 50), pcm_for(spec(0, 50)))
    assert wait_for(lambda: svc.backlog()["calls"] == 20, 10)
    assert client.sent == 20 and client.dropped == 0
    assert wait_for(lambda: intruder.dropped == 1, 10) and intruder.sent == 0
    client.close()                                     # the worker goes: its calls are dropped
    assert wait_for(lambda: svc.backlog()["calls"] <= 1, 10)
    parrot.gate.set()
    intruder.close()
    server.close()
    svc.close_service()


class Batcher(Parrot):
    """Records how pieces were grouped."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[list[int]] = []

    def transcribe_batch(self, pieces):
        self.batches.append([len(p) for p in pieces])
        return super().transcribe_batch(pieces)


def test_pieces_of_similar_length_are_decoded_together_across_calls():
    rec = Batcher()
    rec.gate.clear()
    svc = AsrService(AsrSettings(workers=1, batch=4), recognizer=rec)
    blocker = spec(0, 10)
    svc.offer("blocker", blocker, pcm_for(blocker))
    assert rec.entered.acquire(timeout=10)
    out, make = done_collector()
    lengths = {"a": [250, 260, 1200], "b": [255, 240, 270]}     # frames: ~5 s, and one 24 s
    for ref, ls in lengths.items():
        pieces = [spec(i * 2000, i * 2000 + n) for i, n in enumerate(ls)]
        for p in pieces:
            svc.offer(ref, p, pcm_for(p))
        svc.close(ref, pieces, None, make(ref))
    rec.gate.set()
    assert wait_for(lambda: set(out) == {"a", "b"}, 10)
    batches = rec.batches[1:]
    assert sorted(len(b) for b in batches) == [1, 1, 4]      # the 24 s piece goes alone
    assert max(max(b) / min(b) for b in batches) < 1.5
    assert all(len(out[r][0]) == 3 for r in ("a", "b"))
    svc.close_service()
