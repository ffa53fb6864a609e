"""A second opinion on what the detector took for music: is someone speaking over it?

The native detector tells music by its notes, beat and activity over a second. Speech over
quiet background music (a radio where the client calls from) carries all of those, and the
whole second went to music: with music 25 dB under the voice the detector heard about half
of the speech (bench/background.py). Silero VAD, a small network trained to hear a voice
over music and noise, runs on those frames only (with half a second before them for its
state to settle): where it hears speech, the frames are speech again.

The network's weights are read from the ONNX file shipped in the ``silero-vad`` wheel (MIT
licence; installed without its dependencies, which pull torch), checked against its known
hash. The network is small (four convolutions and one LSTM cell per 32 ms), so numpy runs it:
a capture process gains its 1.2 MB of weights instead of an onnxruntime of about 30 MB,
and the convolutions of all the windows a drain needs run as one batch. The test suite
holds its answers to onnxruntime's on the same file. Without the file the detector works
as before and the box says why.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

SILERO_VERSION = "6.2.3"
SILERO_SHA256 = "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49"
WINDOW = 512            # samples per decision at 16 kHz (32 ms)
CONTEXT = 64            # samples of the previous window the network sees with each
THRESHOLD = 0.5         # Silero's probability above which a window is speech
HIDDEN = 128            # the LSTM cell's size; the state is (h, c)
BATCH_MAX = 256         # windows per batch (8 s; about 4 MB of intermediate arrays)

_lock = threading.Lock()
_model: "SpeechModel | None" = None
_unavailable: str | None = None


def silero_path() -> Path | None:
    """The installed silero-vad wheel's 16 kHz model, if any."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent / "data" / "silero_vad_16k_op15.onnx"


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    value = shift = 0
    while shift < 64:
        byte = buf[i]
        value |= (byte & 0x7F) << shift
        i += 1
        if byte < 0x80:
            return value, i
        shift += 7
    raise ValueError(f"a number longer than 64 bits at byte {i}")


def _fields(buf: bytes) -> Iterator[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) of one protobuf message."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        wire = key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, i = buf[i:i + size], i + size
        elif wire == 2:
            size, i = _varint(buf, i)
            value, i = buf[i:i + size], i + size
        else:
            raise ValueError(f"protobuf wire type {wire} at byte {i}")
        if i > len(buf):
            raise ValueError("the file is truncated")
        yield key >> 3, wire, value


def onnx_weights(data: bytes) -> dict[str, np.ndarray]:
    """The float32 initializers of an ONNX model (ModelProto.graph = 7, GraphProto.initializer
    = 5; TensorProto dims = 1, data_type = 2, name = 8, raw_data = 9). The file is pinned by
    its hash, so only what it uses is read (other fields are skipped); a tensor in another
    form than raw float32 is an error."""
    graphs = [v for f, w, v in _fields(data) if f == 7 and w == 2]
    if len(graphs) != 1:
        raise ValueError("no ONNX graph in the file")
    weights = {}
    for f, w, tensor in _fields(graphs[0]):     # type: ignore[arg-type]
        if f != 5 or w != 2:
            continue
        dims: list[int] = []
        name, dtype, raw = "", 0, b""
        for tf, tw, v in _fields(tensor):       # type: ignore[arg-type]
            if tf == 1 and tw == 0:
                dims.append(v)                  # type: ignore[arg-type]
            elif tf == 1 and tw == 2:           # packed dims
                j = 0
                while j < len(v):               # type: ignore[arg-type]
                    d, j = _varint(v, j)        # type: ignore[arg-type]
                    dims.append(d)
            elif tf == 2:
                dtype = v                       # type: ignore[assignment]
            elif tf == 8 and tw == 2:
                name = bytes(v).decode()        # type: ignore[arg-type]
            elif tf == 9 and tw == 2:
                raw = bytes(v)                  # type: ignore[arg-type]
        if dtype != 1 or len(raw) != 4 * int(np.prod(dims)):
            raise ValueError(f"tensor {name!r} is not raw float32 of shape {dims}")
        weights[name] = np.frombuffer(raw, "<f4").reshape(dims).astype(np.float32)
    return weights


def _conv(x: np.ndarray, taps: np.ndarray, bias: np.ndarray, stride: int) -> np.ndarray:
    """ReLU(Conv1d) with kernel 3 and padding 1 on (batch, time, channels); ``taps`` is
    (channels, 3 * out): the kernel's three taps side by side."""
    z = x @ taps
    n = taps.shape[1] // 3
    out = z[..., n:2 * n] + bias
    out[:, 1:] += z[:, :-1, :n]             # the previous step through the first tap
    out[:, :-1] += z[:, 1:, 2 * n:]         # the next one through the last
    return np.maximum(out[:, ::stride], 0.0)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)     # no overflow for large negative x


