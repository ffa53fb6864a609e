"""Whisper on onnxruntime, decoded in batches: the box's recognizer.

sherpa-onnx decodes one segment at a time with a self-attention cache of a fixed 448
positions that is copied in and out at every token, and pads every segment with 10 s of
silence: one greedy step of Whisper base took 49 ms on one core. This path runs the same
converted weights (models/convert_whisper.py also exports ``decoder_kv``: a cache that holds
only what was decoded, the logits of the last position only, the output projection in int8)
and decodes the pieces of a batch together: a step costs 13 ms for one sequence and about
5 ms per sequence for eight (bench/asr.py compares both paths and faster-whisper).

Features are Whisper's own log-mel (80 bands, 25 ms windows every 10 ms, Slaney mel), each
piece padded with ``pad_s`` of silence, as Whisper was trained on padded input.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import numpy as np

from .cancelled import Cancelled
from .model import ModelFiles

SAMPLE_RATE = 16000
N_FFT, HOP, N_MELS = 400, 160, 80
MAX_FRAMES = 3000                 # Whisper's 30 s window, in mel frames
PAD_S = 1.0                       # silence after each piece (chosen on bench/asr.py)
BATCH_AUDIO_S = 30.0              # padded audio decoded together, at most
MAX_TOKENS = 224


def mel_filters(sr: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Slaney-scale, area-normalised triangular filters (librosa's default, as in Whisper)."""
    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        f = np.asarray(f, np.float64)
        lin = f / (200.0 / 3)
        logstep = np.log(6.4) / 27.0
        return np.where(f >= 1000.0, 15.0 + np.log(np.maximum(f, 1e-10) / 1000.0) / logstep, lin)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        logstep = np.log(6.4) / 27.0
        return np.where(m >= 15.0, 1000.0 * np.exp(logstep * (m - 15.0)), m * (200.0 / 3))

    fft_f = np.linspace(0, sr / 2, 1 + n_fft // 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(0.0), hz_to_mel(sr / 2), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = mel_f[:, None] - fft_f[None, :]
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2:n_mels + 2] - mel_f[:n_mels]))[:, None]
    return weights.astype(np.float32)


_FILTERS = mel_filters()
_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)).astype(np.float32)


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper's log-mel spectrogram (80, frames) of 16 kHz float audio."""
    x = np.pad(np.asarray(audio, np.float32), N_FFT // 2, mode="reflect")
    n = 1 + (len(x) - N_FFT) // HOP
    frames = np.lib.stride_tricks.as_strided(x, (n, N_FFT), (x.strides[0] * HOP, x.strides[0]))
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=1)) ** 2
    mel = _FILTERS @ power[:-1].T                 # Whisper drops the last frame
    spec = np.log10(np.maximum(mel, 1e-10))
    spec = np.maximum(spec, spec.max() - 8.0)
    return ((spec + 4.0) / 4.0).astype(np.float32)


def _drop_loop(tokens: list[int], times: int = 3, longest: int = 24) -> bool:
    """Whether the sequence ends with a phrase of 1 to ``longest`` tokens said ``times`` times
    in a row (Whisper's decoding loop: "45 45 45 45 ...", or a whole clause over and over);
    if so, the repeats are removed, keeping one. A clause of up to 24 tokens said three
    times running is a loop, not speech: people repeat a word or two, not a sentence."""
    for n in range(1, longest + 1):
        if len(tokens) < n * times:
            break
        tail = tokens[-n:]
        if all(tokens[-(k + 1) * n: len(tokens) - k * n] == tail for k in range(1, times)):
            del tokens[-(times - 1) * n:]
            return True
    return False


@dataclass
class _Specials:
    sot: int
    eot: int
    transcribe: int
    no_timestamps: int
    languages: dict[str, int]
    blank: int

    @classmethod
    def from_meta(cls, meta: dict[str, str]) -> "_Specials":
        codes = meta["all_language_codes"].split(",")
        tokens = [int(t) for t in meta["all_language_tokens"].split(",")]
        return cls(int(meta["sot"]), int(meta["eot"]), int(meta["transcribe"]),
                   int(meta["no_timestamps"]), dict(zip(codes, tokens)),
                   int(meta.get("blank_id", 220)))


