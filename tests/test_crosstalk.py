"""Two-party detection with echo/bleed between the channels, and lockstep streaming."""

import numpy as np
import pytest

from appliance.analysis.dsp import CallStream
from appliance.config import Settings
from appliance.native import CallDetector, leak_gains
from appliance.simulate.calls import make_noise

from conftest import to_pcm

RATE = 16000


def talk_s(segments):
    return sum(e - s for s, e in segments) * 0.02


def call_segments(agent: np.ndarray, client: np.ndarray, chunks=None):
    stream = CallStream(Settings().vad)
    if chunks is None:
        stream.feed("agent", agent)
        stream.feed("client", client)
    else:
        pos_a = pos_c = 0
        for i, n in enumerate(chunks):        # the two streams arrive unevenly
            if i % 2:
                stream.feed("agent", agent[pos_a:pos_a + n])
                pos_a += n
            else:
                stream.feed("client", client[pos_c:pos_c + n])
                pos_c += n
        stream.feed("agent", agent[pos_a:])
        stream.feed("client", client[pos_c:])
    stream.finish()
    return stream.segments


@pytest.fixture(scope="module")
def monologue(corpus):
    """Agent reads four utterances; the client line is quiet (faint line noise only)."""
    agent = np.concatenate([np.concatenate([np.zeros(RATE // 2, np.float32), u.audio * 0.5])
                            for u in corpus[10:14]])
    client = make_noise("pink", len(agent), np.random.default_rng(5)) * 10 ** (-75 / 20)
    return agent, client


def with_echo(agent, client, gain_db=-25.0, delay_s=0.08):
    d = int(delay_s * RATE)
    echoed = client.copy()
    echoed[d:] += 10 ** (gain_db / 20) * agent[:-d]
    return echoed


def test_echo_of_the_agent_is_not_client_speech(monologue):
    agent, client = monologue
    segs = call_segments(to_pcm(agent), to_pcm(with_echo(agent, client)))
    assert talk_s(segs["agent"]) > 10
    # without compensation the echo reads as client speech for most of the agent's talk
    alone = CallDetector()
    alone.client.process(to_pcm(with_echo(agent, client)))
    alone.client.flush()
    assert talk_s(alone.client.take_segments()) > 0.5 * talk_s(segs["agent"])
    # with it, none: learnt leak counts as noise, and before anything is learnt a segment
    # 20 dB under the agent's simultaneous speech is dropped as echo
    assert talk_s(segs["client"]) < 0.02 * talk_s(segs["agent"])


def test_echo_rule_can_be_switched_off(monologue):
    agent, client = monologue
    settings = Settings()
    settings.vad.echo_below_db = 0
    stream = CallStream(settings.vad)
    stream.feed("agent", to_pcm(agent))
    stream.feed("client", to_pcm(with_echo(agent, client)))
    stream.finish()
    assert stream.echoes == {"agent": 0, "client": 0}


def test_leak_gain_is_learnt_only_where_there_is_a_leak(monologue):
    agent, client = monologue
    d = CallDetector()
    d.process(to_pcm(agent), to_pcm(with_echo(agent, client, gain_db=-25)))
    client_from_agent = np.array(leak_gains(d)[1])
    assert -40 < np.median(client_from_agent) < -15
    d = CallDetector()
    d.process(to_pcm(agent), to_pcm(client))
    assert np.median(leak_gains(d)[1]) <= -60      # a quiet line learns no leak


def test_double_talk_survives_echo_compensation(monologue, corpus):
    agent, client = monologue
    echoed = with_echo(agent, client)
    # the client really speaks over the agent for a few seconds near the end
    u = corpus[20]
    own = u.audio[: RATE * 3] * 0.4
    own_speech = sum(min(e, 3.0) - s for s, e in u.speech if s < 3.0)
    start = len(agent) - RATE * 6
    echoed[start:start + len(own)] += own
    segs = call_segments(to_pcm(agent), to_pcm(echoed))
    lo, hi = start / RATE, (start + len(own)) / RATE
    found = [(s, e) for s, e in segs["client"] if e * 0.02 > lo and s * 0.02 < hi]
    assert found and talk_s(found) > 0.7 * own_speech


def test_uneven_two_stream_feeding_equals_one_go(monologue):
    agent, client = (to_pcm(x) for x in monologue)
    client = to_pcm(with_echo(*monologue))
    rng = np.random.default_rng(6)
    chunks = rng.integers(1, 4000, 200).tolist()
    assert call_segments(agent, client, chunks) == call_segments(agent, client)


def test_call_detector_rejects_unequal_chunks():
    with pytest.raises(ValueError, match="differ in length"):
        CallDetector().process(np.zeros(320, np.int16), np.zeros(160, np.int16))


def test_a_party_shorter_at_the_end_is_padded_with_silence(monologue):
    """At the end of a call the party with fewer samples (one RTP stream stopped first) is
    padded: the call is as long as the longer party, and the same as feeding the padding."""
    agent = to_pcm(monologue[0])
    client = to_pcm(monologue[1])[: len(agent) // 2]
    short = CallStream(Settings().vad)
    short.feed("agent", agent)
    short.feed("client", client)
    short.finish()
    padded = CallStream(Settings().vad)
    padded.feed("agent", agent)
    padded.feed("client", np.concatenate([client, np.zeros(len(agent) - len(client), np.int16)]))
    padded.finish()
    assert short.frames == padded.frames == len(agent) // 320
    assert short.segments == padded.segments and short.segments["agent"]
