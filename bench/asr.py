"""Speech recognition and tagging: accuracy, speed and memory, in one run.

    python bench/asr.py [--utterances 40]

- Three engines on the same Whisper base weights, each in its own process on one thread:
  this box's path (onnxruntime, batched), sherpa-onnx's defaults and faster-whisper
  (CTranslate2 int8). WER on a fixed subset of festvox-ru (every 15th recording) at 16 kHz
  and as telephone audio (300-3400 Hz, 8 kHz G.711 A-law), CPU real-time factor, per-party
  WER and CPU cost on the pieces the box's DSP cuts from three telephone calls, the
  two-party calls that 2 cores transcribe in real time, and peak RSS.
- Per-party WER over whole calls (three generated calls without interruptions or
  backchannels, so each party's reference text is exact), through the full pipeline.
- Tagger precision and recall on labelled transcript lines (bench/data/tagger_eval.toml:
  inflected forms, both parties, near-misses).
- End-to-end `appliance analyze` of a 5-minute two-party telephone call: wall time and peak
  RSS of the whole process with the model loaded.
Prints Markdown; saves bench/out/asr.md.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import OUT, publish  # noqa: E402

from appliance.analysis.tagger import load_tagger  # noqa: E402

from appliance.asr.model import find_model  # noqa: E402
from appliance.config import Settings  # noqa: E402
from appliance.media.session import Stages  # noqa: E402
from appliance.simulate.calls import build_call, degrade, telephone_band, write_call  # noqa: E402
from appliance.simulate.corpus import load_corpus  # noqa: E402
from appliance.simulate.scoring import word_errors as edits  # noqa: E402
from appliance.simulate.scoring import words  # noqa: E402
from appliance.sources.files import analyse_files  # noqa: E402


def telephone(x: np.ndarray) -> np.ndarray:
    """16 kHz -> telephone band at 8 kHz through G.711 A-law -> 16 kHz (the pipeline rate)."""
    buf = io.BytesIO()
    sf.write(buf, np.clip(telephone_band(x), -1, 1), 8000, subtype="ALAW", format="WAV")
    buf.seek(0)
    return soxr.resample(sf.read(buf, dtype="float32")[0], 8000, 16000)


ENGINES = (("appliance", "this box: onnxruntime, batched"),
           ("sherpa", "sherpa-onnx defaults (the box before)"),
           ("faster-whisper", "faster-whisper, CTranslate2 int8"))


class _Collect:
    """A piece sink that keeps each party's pieces (what the box would send to its
    recognizer)."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, int, np.ndarray]] = []

    def offer(self, ref, piece, pcm) -> None:
        self.pieces.append((piece.party, piece.start, pcm.astype(np.float32) / 32768.0))


def call_pieces(utts, settings: Settings) -> tuple[list[tuple[str, int, np.ndarray]], list[dict],
                                                    float]:
    """The speech pieces of three telephone calls, cut by the box's own DSP, with each
    party's reference text (calls without interruptions or backchannels, so it is exact)."""
    from appliance.media.session import CallMeta, CallSession
    from appliance.sources.files import iter_call_blocks, open_call_files
    d = OUT / "asr_calls"
    d.mkdir(parents=True, exist_ok=True)
    texts = {u.uid: u.text for u in utts}
    pieces, refs, seconds = [], [], 0.0
    for k in range(3):
        rng = np.random.default_rng([77, k])
        stereo, truth = build_call(utts, rng, turns=8, p_interrupt=0.0, p_backchannel=0.0)
        audio, rate, subtype, _ = degrade(stereo, truth, "tel8", np.random.default_rng([77, k, 1]))
        path = d / f"call{k}.wav"
        write_call(path, audio, rate, subtype)
        sink = _Collect()
        session = CallSession(settings, CallMeta(source="file", call_id=f"c{k}"),
                              Stages(pieces=sink, remote=True))
        for a, c in iter_call_blocks(open_call_files([path], settings), settings):
            session.feed("agent", a)
            session.feed("client", c)
        seconds += session.finish()["duration_s"]
        ref = {"agent": [], "client": []}
        for party, uid, _whole in truth.utterances:
            ref[party].append(texts[uid])
        refs.append({p: " ".join(v) for p, v in ref.items()})
        pieces += [(f"{k}:{party}", start, pcm) for party, start, pcm in sink.pieces]
    return pieces, refs, seconds


