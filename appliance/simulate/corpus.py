"""Real Russian speech with phone-level labels: Debian's festvox-ru voice database.

620 studio recordings of one speaker (16 kHz) with transcripts (``etc/txt.done.data``) and
phone segmentations (``lab/*.lab``: end time, a colour code, phone; ``pau`` is a pause), which
give exact speech intervals for ground truth. Installed by ``tests/fetch-speech-data.sh``
(``apt-get download festvox-ru`` + ``dpkg -x``), not committed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import soundfile as sf

VOICE_SUBDIR = Path("usr/share/festival/voices/russian/msu_ru_nsh_clunits")
CORPUS_ENV = "APPLIANCE_FESTVOX_DIR"


class CorpusMissing(RuntimeError):
    """The speech corpus is not installed."""


@dataclass(frozen=True)
class Utterance:
    uid: str
    wav: Path
    text: str
    speech: tuple[tuple[float, float], ...]   # labelled speech intervals (s), pauses excluded

    @cached_property
    def audio(self) -> np.ndarray:
        data, rate = sf.read(str(self.wav), dtype="float32")
        if rate != 16000 or data.ndim != 1:
            raise ValueError(f"{self.wav}: expected 16 kHz mono")
        return data

    @property
    def duration(self) -> float:
        return len(self.audio) / 16000


def find_voice_dir() -> Path:
    """Locate the festvox-ru voice folder (env override, project cache, system install)."""
    here = Path(__file__).resolve().parents[2]
    candidates = [os.environ.get(CORPUS_ENV, ""), here / ".cache" / "festvox-ru" / VOICE_SUBDIR,
                  Path("/") / VOICE_SUBDIR]
    for c in candidates:
        if c and (Path(c) / "lab").is_dir() and (Path(c) / "wav").is_dir():
            return Path(c)
    raise CorpusMissing("festvox-ru speech data not found: run tests/fetch-speech-data.sh "
                        f"or set {CORPUS_ENV} to the msu_ru_nsh_clunits folder")


def _read_lab(path: Path) -> list[tuple[float, float]]:
    intervals: list[tuple[float, float]] = []
    prev = 0.0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) != 3:
            continue
        end, phone = float(parts[0]), parts[2]
        if phone != "pau" and end > prev:
            if intervals and abs(intervals[-1][1] - prev) < 1e-6:
                intervals[-1] = (intervals[-1][0], end)
            else:
                intervals.append((prev, end))
        prev = end
    return intervals


def load_corpus(voice_dir: Path | None = None) -> list[Utterance]:
    """All labelled utterances, sorted by id."""
    voice_dir = voice_dir or find_voice_dir()
    texts: dict[str, str] = {}
    for line in (voice_dir / "etc" / "txt.done.data").read_text(encoding="utf-8").splitlines():
        m = re.match(r'\(\s*(\S+)\s+"(.*)"\s*\)\s*$', line)
        if m:
            texts[m.group(1)] = m.group(2).replace("+", "")
    out = []
    for lab in sorted((voice_dir / "lab").glob("*.lab")):
        wav = voice_dir / "wav" / f"{lab.stem}.wav"
        if wav.exists() and lab.stem in texts:
            out.append(Utterance(lab.stem, wav, texts[lab.stem], tuple(_read_lab(lab))))
    return out
