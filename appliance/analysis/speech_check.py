"""A second opinion on what the detector took for music: is someone speaking over it?

The native detector tells music by its notes, beat and activity over a second. Speech over
quiet background music (a radio where the client calls from) carries all of those, and the
whole second went to music: with music 25 dB under the voice the detector heard about half
of the speech (bench/background.py). Silero VAD, a small network trained to hear a voice
over music and noise, runs on those frames only (with half a second before them for its
state to settle): where it hears speech, the frames are speech again.

The network is the ONNX file shipped in the ``silero-vad`` wheel (MIT licence; installed
without its dependencies, which pull torch), checked against its known hash and run by
onnxruntime on one thread. Without it the detector works as before and the box says why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SILERO_VERSION = "6.2.3"
SILERO_SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"
WINDOW = 512            # samples per decision at 16 kHz (32 ms)
CONTEXT = 64            # samples of the previous window the network sees with each
THRESHOLD = 0.5         # Silero's probability above which a window is speech

_lock = threading.Lock()
_model: "SpeechModel | None" = None
_unavailable: str | None = None


def silero_path() -> Path | None:
    """The installed silero-vad wheel's 16 kHz model, if any: the same network and answers as
    its general one, in a third less memory for onnxruntime (19 MB against 28)."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx"


class SpeechModel:
    """Silero VAD through onnxruntime; ``run`` is thread-safe (the state travels with it)."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort

        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != SILERO_SHA256:
            raise ValueError(f"{path} is not silero-vad {SILERO_VERSION}'s model (sha256 "
                             f"{digest[:12]}...); reinstall it: pip install --no-deps "
                             f"silero-vad=={SILERO_VERSION}")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.enable_cpu_mem_arena = False   # each capture process that met music holds one
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        self._sr = np.array(16000, dtype=np.int64)

    def run(self, window: np.ndarray, state: np.ndarray) -> tuple[float, np.ndarray]:
        """Speech probability of one window (CONTEXT + WINDOW float32 samples) and the new
        recurrent state."""
        out, state = self.session.run(None, {"input": window[None, :], "state": state,
                                             "sr": self._sr})
        return float(out[0, 0]), state


def speech_model() -> SpeechModel | None:
    """The process's one model, loaded on first use; None (said once in the log) when the
    silero-vad wheel is missing or altered."""
    global _model, _unavailable
    with _lock:
        if _model is None and _unavailable is None:
            path = silero_path()
            try:
                if path is None or not path.is_file():
                    raise FileNotFoundError(
                        f"silero-vad is not installed: pip install --no-deps "
                        f"silero-vad=={SILERO_VERSION} (`make install` does)")
                _model = SpeechModel(path)
            except Exception as exc:    # noqa: BLE001 - onnxruntime's errors are plain Exceptions
                _unavailable = str(exc)
                log.warning("no second opinion on music: speech over background music may be "
                            "taken for music", extra={"reason": _unavailable})
        return _model


class MusicSpeechCheck:
    """One party's frames taken for music, asked of Silero in order as they are decided.

    A stretch of music frames is read from half a second before its first frame, in
    windows counted from there, so the answer for a frame depends only on the audio and on
    where its stretch starts: never on how the audio was chunked."""

    LEAD_FRAMES = 25

    def __init__(self, model: SpeechModel, samples_per_frame: int) -> None:
        self.model = model
        self.spf = samples_per_frame
        self._pos: int | None = None        # next sample to read, inside a stretch of music
        self._state = np.zeros((2, 1, 128), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._read = 0                      # windows read since the stretch began
        self._last = 0.0                    # the probability of the last of them
        self._origin = 0                    # first sample of the stretch's first window

    @property
    def oldest_needed(self) -> int | None:
        """First sample a stretch in progress still needs, or None."""
        return self._pos

    def start_frame(self, frame: int) -> int:
        """First frame whose audio a stretch starting at ``frame`` reads."""
        return max(0, frame - self.LEAD_FRAMES)

    def frames(self, music: np.ndarray, first: int,
               audio: Callable[[int, int], np.ndarray]) -> np.ndarray:
        """For decided frames ``first, first + 1, ...`` (``music``: whether each was taken
        for music), whether Silero hears speech in each music frame. ``audio(a, b)`` gives
        samples [a, b) (silence where there are none)."""
        out = np.zeros(len(music), bool)
        if not music.any():
            if len(music):          # a frame that is not music ends the stretch
                self._pos = None
            return out
        for i, is_music in enumerate(music):
            f = first + i
            if not is_music:
                self._pos = None
                continue
            if self._pos is None:
                self._origin = self._pos = self.start_frame(f) * self.spf
                self._state = np.zeros((2, 1, 128), np.float32)
                self._context = np.zeros(CONTEXT, np.float32)
                self._read = 0
            # the window holding the frame's centre (frames only move forward)
            k = (f * self.spf + self.spf // 2 - self._origin) // WINDOW
            while self._read <= k:
                x = audio(self._pos, self._pos + WINDOW).astype(np.float32) / 32768.0
                window = np.concatenate([self._context, x])
                self._last, self._state = self.model.run(window, self._state)
                self._context = window[-CONTEXT:]
                self._read += 1
                self._pos += WINDOW
            out[i] = self._last >= THRESHOLD
        return out
