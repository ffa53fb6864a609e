"""The alternatives the appliance's DSP is measured against, behind one interface.

Each peer turns one party's 16 kHz int16 audio into speech segments (20 ms frames). The
frame-level VADs (webrtcvad, Silero) go through the appliance's own segmenter with the same
settings, so a comparison measures the voice detector itself. call-ai-metrics is a whole
call analyser: its own segments and interruptions are used as it reports them.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any, Callable

import numpy as np

from appliance.analysis.dsp import CallStream, detector_params, make_detector
from appliance.config import Settings
from appliance.core.frames import FRAME_S
from appliance.native import Segmenter

RATE = 16000
FRAME = 320

Segments = list[tuple[int, int]]


def segment_decisions(flags: np.ndarray, settings: Settings) -> Segments:
    """Frame decisions through the appliance's segmenter (same onset/hangover/min length)."""
    p = detector_params(settings.vad)          # the very conversions the appliance uses
    seg = Segmenter(**{k: p[k] for k in ("onset_frames", "hangover_frames",
                                          "min_speech_frames", "tail_frames")})
    seg.push_many(np.ascontiguousarray(flags, dtype=np.uint8))
    seg.flush()
    return seg.take_segments()


def appliance_vad(pcm: np.ndarray, settings: Settings) -> Segments:
    """The appliance's detector on one party alone (no crosstalk compensation)."""
    d = make_detector(settings.vad)
    d.process(np.ascontiguousarray(pcm, dtype=np.int16))
    d.flush()
    return d.take_segments()


def appliance_call(agent: np.ndarray, client: np.ndarray, settings: Settings) -> dict[str, Segments]:
    """The appliance's call detector: both parties, with crosstalk compensation."""
    stream = CallStream(settings.vad)
    stream.feed("agent", agent)
    stream.feed("client", client)
    stream.finish()
    return dict(stream.segments)


def webrtc_flags(pcm: np.ndarray, mode: int) -> np.ndarray:
    import webrtcvad

    vad = webrtcvad.Vad(mode)
    raw = pcm.astype("<i2").tobytes()
    n = len(pcm) // FRAME
    return np.array([vad.is_speech(raw[i * FRAME * 2:(i + 1) * FRAME * 2], RATE)
                     for i in range(n)], dtype=np.uint8)


class SileroVad:
    """Silero VAD (the ONNX file shipped in the silero-vad wheel) through onnxruntime."""

    WINDOW, CONTEXT = 512, 64

    def __init__(self, threshold: float = 0.5) -> None:
        import onnxruntime as ort

        spec = importlib.util.find_spec("silero_vad")
        if spec is None or spec.origin is None:
            raise RuntimeError("install silero-vad==6.2.3 with --no-deps for this benchmark")
        path = os.path.join(os.path.dirname(spec.origin), "data", "silero_vad.onnx")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        self.threshold = threshold

    def probabilities(self, pcm: np.ndarray) -> np.ndarray:
        x = pcm.astype(np.float32) / 32768.0
        state = np.zeros((2, 1, 128), np.float32)
        context = np.zeros((1, self.CONTEXT), np.float32)
        sr = np.array(RATE, dtype=np.int64)
        n = len(x) // self.WINDOW
        probs = np.zeros(n, np.float32)
        for i in range(n):
            chunk = x[i * self.WINDOW:(i + 1) * self.WINDOW][None, :]
            inp = np.concatenate([context, chunk], axis=1)
            out, state = self.session.run(None, {"input": inp, "state": state, "sr": sr})
            context = inp[:, -self.CONTEXT:]
            probs[i] = out[0, 0]
        return probs

    def flags(self, pcm: np.ndarray) -> np.ndarray:
        """Per 20 ms frame: the decision of the 32 ms window holding the frame's centre."""
        probs = self.probabilities(pcm)
        n = len(pcm) // FRAME
        centres = (np.arange(n) * FRAME + FRAME // 2) // self.WINDOW
        centres = np.minimum(centres, max(0, len(probs) - 1))
        return (probs[centres] >= self.threshold).astype(np.uint8) if len(probs) else np.zeros(n, np.uint8)


def silero_checked(segs: dict[str, Segments], audio: dict[str, np.ndarray], silero: SileroVad,
                   min_share: float = 0.2, lead_s: float = 0.3) -> dict[str, Segments]:
    """The appliance's segments with Silero as a second opinion: a segment stays only if
    Silero hears speech in at least ``min_share`` of its 32 ms windows. Silero reads each
    segment alone, with ``lead_s`` of audio before it to settle its state, so its cost
    follows the speech detected, not the call's length."""
    lead = int(lead_s * RATE)
    out: dict[str, Segments] = {}
    for party, found in segs.items():
        pcm = audio[party]
        kept = []
        for s, e in found:
            a = max(0, s * FRAME - lead)
            probs = silero.probabilities(pcm[a:e * FRAME])
            own = probs[(s * FRAME - a) // silero.WINDOW:]
            if len(own) and float((own >= silero.threshold).mean()) >= min_share:
                kept.append((s, e))
        out[party] = kept
    return out


def call_ai_metrics_call(agent: np.ndarray, client: np.ndarray) -> dict[str, Any]:
    """call-ai-metrics on the two channels: its segments (as frames) and interruptions."""
    from call_ai_metrics import analyze

    report = analyze([agent.astype(np.float32) / 32768.0, client.astype(np.float32) / 32768.0],
                     sample_rate=RATE, speakers=["agent", "client"])
    segs: dict[str, Segments] = {"agent": [], "client": []}
    for s in report.segments:
        segs[s.speaker].append((int(round(s.start_s / FRAME_S)), int(round(s.end_s / FRAME_S))))
    return {
        "segments": segs,
        "interruptions": [(i.by, i.time_s) for i in report.interruption_events],
        "talk_share": {name: st.talk_share for name, st in report.speakers.items()},
    }


def frame_vads(settings: Settings) -> dict[str, Callable[[np.ndarray], Segments]]:
    """Per-party segmenters by name, for the accuracy and speed benchmarks."""
    silero = SileroVad()
    return {
        "webrtcvad-2": lambda pcm: segment_decisions(webrtc_flags(pcm, 2), settings),
        "webrtcvad-3": lambda pcm: segment_decisions(webrtc_flags(pcm, 3), settings),
        "silero": lambda pcm: segment_decisions(silero.flags(pcm), settings),
    }
