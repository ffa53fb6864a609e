"""The per-party audio window keeps only what segments may still need."""

import numpy as np

from appliance.core.window import AudioWindow


def test_slices_are_exact_and_missing_audio_reads_as_silence():
    w = AudioWindow()
    x = np.arange(320 * 10, dtype=np.int16)
    for i in range(0, len(x), 100):
        w.append(x[i:i + 100])
    assert np.array_equal(w.slice(2, 5), x[640:1600])
    assert np.array_equal(w.slice(8, 12)[:640], x[2560:]) and not w.slice(8, 12)[640:].any()
    w.drop_before(3)                               # may keep a little more; never less
    assert np.array_equal(w.slice(3, 10), x[960:])


def test_memory_stays_bounded_over_a_long_call_with_asr_slicing():
    """The live pattern: 20 ms appends, a 3 s segment sliced every 5 s, and everything
    older than the current segment dropped. Three hours keep under a minute of audio."""
    w = AudioWindow()
    chunk = np.zeros(320, np.int16)
    frames = 3 * 3600 * 50
    peak = 0
    for f in range(frames):
        w.append(chunk)
        if f % 250 == 249:                         # a segment [f-150, f) closes
            w.slice(f - 150, f)
        w.drop_before(f - 200)
        peak = max(peak, w.kept_samples)
    assert peak < 60 * 16000, peak / 16000
