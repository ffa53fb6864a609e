"""Recordings on disk as a call source: a stereo file (one party per channel) or two mono files.

Decoding (WAV PCM 8/16/24/32-bit, float, A-law, mu-law; FLAC) is libsndfile's; the audio is
read in blocks and resampled as a stream, so memory stays bounded whatever the length.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from ..asr.pieces import PieceSpec
from ..config import Settings
from ..core.frames import PIPELINE_RATE, SAMPLES_PER_FRAME
from ..media.session import CallMeta, CallSession, Stages
from ..system import sealing

log = logging.getLogger(__name__)

MIN_RATE, MAX_RATE = 8000, 192000


class AudioFileError(ValueError):
    """A recording cannot be analysed; the message says what is wrong and what to do."""


@dataclass
class TrackInfo:
    path: Path
    channel: int                # channel of the file that carries this party
    sample_rate: int
    frames: int                 # as announced by the header
    format: str
    subtype: str


@dataclass
class FileCall:
    """The two parties' tracks of one recorded call."""

    agent: TrackInfo
    client: TrackInfo
    notes: list[str] = field(default_factory=list)

    @property
    def duration_s(self) -> float:
        return max(t.frames / t.sample_rate for t in (self.agent, self.client))


def _probe(path: Path) -> sf._SoundFileInfo:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise AudioFileError(f"{path}: no such file") from None
    except OSError as exc:
        raise AudioFileError(f"{path}: cannot be read ({exc.strerror})") from None
    if not path.is_file():
        raise AudioFileError(f"{path}: not a regular file")
    if size == 0:
        raise AudioFileError(f"{path}: the file is empty (0 bytes); the recording was not written")
    try:
        info = sf.info(_source(path))
    except (sf.LibsndfileError, RuntimeError) as exc:
        raise AudioFileError(
            f"{path}: not a readable WAV or FLAC recording ({exc}); check that the PBX writes "
            "WAV (PCM, A-law or mu-law) or FLAC") from None
    if not MIN_RATE <= info.samplerate <= MAX_RATE:
        raise AudioFileError(f"{path}: sample rate {info.samplerate} Hz is outside "
                             f"{MIN_RATE}-{MAX_RATE} Hz")
    if info.frames <= 0:
        raise AudioFileError(f"{path}: the file holds no audio (0 samples)")
    return info


