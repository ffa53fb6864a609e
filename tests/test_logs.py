"""Log lines of a running box: structured, and never a reason for a call thread to wait."""

from __future__ import annotations

import io
import logging
import threading

from appliance.system.logs import BackgroundStream, KeyValueFormatter
from waiting import wait_for


class StalledStream(io.StringIO):
    """A stream whose writes wait until ``release`` is set (a full pipe, a stalled disk)."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        self.release.wait()
        return super().write(text)


def _logger(handler: logging.Handler, name: str) -> logging.Logger:
    handler.setFormatter(KeyValueFormatter())
    log = logging.getLogger(name)
    log.handlers[:] = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_a_stalled_log_stream_never_stops_the_thread_that_logs():
    stream = StalledStream()
    handler = BackgroundStream(stream, limit=50)
    log = _logger(handler, "test.logs.stalled")
    log.info("first", extra={"uid": "a"})
    assert wait_for(lambda: stream.writes == 1, 30)        # the writer is stuck in write()
    done = threading.Event()

    def call_thread() -> None:
        for i in range(200):
            log.info("call event", extra={"n": i})
        done.set()
    threading.Thread(target=call_thread, daemon=True).start()
    assert done.wait(30), "logging waited for the stalled stream"
    stream.release.set()
    handler.flush()
    lines = stream.getvalue().splitlines()
    assert lines[0].endswith("test.logs.stalled first uid=a")
    kept = [line for line in lines if " call event " in line]
    # the first 50 waited in memory, in order; the rest were dropped and counted
    assert [line.rsplit("n=", 1)[1] for line in kept] == [str(i) for i in range(50)]
    assert any("log lines dropped count=150" in line for line in lines), lines[-3:]
    handler.close()


def test_every_line_is_written_in_order_before_close_returns():
    stream = io.StringIO()
    handler = BackgroundStream(stream)
    log = _logger(handler, "test.logs.order")
    for i in range(1000):
        log.warning("event", extra={"i": i})
    handler.close()
    lines = stream.getvalue().splitlines()
    assert [line.rsplit("i=", 1)[1] for line in lines] == [str(i) for i in range(1000)]
    assert all(" warning test.logs.order event " in line for line in lines)


def test_lines_reach_a_shared_pipe_in_whole_line_writes_of_at_most_pipe_buf():
    from appliance.system.logs import PIPE_BUF

    class Recorder(io.StringIO):
        def __init__(self) -> None:
            super().__init__()
            self.chunks: list[str] = []

        def write(self, text: str) -> int:
            self.chunks.append(text)
            return super().write(text)
    stream = StalledStream()
    handler = BackgroundStream(stream)
    log = _logger(handler, "test.logs.pipe")
    log.info("first")
    assert wait_for(lambda: stream.writes == 1, 30)        # a backlog builds behind it
    recorder = Recorder()
    for i in range(500):
        log.info("line " + "x" * (i % 90), extra={"i": i})
    handler.stream = recorder
    stream.release.set()
    handler.close()
    assert all(len(c.encode()) <= PIPE_BUF and c.endswith("\n") for c in recorder.chunks)
    assert len(recorder.chunks) > 1
    lines = "".join(recorder.chunks).splitlines()
    assert [line.rsplit("i=", 1)[1] for line in lines] == [str(i) for i in range(500)]
