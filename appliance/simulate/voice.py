"""Spoken lines for scripted calls, from real recordings of a Russian speaker.

Festival's ``msu_ru_nsh_clunits`` voice (Debian's festvox-ru) is a unit-selection voice: it
says a line by cutting and joining pieces of the same 620 studio recordings the corpus in
``corpus.py`` reads, with no vocoder in between. That keeps the speech real while letting a
demo say what a sales call says (greetings, complaints, profanity), which the corpus's
literary sentences never do. Whisper transcribes these lines near verbatim.

Rendered lines are cached by text, voice and pitch, so a second demo starts at once.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

import numpy as np
import soundfile as sf
import soxr

log = logging.getLogger(__name__)

RATE = 16000
VOICE = "msu_ru_nsh_clunits"


class VoiceMissing(RuntimeError):
    """Festival or its Russian voice is not installed."""


def _key(text: str, pitch: float) -> str:
    return hashlib.sha256(f"{VOICE}\0{pitch:.3f}\0{text}".encode()).hexdigest()[:24]


def _festival_string(text: str) -> str:
    # Festival's reader ends a string at a double quote; backslashes escape.
    return text.replace("\\", " ").replace('"', "'")


def _synthesize(texts: Sequence[str], out_dir: Path) -> list[Path]:
    festival = shutil.which("festival")
    if festival is None or not (Path("/usr/share/festival/voices/russian") / VOICE).is_dir():
        raise VoiceMissing("the demo's voices need Debian's festival and festvox-ru: "
                           "`make demo` installs them (or apt-get install festival festvox-ru)")
    paths = [out_dir / f"{i}.wav" for i in range(len(texts))]
    script = [f"(voice_{VOICE})"]
    script += [f'(utt.save.wave (utt.synth (Utterance Text "{_festival_string(t)}")) '
               f'"{p}" \'riff)' for t, p in zip(texts, paths)]
    batch = out_dir / "lines.scm"
    batch.write_text("\n".join(script) + "\n", encoding="utf-8")
    done = subprocess.run([festival, "--batch", str(batch)], capture_output=True, text=True,
                          timeout=600)
    missing = [p for p in paths if not p.exists()]
    if done.returncode != 0 or missing:
        raise VoiceMissing(f"festival failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return paths


def trim(x: np.ndarray, below_peak_db: float = 40.0, margin_s: float = 0.04) -> np.ndarray:
    """Cut leading and trailing silence: samples more than ``below_peak_db`` under the peak."""
    peak = float(np.max(np.abs(x))) if len(x) else 0.0
    if peak == 0.0:
        return x[:0]
    loud = np.flatnonzero(np.abs(x) > peak * 10 ** (-below_peak_db / 20))
    margin = int(margin_s * RATE)
    return x[max(0, loud[0] - margin): loud[-1] + margin + 1]


def shift_pitch(x: np.ndarray, factor: float) -> np.ndarray:
    """Raise (factor > 1) or lower the voice by playing it faster or slower: a second,
    distinct speaker from the same recordings."""
    if abs(factor - 1.0) < 1e-3:
        return x
    return soxr.resample(x, RATE, RATE / factor).astype(np.float32)


def render(lines: Sequence[tuple[str, float]], cache_dir: Path) -> list[np.ndarray]:
    """16 kHz float32 audio for each ``(text, pitch)``, trimmed; cached in ``cache_dir``."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    keys = [_key(text, pitch) for text, pitch in lines]
    todo = sorted({k: (t, p) for k, (t, p) in zip(keys, lines)
                   if not (cache_dir / f"{k}.wav").exists()}.items())
    if todo:
        log.info("rendering demo lines", extra={"lines": len(todo)})
        with tempfile.TemporaryDirectory(dir=cache_dir) as tmp:
            raw = _synthesize([t for _, (t, _) in todo], Path(tmp))
            for (key, (_, pitch)), path in zip(todo, raw):
                x, rate = sf.read(str(path), dtype="float32")
                if rate != RATE:
                    x = soxr.resample(x, rate, RATE).astype(np.float32)
                x = shift_pitch(trim(x), pitch)
                part = cache_dir / f"{key}.part.wav"
                sf.write(str(part), x, RATE, subtype="PCM_16")
                part.replace(cache_dir / f"{key}.wav")
    return [sf.read(str(cache_dir / f"{k}.wav"), dtype="float32")[0] for k in keys]