def _wav_shortfall(path: Path) -> tuple[int, int] | None:
    """(declared, present) bytes of a WAV data chunk cut short, else None.

    libsndfile sizes a truncated WAV by what is on disk, silently; a PBX that crashed while
    writing leaves exactly that, so it is worth a note on the call.
    """
    try:
        with open(path, "rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            size = path.stat().st_size
            while True:
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                declared = int.from_bytes(chunk[4:8], "little")
                if chunk[:4] == b"data":
                    present = size - fh.tell()
                    if declared != 0xFFFFFFFF and present < declared:
                        return declared, present
                    return None
                fh.seek(declared + (declared & 1), 1)
    except OSError:
        return None


def open_call_files(paths: list[str | os.PathLike[str]], settings: Settings,
                    agent_channel: int | None = None) -> FileCall:
    """Check one stereo file or two mono files (agent first) and describe their tracks.
    ``agent_channel`` overrides ``channels.agent_channel`` (the box's own recordings)."""
    if not 1 <= len(paths) <= 2:
        raise AudioFileError(f"give one stereo file or two mono files, not {len(paths)}")
    infos = [(Path(p), _probe(Path(p))) for p in paths]
    max_s = settings.files.max_duration_h * 3600
    for path, info in infos:
        if info.frames / info.samplerate > max_s:
            raise AudioFileError(
                f"{path}: {info.frames / info.samplerate / 3600:.1f} h is longer than "
                f"files.max_duration_h = {settings.files.max_duration_h}; split the recording "
                "or raise the limit")

    notes = []
    for path, info in infos:
        cut = _wav_shortfall(path)
        if cut:
            bps = cut[1] / max(1, info.frames) or 1
            notes.append(f"{path.name}: truncated: header announced "
                         f"{cut[0] / bps / info.samplerate:.2f} s, file holds "
                         f"{info.frames / info.samplerate:.2f} s; analysed what is there")

    def track(path: Path, info: Any, channel: int) -> TrackInfo:
        return TrackInfo(path, channel, info.samplerate, info.frames, info.format, info.subtype)

    if len(infos) == 1:
        path, info = infos[0]
        if info.channels != 2:
            what = "mono" if info.channels == 1 else f"{info.channels}-channel"
            raise AudioFileError(
                f"{path}: a {what} recording; the analysis needs each party on its own channel: "
                "give a stereo file (agent and client channels) or two mono files")
        a = settings.channels.agent_channel if agent_channel is None else agent_channel
        return FileCall(track(path, info, a), track(path, info, 1 - a), notes)
    for path, info in infos:
        if info.channels != 1:
            raise AudioFileError(f"{path}: has {info.channels} channels; with two files, "
                                 "each must be mono (first agent, then client)")
    return FileCall(track(*infos[0], 0), track(*infos[1], 0), notes)


def _source(path: Path) -> Any:
    """What soundfile opens: the path, or a sealed recording's contents ([privacy] encrypt)."""
    try:
        return sealing.audio_source(path)
    except sealing.SealError as exc:
        raise AudioFileError(str(exc)) from None


def _file_blocks(track: TrackInfo, channels: list[int], block_s: float,
                 notes: list[str]) -> Iterator[np.ndarray]:
    """Yield float32 blocks (samples x len(channels)) of one file at the pipeline rate."""
    block = max(256, int(track.sample_rate * block_s))
    resampler = (None if track.sample_rate == PIPELINE_RATE else
                 soxr.ResampleStream(track.sample_rate, PIPELINE_RATE, len(channels),
                                     dtype="float32"))
    read = 0
    try:
        fh = sf.SoundFile(_source(track.path))
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioFileError(f"{track.path}: cannot be opened for reading ({exc})") from None
    with fh:
        while True:
            try:
                data = fh.read(block, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError) as exc:
                notes.append(f"{track.path.name}: unreadable after "
                             f"{read / track.sample_rate:.2f} s ({exc}); analysed up to there")
                break
            if data.shape[0] == 0:
                break
            read += data.shape[0]
            data = np.ascontiguousarray(data[:, channels])
            if not np.isfinite(data).all():
                data = np.nan_to_num(data, nan=0.0, posinf=1.0, neginf=-1.0)
            yield data if resampler is None else resampler.resample_chunk(data)
    if resampler is not None:
        yield resampler.resample_chunk(np.zeros((0, len(channels)), np.float32), last=True)
    if read < track.frames:
        notes.append(f"{track.path.name}: truncated: header announced "
                     f"{track.frames / track.sample_rate:.2f} s, read "
                     f"{read / track.sample_rate:.2f} s")


def to_int16(x: np.ndarray) -> np.ndarray:
    """Float samples in [-1, 1] to int16 with saturation."""
    return np.clip(np.rint(x * 32767.0), -32768, 32767).astype(np.int16)


def _aligned(a: Iterator[np.ndarray], b: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
    """Zip two mono block streams into stereo blocks; the shorter is padded with silence."""
    its, pending, alive = [a, b], [np.zeros(0, np.float32)] * 2, [True, True]
    while any(alive):
        for i in (0, 1):
            while alive[i] and len(pending[i]) <= len(pending[1 - i]):
                try:
                    pending[i] = np.concatenate([pending[i], next(its[i])[:, 0]])
                except StopIteration:
                    alive[i] = False
        n = min(map(len, pending)) if all(alive) else max(map(len, pending))
        if n == 0:
            continue
        out = np.zeros((n, 2), np.float32)
        for i in (0, 1):
            take = pending[i][:n]
            out[: len(take), i] = take
            pending[i] = pending[i][n:]
        yield out


def iter_call_blocks(call: FileCall, settings: Settings) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield (agent, client) int16 blocks of equal length at the pipeline rate."""
    block_s = settings.files.block_s
    if call.agent.path == call.client.path:
        blocks = _file_blocks(call.agent, [call.agent.channel, call.client.channel], block_s,
                              call.notes)
    else:
        blocks = _aligned(_file_blocks(call.agent, [0], block_s, call.notes),
                          _file_blocks(call.client, [0], block_s, call.notes))
    for block in blocks:
        if len(block):
            pcm = to_int16(block)
            yield pcm[:, 0], pcm[:, 1]


def analyse_files(paths: list[str | os.PathLike[str]], settings: Settings,
                  call_id: str | None = None, stages: Stages | None = None,
                  info: dict[str, Any] | None = None) -> dict[str, Any]:
    """Run the whole call pipeline on a recorded call and return the call JSON.

    ``stages`` (ASR, tagger, checklist) are shared between calls; without them only the
    conversation DSP runs. ``info``: what the PBX said about the call (``sidecar.py``);
    without its ``started_at`` the call started the recording's length before the file's
    modification time.
    """
    call = open_call_files(paths, settings)
    info = info or {}
    # Without a start time from the PBX: a recording is last written when the call ends,
    # so it started its length before that.
    started = info.get("started_at") or max(os.path.getmtime(p) for p in paths) - call.duration_s
    meta = CallMeta(source="file", call_id=info.get("call_id") or call_id or Path(paths[0]).stem,
                    started_at=started,
                    direction=info.get("direction"), agent=info.get("agent"),
                    client=info.get("client"),
                    extra={"files": [str(p) for p in paths],
                           "sample_rate": call.agent.sample_rate,
                           "format": f"{call.agent.format}/{call.agent.subtype}"})
    session = CallSession(settings, meta, stages)
    for agent, client in iter_call_blocks(call, settings):
        session.feed("agent", agent)
        session.feed("client", client)
    meta.notes.extend(call.notes)
    for note in call.notes:
        log.warning("file note", extra={"call": meta.call_id, "note": note})
    result = session.finish()
    if result["duration_s"] == 0:
        raise AudioFileError(f"{paths[0]}: shorter than one 20 ms frame; nothing to analyse")
    return result


def call_audio(result: dict[str, Any], json_path: Path) -> tuple[list[Path], int | None]:
    """The recording(s) a call JSON was analysed from, and the agent's channel when it is
    the box's own recording (agent left, whatever ``channels.agent_channel`` says)."""
    extra = result.get("call", {}).get("extra", {})
    recording = extra.get("recording")
    if recording and result.get("call", {}).get("source") in ("sip", "siprec"):
        return [json_path.parent / Path(recording).name], 0
    files = [Path(f) for f in extra.get("files") or []]
    if files:
        return files, None
    if recording:
        return [json_path.parent / Path(recording).name], None
    raise AudioFileError(f"{json_path.name}: names no recording to read speech from")


def read_pieces(paths: list[Path], settings: Settings, specs: list[PieceSpec],
                agent_channel: int | None = None) -> dict[PieceSpec, np.ndarray]:
    """The audio (int16, 16 kHz) of each piece, read in one pass through the recording."""
    call = open_call_files(list(paths), settings, agent_channel)
    wanted = sorted(specs, key=lambda s: s.start)
    bufs = {s: np.zeros((s.end - s.start) * SAMPLES_PER_FRAME, np.int16) for s in wanted}
    last = max((s.end for s in wanted), default=0) * SAMPLES_PER_FRAME
    offset = 0
    for agent, client in iter_call_blocks(call, settings):
        n = len(agent)
        for spec in wanted:
            a, b = spec.start * SAMPLES_PER_FRAME, spec.end * SAMPLES_PER_FRAME
            lo, hi = max(a, offset), min(b, offset + n)
            if lo < hi:
                src = agent if spec.party == "agent" else client
                bufs[spec][lo - a:hi - a] = src[lo - offset:hi - offset]
        offset += n
        if offset >= last:
            break
    return bufs