def engines_table(subset, utts, settings: Settings, lines: list[str]) -> None:
    """Every engine on the same utterances and the same pieces of whole calls."""
    clean = [u.audio for u in subset]
    tel = [telephone(u.audio) for u in subset]
    pieces, refs, call_s = call_pieces(utts, settings)
    data = OUT / "asr_engines.npz"
    arrays = {f"clean_{i}": a for i, a in enumerate(clean)}
    arrays |= {f"telephone_{i}": a for i, a in enumerate(tel)}
    arrays |= {f"calls_{i}": p[2] for i, p in enumerate(pieces)}
    np.savez(data, **{k: np.asarray(v, np.float32) for k, v in arrays.items()})
    rows = {}
    for engine, _ in ENGINES:
        out = OUT / f"asr_{engine}.json"
        subprocess.run([sys.executable, str(Path(__file__).parent / "asr_engines.py"), engine,
                        str(data), str(out)], check=True)
        rows[engine] = json.loads(out.read_text())

    def wer(hyps: list[str], refs_: list[str]) -> float:
        e = sum(edits(words(r), words(h)) for r, h in zip(refs_, hyps))
        return e / sum(len(words(r)) for r in refs_)

    lines += ["| engine (one thread each, same Whisper base weights) | WER 16 kHz | WER telephone "
              "| CPU RTF (telephone) | calls: agent / client WER | calls: CPU s per call s "
              "| two-party calls in real time on 2 cores | peak RSS |",
              "|---|---|---|---|---|---|---|---|"]
    base = {}
    for engine, label in ENGINES:
        r = rows[engine]
        party_text = {}
        for (key, _start, _), text in sorted(zip(pieces, r["calls"]["texts"]),
                                            key=lambda x: (x[0][0], x[0][1])):
            party_text.setdefault(key, []).append(text)
        per = {p: wer([" ".join(party_text.get(f"{k}:{p}", [])) for k in range(3)],
                      [ref[p] for ref in refs]) for p in ("agent", "client")}
        cost = r["calls"]["cpu_s"] / call_s          # core-seconds per second of call
        calls_rt = 2.0 / cost
        base[engine] = calls_rt
        lines.append(f"| {label} | {100 * wer(r['clean']['texts'], [u.text for u in subset]):.1f} % | "
                     f"{100 * wer(r['telephone']['texts'], [u.text for u in subset]):.1f} % | "
                     f"{r['telephone']['cpu_s'] / r['telephone']['audio_s']:.3f} | "
                     f"{100 * per['agent']:.1f} / {100 * per['client']:.1f} % | {cost:.3f} | "
                     f"{calls_rt:.1f} | {r['peak_rss_mb']:.0f} MB |")
    lines += ["", f"Throughput of this box's path: {base['appliance'] / base['sherpa']:.1f}x "
              f"sherpa-onnx's defaults and {base['appliance'] / base['faster-whisper']:.1f}x "
              f"faster-whisper on the same weights ({len(pieces)} pieces of 3 telephone calls, "
              f"{call_s:.0f} s; calls in real time on 2 cores = 2 / CPU seconds per call "
              "second)."]