class SpeechModel:
    """Silero VAD's 16 kHz network in numpy. Thread-safe: the state travels with the calls."""

    def __init__(self, path: Path) -> None:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        if digest != SILERO_SHA256:
            raise ValueError(f"{path} is not silero-vad {SILERO_VERSION}'s model (sha256 "
                             f"{digest[:12]}...); reinstall it: pip install --no-deps "
                             f"silero-vad=={SILERO_VERSION}")
        try:
            w = onnx_weights(data)
            stft = w["model.stft.forward_basis_buffer"]
            self._basis = np.ascontiguousarray(stft[:, 0, :].T)        # (256, 258)
            self._convs = []
            for k, stride in enumerate((1, 2, 2, 1)):
                kernel = w[f"model.encoder.{k}.reparam_conv.weight"]   # (out, in, 3)
                taps = np.concatenate([kernel[:, :, t].T for t in range(3)], axis=1)
                self._convs.append((np.ascontiguousarray(taps),
                                    w[f"model.encoder.{k}.reparam_conv.bias"], stride))
            self._w_ih = np.ascontiguousarray(w["model.decoder.rnn.weight_ih"].T)
            self._b = w["model.decoder.rnn.bias_ih"] + w["model.decoder.rnn.bias_hh"]
            self._w_hh = w["model.decoder.rnn.weight_hh"]
            self._w_out = w["model.decoder.decoder.2.weight"][0, :, 0]
            self._b_out = float(w["model.decoder.decoder.2.bias"][0])
        except Exception as exc:    # noqa: BLE001 - whatever a damaged file makes the reader do
            raise ValueError(f"{path}: cannot read the ONNX model ({exc!r}); reinstall it: "
                             f"pip install --no-deps silero-vad=={SILERO_VERSION}") from exc
        self._half = self._basis.shape[1] // 2

    def probabilities(self, windows: np.ndarray, state: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray]:
        """Speech probability of each of ``windows`` (n, CONTEXT + WINDOW float32 samples,
        consecutive) and the recurrent state (2, 1, HIDDEN) after the last."""
        if len(windows) > BATCH_MAX:      # the same answers, in bounded memory
            parts = []
            for i in range(0, len(windows), BATCH_MAX):
                p, state = self.probabilities(windows[i:i + BATCH_MAX], state)
                parts.append(p)
            return np.concatenate(parts), state
        if not len(windows):
            return np.zeros(0, np.float32), state
        hop = self._basis.shape[0] // 2
        # reflected on the right by CONTEXT samples, then frames of two hops, one hop apart
        x = np.concatenate([windows, windows[:, -2:-CONTEXT - 2:-1]], axis=1)
        blocks = x.reshape(len(x), -1, hop)
        spec = np.concatenate([blocks[:, :-1], blocks[:, 1:]], axis=2) @ self._basis
        y = np.sqrt(spec[..., :self._half] ** 2 + spec[..., self._half:] ** 2)
        for kernel, bias, stride in self._convs:
            y = _conv(y, kernel, bias, stride)
        # the inputs' part of the gates, for all windows at once; every product here is one
        # per window (stacked), so a window's answer never depends on how many came with it
        gates = (y @ self._w_ih)[:, 0, :] + self._b
        h, c = state[0, 0].copy(), state[1, 0].copy()
        hs = np.empty((len(windows), HIDDEN), np.float32)
        for j in range(len(windows)):
            g = gates[j] + self._w_hh @ h
            s = _sigmoid(g)
            c = s[HIDDEN:2 * HIDDEN] * c + s[:HIDDEN] * np.tanh(g[2 * HIDDEN:3 * HIDDEN])
            h = s[3 * HIDDEN:] * np.tanh(c)
            hs[j] = h
        p = _sigmoid((np.maximum(hs, 0.0)[:, None, :] @ self._w_out)[:, 0] + self._b_out)
        return p.astype(np.float32), np.stack([h, c])[:, None, :].astype(np.float32)