class WhisperBatch:
    """Transcribes lists of pieces (16 kHz float32) with onnxruntime; thread-safe."""

    def __init__(self, model: ModelFiles, language: str = "ru", threads: int = 1,
                 pad_s: float = PAD_S) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        # Every step has new shapes (the cache grows, batches shrink): onnxruntime's arena
        # would keep a block per shape it ever saw (1.2 GB after a few hundred pieces).
        opts.enable_cpu_mem_arena = False
        opts.enable_mem_pattern = False
        # Idle decoding threads sleep instead of spinning: a spinning pool keeps both cores
        # busy between the decoder's small steps, and live capture shares those cores.
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.encoder = ort.InferenceSession(str(model.file("encoder.int8.onnx")), opts,
                                            providers=["CPUExecutionProvider"])
        self.decoder = ort.InferenceSession(str(model.file("decoder_kv.int8.onnx")), opts,
                                            providers=["CPUExecutionProvider"])
        meta = self.encoder.get_modelmeta().custom_metadata_map
        self.sp = _Specials.from_meta(meta)
        self.n_layers, self.n_state = int(meta["n_text_layer"]), int(meta["n_text_state"])
        self.heads = int(meta["n_text_head"])
        self.language = language
        self.pad_s = pad_s
        self.name = "whisper-base-int8-batched"
        self._cancelled = False
        self.vocab = self._tokens(model.file("tokens.txt"))
        n_vocab = int(meta["n_vocab"])
        # never emitted: every special token after <|endoftext|> (languages, tasks, timestamps)
        self._suppress = np.zeros(n_vocab, np.float32)
        self._suppress[self.sp.eot + 1:] = -np.inf
        self._first = self._suppress.copy()
        self._first[[self.sp.eot, self.sp.blank]] = -np.inf     # no empty transcript

    @staticmethod
    def _tokens(path: Any) -> dict[int, bytes]:
        out = {}
        for line in open(path, encoding="utf-8"):
            b64, _, idx = line.rstrip("\n").rpartition(" ")
            if b64:
                out[int(idx)] = base64.b64decode(b64)
        return out

    def transcribe(self, audio: np.ndarray) -> str:
        return self.transcribe_batch([audio])[0]

    def cancel(self) -> None:
        """Stop between the encoder's pieces and the decoder's steps: a batch of 30 s of
        audio takes seconds on an idle box and can take minutes on a busy one, and a
        service stop must not wait for it (the call stays pending on disk)."""
        self._cancelled = True

    def transcribe_batch(self, pieces: list[np.ndarray]) -> list[str]:
        """Texts of pieces decoded together (each piece at most ~29 s). A batch holds at most
        ``BATCH_AUDIO_S`` of padded audio: the cross-attention keys and values of a batch take
        about 10 MB per second of audio."""
        out: list[str] = []
        start = 0
        while start < len(pieces):
            end = start + 1
            while end < len(pieces) and (end + 1 - start) * max(
                    len(p) for p in pieces[start:end + 1]) <= BATCH_AUDIO_S * SAMPLE_RATE:
                end += 1
            out += self._decode(pieces[start:end])
            start = end
        return out

    def _decode(self, pieces: list[np.ndarray]) -> list[str]:
        if not pieces:
            return []
        longest = max(len(p) for p in pieces)
        length = min(longest + int(self.pad_s * SAMPLE_RATE), (MAX_FRAMES - 1) * HOP)
        ck = cv = None
        for i, p in enumerate(pieces):   # one by one: ORT's encoder is no faster on a batch
            if self._cancelled:
                raise Cancelled
            x = np.zeros(length, np.float32)
            x[:min(len(p), length)] = p[:length]
            mel = log_mel(x)[None, :, : (length // HOP) & ~1]
            k, v = self.encoder.run(None, {"mel": mel})
            if ck is None:      # laid out per head once, written in place piece by piece
                layers, _, t, state = k.shape
                dh = state // self.heads
                ck = np.empty((layers, len(pieces), self.heads, dh, t), np.float32)
                cv = np.empty((layers, len(pieces), self.heads, t, dh), np.float32)
            k = k[:, 0].reshape(layers, t, self.heads, dh) * dh ** -0.25
            ck[:, i] = k.transpose(0, 2, 3, 1)
            cv[:, i] = v[:, 0].reshape(layers, t, self.heads, dh).transpose(0, 2, 1, 3)
            del k, v
        limits = [min(MAX_TOKENS, 16 + int(12 * len(p) / SAMPLE_RATE)) for p in pieces]
        return [self._text(t) for t in self._greedy(ck, cv, limits)]

    def _prefix(self) -> list[int]:
        lang = self.sp.languages.get(self.language)
        seq = [self.sp.sot] + ([lang] if lang is not None else [])
        return seq + [self.sp.transcribe, self.sp.no_timestamps]

    def _step(self, tokens: np.ndarray, past_k: np.ndarray, past_v: np.ndarray, ck: np.ndarray,
              cv: np.ndarray, offset: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.decoder.run(None, {"tokens": tokens, "past_k": past_k, "past_v": past_v,
                                       "cross_k": ck, "cross_v": cv,
                                       "offset": np.array([offset], np.int64)})

    def _greedy(self, ck: np.ndarray, cv: np.ndarray, limits: list[int]) -> list[list[int]]:
        n = ck.shape[1]
        if self.language == "auto":
            prefix = self._detect(ck, cv)
        else:
            prefix = [self._prefix()] * n
        out: list[list[int]] = [[] for _ in range(n)]
        alive = list(range(n))          # sequence index of each row still decoding
        empty = np.zeros((self.n_layers, n, 0, self.n_state), np.float32)
        logits, pk, pv = self._step(np.array(prefix, np.int64), empty, empty, ck, cv, 0)
        offset = len(prefix[0])
        first = True
        while alive:
            if self._cancelled:
                raise Cancelled
            scores = logits + (self._first if first else self._suppress)
            first = False
            nxt = scores.argmax(axis=1)
            keep = []
            for row, seq in enumerate(alive):
                tok = int(nxt[row])
                toks = out[seq]
                if tok == self.sp.eot:
                    continue
                toks.append(tok)
                if _drop_loop(toks):
                    continue                # Whisper repeating itself: the loop ends it
                if len(toks) < limits[seq]:
                    keep.append(row)
            if not keep:
                break
            if len(keep) < len(alive):      # drop finished rows (a copy: only then)
                alive = [alive[r] for r in keep]
                ck, cv, pk, pv = ck[:, keep], cv[:, keep], pk[:, keep], pv[:, keep]
            tokens = np.array([[out[s][-1]] for s in alive], np.int64)
            logits, pk, pv = self._step(tokens, pk, pv, ck, cv, offset)
            offset += 1
        return out

    def _detect(self, ck: np.ndarray, cv: np.ndarray) -> list[list[int]]:
        """Each piece's language (``auto``): the likeliest language token after <|sot|>."""
        n = ck.shape[1]
        empty = np.zeros((self.n_layers, n, 0, self.n_state), np.float32)
        logits, _, _ = self._step(np.full((n, 1), self.sp.sot, np.int64), empty, empty, ck, cv, 0)
        ids = np.array(list(self.sp.languages.values()))
        best = ids[logits[:, ids].argmax(axis=1)]
        return [[self.sp.sot, int(b), self.sp.transcribe, self.sp.no_timestamps] for b in best]

    def _text(self, tokens: list[int]) -> str:
        return b"".join(self.vocab.get(t, b"") for t in tokens).decode("utf-8", "ignore").strip()
