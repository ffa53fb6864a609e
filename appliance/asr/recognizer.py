"""The recognizer behind a small interface, so a streaming model can replace Whisper."""

from __future__ import annotations

from typing import Protocol

import numpy as np

from .cancelled import Cancelled
from .model import ModelFiles

SAMPLE_RATE = 16000


class Recognizer(Protocol):
    """Turns speech pieces (16 kHz float32 mono) into text."""

    name: str

    def transcribe(self, audio: np.ndarray) -> str: ...

    def transcribe_batch(self, pieces: list[np.ndarray]) -> list[str]: ...

    def cancel(self) -> None:
        """Make decoding in progress (and any later) raise ``Cancelled`` soon."""


def load_recognizer(model: ModelFiles, language: str, precision: str, threads: int) -> Recognizer:
    """The box's recognizer: Whisper on onnxruntime with batched decoding (``whisper.py``);
    sherpa-onnx for ``asr.precision = fp32`` (its fp32 files)."""
    if precision == "int8":
        from .whisper import WhisperBatch

        return WhisperBatch(model, language, threads=threads)
    return WhisperRecognizer(model, language, precision, threads=threads)


class WhisperRecognizer:
    """sherpa-onnx's offline Whisper (its defaults: 10 s of padding, one segment at a time).
    Thread-safe: one instance serves every worker."""

    def __init__(self, model: ModelFiles, language: str = "ru", precision: str = "int8",
                 threads: int = 1) -> None:
        import sherpa_onnx

        sfx = ".int8.onnx" if precision == "int8" else ".onnx"
        self.name = f"whisper-base-{precision}"
        self.language = language
        self._cancelled = False
        self._rec = sherpa_onnx.OfflineRecognizer.from_whisper(
            encoder=str(model.file(f"encoder{sfx}")),
            decoder=str(model.file(f"decoder{sfx}")),
            tokens=str(model.file("tokens.txt")),
            language="" if language == "auto" else language,
            task="transcribe",
            num_threads=threads,
        )

    def transcribe_batch(self, pieces: list[np.ndarray]) -> list[str]:
        out = []
        for p in pieces:                                # Whisper in sherpa: one at a time
            if self._cancelled:
                raise Cancelled
            out.append(self.transcribe(p))
        return out

    def cancel(self) -> None:
        self._cancelled = True

    def transcribe(self, audio: np.ndarray) -> str:
        stream = self._rec.create_stream()
        stream.accept_waveform(SAMPLE_RATE, np.ascontiguousarray(audio, dtype=np.float32))
        self._rec.decode_stream(stream)
        return stream.result.text.strip()