def speech_model() -> SpeechModel | None:
    """The process's one model, loaded on first use; None (said once in the log) when the
    silero-vad wheel is missing, altered or unreadable."""
    global _model, _unavailable
    with _lock:
        if _model is None and _unavailable is None:
            path = silero_path()
            try:
                if path is None or not path.exists():
                    raise FileNotFoundError(
                        f"silero-vad is not installed: pip install --no-deps "
                        f"silero-vad=={SILERO_VERSION} (`make install` does)")
                if not path.is_file():
                    raise ValueError(f"{path} is not a file; reinstall it: pip install "
                                     f"--no-deps silero-vad=={SILERO_VERSION}")
                _model = SpeechModel(path)
            except Exception as exc:    # noqa: BLE001 - the detector works alone, whatever it is
                _unavailable = str(exc)
                log.warning("no second opinion on music: speech over background music may be "
                            "taken for music", extra={"reason": _unavailable})
        return _model


class MusicSpeechCheck:
    """One party's frames taken for music, asked of Silero in order as they are decided.

    A stretch of music frames is read from half a second before its first frame, in
    windows counted from there, so the answer for a frame depends only on the audio and on
    where its stretch starts: never on how the audio was chunked. Each call of the network
    costs about what eight windows in one batch cost, so when a window is needed the ones
    after it whose audio has arrived are read with it (up to half a second): a live call
    fed in small chunks reads its music in batches, not one window a drain."""

    LEAD_FRAMES = 25
    READ_AHEAD = 16         # windows read beyond the one needed, when their audio is here

    def __init__(self, model: SpeechModel, samples_per_frame: int) -> None:
        self.model = model
        self.spf = samples_per_frame
        self._pos: int | None = None        # next sample to read, inside a stretch of music
        self._state = np.zeros((2, 1, HIDDEN), np.float32)
        self._context = np.zeros(CONTEXT, np.float32)
        self._read = 0                      # windows read since the stretch began
        self._probs = np.zeros(0, np.float32)   # probabilities of windows _first_kept ...
        self._first_kept = 0                #   ... up to _read - 1
        self._origin = 0                    # first sample of the stretch's first window

    @property
    def oldest_needed(self) -> int | None:
        """First sample a stretch in progress still needs, or None."""
        return self._pos

    def start_frame(self, frame: int) -> int:
        """First frame whose audio a stretch starting at ``frame`` reads."""
        return max(0, frame - self.LEAD_FRAMES)

    def frames(self, music: np.ndarray, first: int, audio: Callable[[int, int], np.ndarray],
               available: int | None = None) -> np.ndarray:
        """For decided frames ``first, first + 1, ...`` (``music``: whether each was taken
        for music), whether Silero hears speech in each music frame. ``audio(a, b)`` gives
        samples [a, b) (silence where there are none); samples before ``available`` have
        arrived, and windows wholly before it may be read ahead."""
        out = np.zeros(len(music), bool)
        edges = np.flatnonzero(np.diff(np.concatenate([[0], music.astype(np.int8), [0]])))
        if len(music) and not music[0]:
            self._pos = None                # a frame that is not music ends the stretch
        for a, b in zip(edges[::2], edges[1::2]):
            if a > 0:
                self._pos = None
            out[a:b] = self._stretch(first + a, first + b, audio, available)
        if len(music) and not music[-1]:
            self._pos = None
        return out

    def _stretch(self, f0: int, f1: int, audio: Callable[[int, int], np.ndarray],
                 available: int | None) -> np.ndarray:
        """Whether Silero hears speech in music frames [f0, f1), one stretch's run."""
        if self._pos is None:
            self._origin = self._pos = self.start_frame(f0) * self.spf
            self._state = np.zeros((2, 1, HIDDEN), np.float32)
            self._context = np.zeros(CONTEXT, np.float32)
            self._read = self._first_kept = 0
            self._probs = np.zeros(0, np.float32)
        # the window holding each frame's centre (frames only move forward)
        k = ((np.arange(f0, f1) * self.spf + self.spf // 2 - self._origin) // WINDOW)
        need = int(k[-1])
        if need >= self._read:
            upto = need
            if available is not None:
                whole = (available - self._origin) // WINDOW - 1   # last window all here
                upto = max(need, min(need + self.READ_AHEAD, whole))
            n = upto - self._read + 1
            x = audio(self._pos, self._pos + n * WINDOW).astype(np.float32) / 32768.0
            stream = np.concatenate([self._context, x])
            windows = np.lib.stride_tricks.sliding_window_view(stream, CONTEXT + WINDOW)[::WINDOW]
            new, self._state = self.model.probabilities(windows, self._state)
            keep = min(max(0, int(k[0]) - self._first_kept), len(self._probs))
            self._probs = np.concatenate([self._probs[keep:], new])
            self._first_kept += keep
            self._context = stream[-CONTEXT:].copy()
            self._pos += n * WINDOW
            self._read += n
        return self._probs[k - self._first_kept] >= THRESHOLD
