"""The file source: formats, rates, channel layouts and every kind of bad file."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import soxr

from appliance.media.session import CallMeta, CallSession
from appliance.sources.files import AudioFileError, analyse_files, iter_call_blocks, open_call_files

from conftest import write_wav


@pytest.fixture(scope="module")
def stereo(real_call):
    audio, truth = real_call
    return audio * 0.8, truth


def agent_talk(result):
    return result["parties"]["agent"]["talk_s"]


@pytest.mark.parametrize("rate", [8000, 16000, 44100, 48000])
@pytest.mark.parametrize("subtype", ["PCM_16", "PCM_24", "FLOAT"])
def test_rates_and_sample_formats_agree(tmp_path, settings, stereo, rate, subtype):
    audio, truth = stereo
    x = audio if rate == 16000 else soxr.resample(audio, 16000, rate)
    ref = analyse_files([write_wav(tmp_path / "ref.wav", audio)], settings)
    got = analyse_files([write_wav(tmp_path / "c.wav", x, rate, subtype)], settings)
    assert got["duration_s"] == pytest.approx(ref["duration_s"], abs=0.04)
    # 8 kHz loses the band above 4 kHz only; talk time stays within 3 %
    assert agent_talk(got) == pytest.approx(agent_talk(ref), rel=0.03)
    assert len(got["interruptions"]) == len(ref["interruptions"])


@pytest.mark.parametrize("subtype", ["ALAW", "ULAW"])
def test_g711_wav(tmp_path, settings, stereo, subtype):
    audio, _ = stereo
    x8 = soxr.resample(audio, 16000, 8000)
    ref = analyse_files([write_wav(tmp_path / "ref.wav", x8, 8000)], settings)
    got = analyse_files([write_wav(tmp_path / "g711.wav", x8, 8000, subtype)], settings)
    assert agent_talk(got) == pytest.approx(agent_talk(ref), rel=0.03)
    assert got["call"]["extra"]["format"].endswith(subtype)


def test_flac_equals_wav(tmp_path, settings, stereo):
    audio, _ = stereo
    a = analyse_files([write_wav(tmp_path / "x.wav", audio)], settings)
    b = analyse_files([write_wav(tmp_path / "x.flac", audio, fmt="FLAC")], settings)
    for key in ("segments", "interruptions", "overlaps", "silences", "parties"):
        assert a[key] == b[key]


def test_channel_mapping(tmp_path, settings, stereo):
    audio, _ = stereo
    path = write_wav(tmp_path / "x.wav", audio)
    normal = analyse_files([path], settings)
    settings.channels.agent_channel = 1
    swapped = analyse_files([path], settings)
    assert swapped["parties"]["agent"] == normal["parties"]["client"]
    assert swapped["parties"]["client"] == normal["parties"]["agent"]


def test_two_mono_files_of_different_rates_and_lengths(tmp_path, settings, stereo):
    audio, _ = stereo
    both = analyse_files([write_wav(tmp_path / "s.wav", audio)], settings)
    a = write_wav(tmp_path / "agent.wav", soxr.resample(audio[:, 0], 16000, 8000), 8000)
    short = audio[: len(audio) - 16000 * 2, 1]      # client file 2 s shorter
    c = write_wav(tmp_path / "client.wav", soxr.resample(short, 16000, 48000), 48000)
    got = analyse_files([a, c], settings)
    assert got["duration_s"] == pytest.approx(both["duration_s"], abs=0.06)
    assert agent_talk(got) == pytest.approx(agent_talk(both), rel=0.03)


def test_stream_whole_equals_frame_by_frame(tmp_path, settings, stereo):
    """A file analysed in blocks and the same audio fed 20 ms at a time give the same JSON."""
    audio, _ = stereo
    path = write_wav(tmp_path / "x.wav", audio)
    whole = analyse_files([path], settings)
    session = CallSession(settings, CallMeta(source="file", call_id="x",
                                             started_at=whole["call"]["started_at"],
                                             extra=whole["call"]["extra"]))
    for agent, client in iter_call_blocks(open_call_files([path], settings), settings):
        for i in range(0, len(agent), 320):
            session.feed("agent", agent[i:i + 320])
            session.feed("client", client[i:i + 320])
    assert session.finish() == whole


# ---- bad input: a clear error, never a crash or a hang ----------------------------------

def test_missing_file(tmp_path, settings):
    with pytest.raises(AudioFileError, match="no such file"):
        analyse_files([tmp_path / "nope.wav"], settings)


def test_empty_file(tmp_path, settings):
    p = tmp_path / "empty.wav"
    p.write_bytes(b"")
    with pytest.raises(AudioFileError, match="empty"):
        analyse_files([p], settings)


def test_header_only_file(tmp_path, settings):
    p = write_wav(tmp_path / "h.wav", np.zeros((0, 2), np.float32))
    with pytest.raises(AudioFileError, match="no audio"):
        analyse_files([p], settings)


@pytest.mark.parametrize("content", [b"RIFF\x00\x00garbage" * 50, bytes(range(256)) * 40,
                                     "это не звук".encode() * 100])
def test_corrupt_or_not_audio(tmp_path, settings, content):
    p = tmp_path / "bad.wav"
    p.write_bytes(content)
    with pytest.raises(AudioFileError, match="not a readable WAV or FLAC"):
        analyse_files([p], settings)


def test_truncated_file_is_analysed_up_to_the_cut(tmp_path, settings, stereo):
    audio, _ = stereo
    p = write_wav(tmp_path / "t.wav", audio)
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2 + 3])        # cut mid-sample, header unchanged
    r = analyse_files([p], settings)
    assert r["duration_s"] == pytest.approx(len(audio) / 16000 / 2, abs=0.1)
    assert r["segments"]
    assert any("truncated" in n for n in r["call"]["notes"])


def test_mono_file_needs_two_parties(tmp_path, settings, stereo):
    p = write_wav(tmp_path / "m.wav", stereo[0][:, 0])
    with pytest.raises(AudioFileError, match="mono recording.*stereo file.*two mono files"):
        analyse_files([p], settings)


def test_wrong_channel_counts(tmp_path, settings, stereo):
    three = np.concatenate([stereo[0], stereo[0][:, :1]], axis=1)
    with pytest.raises(AudioFileError, match="3-channel"):
        analyse_files([write_wav(tmp_path / "3.wav", three)], settings)
    s = write_wav(tmp_path / "s.wav", stereo[0])
    with pytest.raises(AudioFileError, match="each must be mono"):
        analyse_files([s, s], settings)
    with pytest.raises(AudioFileError, match="not 3"):
        analyse_files([s, s, s], settings)


def test_nan_and_inf_samples(tmp_path, settings, stereo):
    x = stereo[0].copy()
    x[1000:3000, 0] = np.nan
    x[5000:5100, 1] = np.inf
    r = analyse_files([write_wav(tmp_path / "n.wav", x, subtype="FLOAT")], settings)
    assert r["duration_s"] > 0


def test_too_long_is_refused_before_reading(tmp_path, settings, stereo):
    settings.files.max_duration_h = 0.001
    with pytest.raises(AudioFileError, match="longer than files.max_duration_h"):
        analyse_files([write_wav(tmp_path / "l.wav", stereo[0])], settings)


@pytest.mark.slow
def test_three_hour_file_streams_in_bounded_memory(tmp_path, stereo):
    """3 h of 8 kHz A-law stereo: analysed completely, peak RSS far below the decoded size."""
    audio8 = soxr.resample(stereo[0], 16000, 8000)
    path = tmp_path / "long.wav"
    total = 3 * 3600 * 8000
    with sf.SoundFile(str(path), "w", 8000, 2, "ALAW", format="WAV") as fh:
        written = 0
        while written < total:
            block = audio8[: total - written]
            fh.write(block)
            written += len(block)
    # The child reports its own peak RSS: VmHWM belongs to its address space and starts
    # afresh at exec, unlike ru_maxrss, which a child inherits from this (large) process.
    code = ("import re, sys; from appliance.cli import main; rc = main(sys.argv[1:]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "sys.stderr.write(f'PEAK_KB {hwm}'); sys.exit(rc)")
    out = subprocess.run([sys.executable, "-c", code, "analyze", "--no-asr", "--json", str(path)],
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    peak_mb = int(out.stderr.rsplit("PEAK_KB ", 1)[1]) / 1024
    r = json.loads(out.stdout)
    assert r["duration_s"] == pytest.approx(3 * 3600, abs=0.1)
    assert r["parties"]["agent"]["talk_s"] > 3600 * 0.5
    # decoded 16 kHz float audio would be 1.4 GB; the stream stays small
    assert peak_mb < 400, peak_mb


def test_a_file_without_call_information_started_its_length_before_it_was_last_written(
        tmp_path, settings):
    # a PBX closes the file when the call ends: its modification time is the end
    import os

    t = np.arange(150 * 8000) / 8000                       # 150 s: past the CDR join window
    tone = (0.2 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
    path = write_wav(tmp_path / "long.wav", np.stack([tone, tone * 0], axis=1), 8000)
    ended = 1_790_000_000.0
    os.utime(path, (ended, ended))
    result = analyse_files([path], settings)
    assert result["call"]["started_at"] == pytest.approx(ended - 150.0, abs=0.01)
    told = analyse_files([path], settings, info={"started_at": ended - 1000.0})
    assert told["call"]["started_at"] == ended - 1000.0     # what the PBX said wins
