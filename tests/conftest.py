"""Shared fixtures: real speech from festvox-ru, settings, recording writers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from appliance.config import Settings
from appliance.simulate.calls import build_call
from appliance.simulate.corpus import Utterance, load_corpus

pytest_plugins = ["panelfixtures"]     # box, admin: the panel tests' fixtures

RATE = 16000


@pytest.fixture(scope="session")
def corpus() -> list[Utterance]:
    # The test command installs the corpus (tests/fetch-speech-data.sh); a missing corpus is
    # an error, not a skip.
    return load_corpus()


@pytest.fixture(scope="session")
def speech(corpus: list[Utterance]) -> np.ndarray:
    """About 6 s of real speech, 16 kHz float32."""
    return corpus[2].audio


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    s = Settings()
    s.paths.data_dir = tmp_path / "data"
    return s


@pytest.fixture(scope="session")
def real_call(corpus: list[Utterance]):
    """A generated two-party call (16 kHz stereo float32) and its truth."""
    return build_call(corpus, np.random.default_rng(2024), turns=8)


def write_wav(path: Path, audio: np.ndarray, rate: int = RATE, subtype: str = "PCM_16",
              fmt: str = "WAV") -> Path:
    sf.write(str(path), audio, rate, subtype=subtype, format=fmt)
    return path


def to_pcm(x: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(x * 32767), -32768, 32767).astype(np.int16)


def feed_detector(detector, pcm: np.ndarray, chunks: list[int] | None = None):
    """Feed a party detector ``pcm`` whole or in ``chunks`` (sizes; the rest after them),
    then flush it; returns the detector."""
    if chunks is None:
        detector.process(pcm)
    else:
        pos = 0
        for n in chunks:
            detector.process(pcm[pos:pos + n])
            pos += n
        detector.process(pcm[pos:])
    detector.flush()
    return detector
