"""In-process events: publishers never wait, order is kept, a failing handler stops nothing."""

from __future__ import annotations

import threading

from appliance.bus import Bus


def test_delivers_by_prefix_in_order_and_survives_a_failing_handler():
    bus, seen = Bus(), []
    bus.subscribe("call.", lambda e: seen.append((e.topic, e.data["n"])))
    bus.subscribe("", lambda e: 1 / 0)
    for n in range(200):
        bus.publish("call.stored" if n % 2 else "disk.low", n=n)
    assert bus.drain(timeout=30)
    assert seen == [("call.stored", n) for n in range(1, 200, 2)]
    assert bus.pending == 0


def test_a_slow_subscriber_never_holds_the_publisher():
    bus, release, got = Bus(), threading.Event(), []
    bus.subscribe("call.", lambda e: (release.wait(60), got.append(e.data["n"])))
    for n in range(5):
        bus.publish("call.stored", n=n)           # returns although the handler is blocked
    assert got == [] and bus.pending == 5
    assert not bus.drain(timeout=0.05)
    release.set()
    assert bus.drain(timeout=30)
    assert got == [0, 1, 2, 3, 4]


def test_an_event_nobody_listens_to_is_not_kept():
    bus = Bus()
    bus.publish("call.stored", n=1)
    assert bus.pending == 0 and bus.drain(timeout=0)


def test_close_delivers_what_is_queued_then_stops_and_a_later_event_starts_it_again():
    def delivering() -> set:
        return {t for t in threading.enumerate() if t.name == "bus"}
    before = delivering()
    bus, got = Bus(), []
    bus.subscribe("", lambda e: got.append(e.topic))
    bus.publish("a")
    assert len(delivering() - before) == 1
    bus.close()
    assert got == ["a"] and delivering() - before == set()
    bus.publish("b")
    assert bus.drain(timeout=30) and got == ["a", "b"]
    bus.close()
