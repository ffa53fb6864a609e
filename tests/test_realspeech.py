"""End to end on generated real-speech calls: metrics within tolerances of the truth."""

import numpy as np
import pytest

from appliance.simulate.calls import build_call, degrade, write_call
from appliance.simulate.scoring import Counts, score_result
from appliance.sources.files import analyse_files

SEEDS = (11, 12, 13, 14)


@pytest.fixture(scope="module")
def scored(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("calls")
    scores = {}
    for variant in ("tel8", "tel8_snr10"):
        rows = []
        for seed in SEEDS:
            stereo, truth = build_call(corpus, np.random.default_rng(seed), turns=10,
                                       p_interrupt=0.3)
            audio, rate, subtype, _ = degrade(stereo, truth, variant, np.random.default_rng(seed))
            path = out / f"{variant}_{seed}.wav"
            write_call(path, audio, rate, subtype)
            rows.append((truth, score_result(analyse_files([path], _settings()), truth)))
        scores[variant] = rows
    return scores


def _settings():
    from appliance.config import Settings
    return Settings()


def pooled(rows, key):
    total = Counts()
    for _, sc in rows:
        if key == "vad":
            for c in sc["vad"].values():
                total += c
        else:
            total += sc[key]
    return total


@pytest.mark.slow
@pytest.mark.parametrize("variant, min_f1", [("tel8", 0.95), ("tel8_snr10", 0.93)])
def test_voice_activity_f1(scored, variant, min_f1):
    c = pooled(scored[variant], "vad")
    assert c.f1 >= min_f1, (c.precision, c.recall)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tel8", "tel8_snr10"])
def test_interruptions_found_and_backchannels_ignored(scored, variant):
    c = pooled(scored[variant], "interruptions")
    assert sum(len(t.interruptions) for t, _ in scored[variant]) >= 4   # the test has teeth
    assert sum(len(t.backchannels) for t, _ in scored[variant]) >= 2
    assert c.f1 >= 0.85, (c.tp, c.fp, c.fn)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["tel8", "tel8_snr10"])
def test_talk_share_within_three_points(scored, variant):
    assert max(sc["share_error"] for _, sc in scored[variant]) <= 0.03


@pytest.mark.slow
def test_dead_air_found(scored):
    c = pooled(scored["tel8"], "silences")
    assert c.tp + c.fn >= 1
    assert c.recall == 1.0 and c.precision == 1.0