def call_wer(utts, stages: Stages, settings: Settings, lines: list[str]) -> None:
    lines += ["", "| call (telephone, whole pipeline) | agent WER | client WER |", "|---|---|---|"]
    d = OUT / "asr_calls"
    d.mkdir(parents=True, exist_ok=True)
    for k in range(3):
        rng = np.random.default_rng([77, k])
        stereo, truth = build_call(utts, rng, turns=8, p_interrupt=0.0, p_backchannel=0.0)
        audio, rate, subtype, _ = degrade(stereo, truth, "tel8", np.random.default_rng([77, k, 1]))
        path = d / f"call{k}.wav"
        write_call(path, audio, rate, subtype)
        texts = {u.uid: u.text for u in utts}
        refs: dict[str, list[str]] = {"agent": [], "client": []}
        for party, uid, _whole in truth.utterances:
            refs[party].append(texts[uid])
        result = analyse_files([path], settings, stages=stages)
        row = []
        for p in ("agent", "client"):
            hyp = " ".join(t["text"] for t in result["transcript"] if t["party"] == p)
            ref = words(" ".join(refs[p]))
            row.append(f"{100 * edits(ref, words(hyp)) / len(ref):.1f} %")
        lines.append(f"| call {k} ({result['duration_s']:.0f} s) | {row[0]} | {row[1]} |")


def tagger_table(lines: list[str]) -> None:
    cases = tomllib.loads((Path(__file__).parent / "data" / "tagger_eval.toml").read_text())["case"]
    tagger = load_tagger("ru")
    tp = fp = fn = 0
    for c in cases:
        got = Counter(t["tag"] for t in tagger.tag([{"party": c["party"], "start": 0.0,
                                                     "end": 1.0, "text": c["text"]}]))
        want = Counter(c["tags"])
        tp += sum((got & want).values())
        fp += sum((got - want).values())
        fn += sum((want - got).values())
    p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
    lines += ["", f"Tagger on {len(cases)} labelled lines ({sum(len(c['tags']) for c in cases)} "
              f"expected tags, {sum(1 for c in cases if not c['tags'])} lines that must stay "
              f"untagged): precision {p:.2f}, recall {r:.2f} (tp {tp}, fp {fp}, fn {fn})."]


def end_to_end(utts, lines: list[str]) -> None:
    rng = np.random.default_rng(5)
    stereo, truth = build_call(utts, rng, turns=44)
    stereo = stereo[: 5 * 60 * 16000]
    audio, rate, subtype, _ = degrade(stereo, truth, "tel8", np.random.default_rng(6))
    path = OUT / "asr_calls" / "five_minutes.wav"
    write_call(path, audio, rate, subtype)
    code = ("import re, sys; from appliance.cli import main; rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "sys.stderr.write(f'PEAK_KB {hwm}'); sys.exit(rc)")
    for precision in ("int8", "fp32"):
        t0 = time.perf_counter()
        out = subprocess.run([sys.executable, "-c", code, "analyze", "--json", str(path)],
                             capture_output=True, text=True,
                             env={**__import__("os").environ, "APPLIANCE_ASR__PRECISION": precision})
        wall = time.perf_counter() - t0
        peak = int(out.stderr.rsplit("PEAK_KB ", 1)[1]) / 1024
        r = json.loads(out.stdout)
        lines.append(f"| {precision} | {r['duration_s']:.0f} s | {wall:.1f} s "
                     f"({r['duration_s'] / wall:.1f}x real time) | {peak:.0f} MB | "
                     f"{len(r['transcript'])} | {len(r['tags'])} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--utterances", type=int, default=40)
    args = ap.parse_args()
    utts = load_corpus()
    subset = utts[::15][: args.utterances]
    model = find_model()
    settings = Settings()
    lines = [f"festvox-ru subset: {len(subset)} recordings (every 15th), "
             f"{sum(u.duration for u in subset) / 60:.1f} min, "
             f"{sum(len(words(u.text)) for u in subset)} words; model {model.path.name}.", ""]
    engines_table(subset, utts, settings, lines)
    stages = Stages.load(settings, wait=True)
    call_wer(utts, stages, settings, lines)
    stages.close()
    tagger_table(lines)
    lines += ["", "| 5-minute call, `appliance analyze` | audio | wall time (2 cores) | peak RSS "
              "| transcript lines | tags |", "|---|---|---|---|---|---|"]
    end_to_end(utts, lines)
    publish("asr", "\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
