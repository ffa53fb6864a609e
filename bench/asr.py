"""Speech recognition and tagging: accuracy, speed and memory, in one run.

    python bench/asr.py [--utterances 40]

- WER on a fixed subset of festvox-ru (every 15th recording) at 16 kHz and as telephone
  audio (300-3400 Hz, 8 kHz G.711 A-law), int8 and fp32, with the real-time factor
  (one segment at a time, 2 threads).
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
from appliance.asr.filters import clean_transcript  # noqa: E402
from appliance.asr.model import find_model  # noqa: E402
from appliance.asr.recognizer import WhisperRecognizer  # noqa: E402
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


def wer_table(utts, model, lines: list[str]) -> None:
    lines += ["| audio | precision | WER | real-time factor |", "|---|---|---|---|"]
    for precision in ("int8", "fp32"):
        rec = WhisperRecognizer(model, "ru", precision, threads=2)
        for cond, fn in (("16 kHz", lambda x: x), ("telephone 8 kHz A-law", telephone)):
            errs = n = 0
            audio_s = cpu = 0.0
            for u in utts:
                x = fn(u.audio)
                t0 = time.perf_counter()
                hyp = clean_transcript(rec.transcribe(x))
                cpu += time.perf_counter() - t0
                audio_s += len(x) / 16000
                ref = words(u.text)
                errs += edits(ref, words(hyp))
                n += len(ref)
            lines.append(f"| {cond} | {precision} | {100 * errs / n:.1f} % | {cpu / audio_s:.3f} |")
        del rec


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
    wer_table(subset, model, lines)
    stages = Stages.load(settings)
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
