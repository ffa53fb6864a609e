"""One speech engine on a fixed set of audio, in its own process (so its peak memory is its
own): called by bench/asr.py.

    python bench/asr_engines.py ENGINE audio.npz out.json

ENGINE: ``appliance`` (the box's path: onnxruntime, batched greedy decoding of the converted
Whisper base), ``sherpa`` (sherpa-onnx's Whisper with its defaults: the path the box used
before, one piece at a time) or ``faster-whisper`` (CTranslate2 int8 on the very same
model.bin, greedy, no timestamps). One thread each: CPU time per second of audio is the
cost per core.
"""

from __future__ import annotations

import json
import re
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CT2_DIR = ROOT / "bench" / "out" / "ct2-whisper-base"


def ct2_model() -> Path:
    """The CTranslate2 folder of the same weights the box converts (downloaded and checked
    against models/manifest.toml, once)."""
    if (CT2_DIR / "model.bin").exists():
        return CT2_DIR
    import shutil
    import tempfile

    from appliance.asr.model import _fetch, manifest
    source = manifest()["sources"][0]
    with tempfile.TemporaryDirectory() as tmp:
        got = _fetch(source, Path(tmp), lambda m: print(m, file=sys.stderr))
        CT2_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(got["tokenizer"], CT2_DIR / "tokenizer.json")
        shutil.copy(got["vocabulary"], CT2_DIR / Path(got["vocabulary"]).name)
        shutil.copy(Path(got["tokenizer"]).parent / "config.json", CT2_DIR / "config.json")
        shutil.move(str(got["model_bin"]), CT2_DIR / "model.bin")
    return CT2_DIR


class FasterWhisper:
    name = "faster-whisper"

    def __init__(self, threads: int) -> None:
        from faster_whisper import WhisperModel
        self.model = WhisperModel(str(ct2_model()), device="cpu", compute_type="int8",
                                  cpu_threads=threads, num_workers=1)

    def cancel(self) -> None:
        """Not stopped midway (the benchmark runs it to the end)."""

    def transcribe_batch(self, pieces: list[np.ndarray]) -> list[str]:
        out = []
        for p in pieces:
            segments, _ = self.model.transcribe(p, language="ru", beam_size=1,
                                                without_timestamps=True, vad_filter=False,
                                                condition_on_previous_text=False)
            out.append("".join(s.text for s in segments).strip())
        return out


def make(engine: str):
    from appliance.asr.model import find_model
    from appliance.asr.recognizer import WhisperRecognizer, load_recognizer
    if engine == "appliance":
        return load_recognizer(find_model(), "ru", "int8", threads=1)
    if engine == "sherpa":
        return WhisperRecognizer(find_model(), "ru", "int8", threads=1)
    if engine == "faster-whisper":
        return FasterWhisper(threads=1)
    raise SystemExit(f"unknown engine {engine}")


def run_set(rec, audio: list[np.ndarray], batch: int) -> tuple[list[str], float]:
    """Texts in input order and the CPU seconds it took; pieces of similar length go
    together in batches of ``batch``, as the box's scheduler groups them."""
    from appliance.asr.filters import clean_transcript
    order = sorted(range(len(audio)), key=lambda i: len(audio[i]))
    texts = [""] * len(audio)
    t0 = time.process_time()
    for k in range(0, len(order), batch):
        idx = order[k:k + batch]
        for i, t in zip(idx, rec.transcribe_batch([audio[i] for i in idx])):
            texts[i] = clean_transcript(t)
    return texts, time.process_time() - t0


def main() -> int:
    engine, data, out = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    sets = np.load(data, allow_pickle=False)
    rec = make(engine)
    batch = 8 if engine == "appliance" else 1
    result = {}
    for name in ("clean", "telephone", "calls"):
        audio = [sets[k] for k in sorted((k for k in sets.files if k.startswith(name + "_")),
                                         key=lambda k: int(k.split("_")[1]))]
        texts, cpu = run_set(rec, audio, batch)
        result[name] = {"texts": texts, "cpu_s": cpu,
                        "audio_s": sum(len(a) for a in audio) / 16000}
    result["peak_rss_mb"] = int(re.search(r"VmHWM:\s+(\d+)",
                                          open("/proc/self/status").read()).group(1)) / 1024
    out.write_text(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
