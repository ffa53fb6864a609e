"""Speed of the per-party DSP against the alternatives, in one run, as ratios.

    python bench/speed.py [--minutes 10]

One party's audio (real speech calls from appliance.simulate, telephone variant decoded to
16 kHz) is timed in CPU seconds (process_time, one thread) through:
- appliance, one party: the native detector + segmenter, whole stream in one call (with
  the tone, DTMF and music classes, as the product runs it, and without them);
- appliance, call: both parties through the CallDetector (crosstalk compensation), halved;
- appliance, live: the call fed 100 ms at a time through CallStream (the least a live
  call's worker feeds, appliance/media/live.py), halved;
- webrtcvad (mode 3), per 20 ms frame;
- Silero VAD (ONNX, onnxruntime, 1 thread), per 32 ms window; and the same network as the
  box runs it for its second opinion on music (numpy, the windows of a drain in one batch);
- call-ai-metrics on the two channels (whole-file analyser), halved per party;
- numpy: a vectorised frame-energy VAD with a percentile threshold (no streaming).
Reports audio seconds per CPU second (x real time), microseconds per 20 ms frame, and the
ratio to the appliance. Saves a Markdown table to bench/out/speed.md.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import decode, make_artefact_calls, make_calls, publish  # noqa: E402
from peers import SileroVad, call_ai_metrics_call, webrtc_flags  # noqa: E402

from appliance.analysis.dsp import CallStream  # noqa: E402
from appliance.analysis.speech_check import CONTEXT, HIDDEN, WINDOW, speech_model  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.media.live import MIN_FEED_S  # noqa: E402
from appliance.native import CallDetector, PartyDetector  # noqa: E402


LIVE_CHUNK = int(MIN_FEED_S * 16000)
NUMPY_SILERO = "Silero VAD network in numpy (the box's second opinion; 50 windows a batch)"


def numpy_energy_vad(pcm: np.ndarray) -> np.ndarray:
    frames = pcm[: len(pcm) // 320 * 320].astype(np.float32).reshape(-1, 320)
    db = 10 * np.log10(np.mean(frames ** 2, axis=1) + 1e-9)
    return db > np.percentile(db, 10) + 10


def best_times(cases: list[tuple[str, object, tuple, int]], rounds: int) -> dict[str, float]:
    """CPU seconds per case: best of ``rounds`` runs, taken round-robin so that a burst of
    load on the machine hits every method alike. A case with repeat 1 runs once."""
    best = {name: float("inf") for name, *_ in cases}
    for r in range(rounds):
        for name, fn, args, repeat in cases:
            if r < repeat:
                t0 = time.process_time()
                fn(*args)
                best[name] = min(best[name], time.process_time() - t0)
    return best


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="audio per party to time")
    ap.add_argument("--slow-minutes", type=float, default=2.0,
                    help="audio for the slow peers (Silero, call-ai-metrics)")
    args = ap.parse_args()
    settings = Settings()
    parts_a, parts_c = [], []
    seconds = 0.0
    for paths, _truth in make_calls(12, 7):
        a, c = decode(paths["tel8_snr10"], settings)
        parts_a.append(a)
        parts_c.append(c)
        seconds += len(a) / 16000
        if seconds >= args.minutes * 60:
            break
    agent = np.concatenate(parts_a)
    client = np.concatenate(parts_c)
    while len(agent) < args.minutes * 60 * 16000:
        agent = np.concatenate([agent, agent])
        client = np.concatenate([client, client])
    n = int(args.minutes * 60 * 16000)
    agent, client = agent[:n], client[:n]
    slow = int(args.slow_minutes * 60 * 16000)

    def appliance_once(pcm):
        d = PartyDetector()
        d.process(pcm)
        d.flush()

    def appliance_vad_only(pcm):
        d = PartyDetector(classify=False)
        d.process(pcm)
        d.flush()

    def appliance_call(a, c):
        d = CallDetector()
        d.process(a, c)
        d.flush()

    def appliance_live(a, c):
        s = CallStream(settings.vad)
        for i in range(0, len(a), LIVE_CHUNK):
            s.feed("agent", a[i:i + LIVE_CHUNK])
            s.feed("client", c[i:i + LIVE_CHUNK])
        s.finish()

    silero = SileroVad()
    network = speech_model()
    if network is None:
        raise SystemExit("the silero-vad wheel is missing: make install-test")

    def silero_numpy(pcm):
        x = pcm[: len(pcm) // WINDOW * WINDOW].astype(np.float32) / 32768.0
        stream = np.concatenate([np.zeros(CONTEXT, np.float32), x])
        windows = np.lib.stride_tricks.sliding_window_view(stream, CONTEXT + WINDOW)[::WINDOW]
        for i in range(0, len(windows), 50):        # a second and a half per drain
            network.probabilities(windows[i:i + 50], np.zeros((2, 1, HIDDEN), np.float32))

    half = "(both parties / 2)"
    cases = [
        ("appliance, one party (native, whole stream)", appliance_once, (agent,), 7),
        ("appliance, one party, speech only (no tone/DTMF/music classes)", appliance_vad_only,
         (agent,), 7),
        (f"appliance, call with crosstalk compensation {half}", appliance_call, (agent, client), 7),
        (f"appliance, live call: 100 ms chunks via CallStream {half}", appliance_live,
         (agent, client), 3),
        ("webrtcvad mode 3 (20 ms frames)", webrtc_flags, (agent, 3), 7),
        ("Silero VAD (onnxruntime, 1 thread)", silero.flags, (agent[:slow],), 1),
        (NUMPY_SILERO, silero_numpy, (agent[:slow],), 3),
        (f"call-ai-metrics {half}", call_ai_metrics_call, (agent[:slow], client[:slow]), 1),
        ("numpy energy VAD (vectorised, not streaming)", numpy_energy_vad, (agent,), 7),
    ]
    best = best_times(cases, rounds=7)
    slow_names = {"Silero VAD (onnxruntime, 1 thread)", NUMPY_SILERO, f"call-ai-metrics {half}"}
    rows = [(name, best[name] / (2 if half in name else 1), slow if name in slow_names else n)
            for name, *_ in cases]
    base = rows[0][1] / rows[0][2]
    lines = [f"One party, {args.minutes:g} min of telephone speech at 10 dB SNR "
             f"({args.slow_minutes:g} min for Silero and call-ai-metrics); CPU time, one thread, "
             "best of 7 interleaved runs (3 for the live call, 1 for the slow peers).",
             "", "| method | x real time | us per 20 ms frame | CPU time vs appliance |",
             "|---|---|---|---|"]
    for name, cpu, samples in rows:
        per_sample = cpu / samples
        lines.append(f"| {name} | {1 / (per_sample * 16000):,.0f} | {per_sample * 320 * 1e6:.1f} "
                     f"| {per_sample / base:.2f}x |")
    lines += hold_costs(settings)
    publish("speed", "\n".join(lines))
    return 0


def hold_costs(settings: Settings) -> list[str]:
    """The call analysis (CallStream) on calls with holds, with and without the second
    opinion on music (Silero on the frames taken for music)."""
    calls = [decode(paths["tel8"], settings) for name, paths, _ in make_artefact_calls(8, 7)
             if name.startswith("call")]
    seconds = sum(len(a) for a, _ in calls) / 16000
    alone = settings.model_copy(deep=True)
    alone.vad.music_second_opinion = False

    def analyse(s: Settings, chunk: int) -> None:
        for a, c in calls:
            stream = CallStream(s.vad)
            for i in range(0, len(a), chunk):
                stream.feed("agent", a[i:i + chunk])
                stream.feed("client", c[i:i + chunk])
            stream.finish()

    whole = max(len(a) for a, _ in calls)
    cases = [(f"{name} {how}", analyse, (s, chunk), 3)
             for how, chunk in (("whole", whole), ("live", LIVE_CHUNK))
             for name, s in (("on", settings), ("off", alone))]
    best = best_times(cases, 3)
    out = ["", f"Calls with holds (bench/accuracy.py's 8 artefact calls, telephone variant, "
           f"{seconds / 60:.1f} min, a sixth of it hold music): the call analysis (CallStream, "
           "both parties / 2), fed whole and 100 ms at a time (live), best of 3.", "",
           "| call analysis | fed | x real time per party | CPU time vs without |",
           "|---|---|---|---|"]
    for how in ("whole", "live"):
        for name, label in (("off", "without the second opinion on music"),
                            ("on", "with it (as shipped)")):
            t = best[f"{name} {how}"]
            out.append(f"| {label} | {how} | {2 * seconds / t:,.0f} | "
                       f"{t / best[f'off {how}']:.2f}x |")
    return out


if __name__ == "__main__":
    sys.exit(main())
