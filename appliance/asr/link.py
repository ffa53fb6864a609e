"""Speech pieces from the capture workers to the daemon's recognition service.

A local socket (Linux abstract namespace, so no file to go stale) with the standard
library's framing and HMAC handshake (``multiprocessing.connection``; only ``send_bytes`` and
``recv_bytes``, never pickle). Each message is one piece: a small JSON header and its int16
audio. The worker side never blocks a call: it queues up to ``MAX_QUEUED_S`` of audio and
drops what does not fit or cannot be sent, because the daemon reads any piece it did not get
from the recording once the call is written.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import secrets
import struct
import threading
import time
from multiprocessing.connection import Client, Connection, Listener

import numpy as np

from ..core.frames import PIPELINE_RATE
from .pieces import PieceSpec
from .service import AsrService

log = logging.getLogger(__name__)

ENV_ADDRESS = "APPLIANCE_ASR_ADDRESS"
ENV_KEY = "APPLIANCE_ASR_KEY"
MAX_PIECE_S = 30.0
MAX_MESSAGE = 4096 + int(MAX_PIECE_S * PIPELINE_RATE) * 2
MAX_QUEUED_S = 120.0
RETRY_S = 2.0
_HEAD = struct.Struct(">I")


def encode(ref: str, piece: PieceSpec, pcm: np.ndarray) -> bytes:
    head = json.dumps({"ref": ref, "piece": piece.as_list()}).encode()
    return _HEAD.pack(len(head)) + head + np.ascontiguousarray(pcm, np.int16).tobytes()


def decode(message: bytes) -> tuple[str, PieceSpec, np.ndarray]:
    """ValueError when the message is not a well-formed piece."""
    if len(message) < _HEAD.size:
        raise ValueError("short message")
    (n,) = _HEAD.unpack_from(message)
    if n > 4096 or _HEAD.size + n > len(message):
        raise ValueError("bad header length")
    head = json.loads(message[_HEAD.size:_HEAD.size + n])
    ref = head.get("ref")
    if not isinstance(ref, str) or not 0 < len(ref) <= 64:
        raise ValueError("bad call reference")
    piece = PieceSpec.from_list(head.get("piece"))
    body = message[_HEAD.size + n:]
    if len(body) % 2 or len(body) // 2 != (piece.end - piece.start) * (PIPELINE_RATE // 50):
        raise ValueError("audio length does not match the piece")
    return ref, piece, np.frombuffer(body, np.int16)


class PieceServer:
    """The daemon's end: accepts workers, hands their pieces to the service."""

    def __init__(self, service: AsrService) -> None:
        self.service = service
        self.key = secrets.token_bytes(32)
        self.address = f"\0call-appliance-asr-{os.getpid()}-{secrets.token_hex(4)}"
        self._listener = Listener(self.address, family="AF_UNIX", authkey=self.key)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="asr-link", daemon=True)
        self._thread.start()

    def env(self) -> dict[str, str]:
        """What a worker needs to connect (its environment)."""
        return {ENV_ADDRESS: self.address.lstrip("\0"), ENV_KEY: self.key.hex()}

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn = self._listener.accept()
            except OSError:
                if self._stop.is_set():
                    return
                continue            # a failed handshake (wrong key): refused, go on
            except Exception:       # noqa: BLE001 - AuthenticationError and the like
                log.warning("speech link refused a connection")
                continue
            threading.Thread(target=self._serve, args=(conn,), name="asr-link-conn",
                             daemon=True).start()

    def _serve(self, conn: Connection) -> None:
        origin = object()           # this connection's calls
        try:
            while True:
                try:
                    message = conn.recv_bytes(MAX_MESSAGE)
                except (EOFError, OSError):
                    return
                try:
                    ref, piece, pcm = decode(message)
                except ValueError as exc:
                    log.warning("speech piece refused", extra={"reason": str(exc)})
                    continue
                self.service.offer(ref, piece, pcm, origin=origin)
        finally:
            conn.close()
            self.service.forget_origin(origin)

    def close(self) -> None:
        self._stop.set()
        self._listener.close()


class PieceClient:
    """A worker's end: ``offer`` queues, a thread sends; nothing here waits for the daemon."""

    def __init__(self, address: str, key: bytes) -> None:
        self.address, self.key = address, key
        self._q: queue.SimpleQueue[tuple[bytes, int] | None] = queue.SimpleQueue()
        self._queued = 0                  # samples waiting to be sent
        self._lock = threading.Lock()
        self.sent = self.dropped = 0
        self._thread = threading.Thread(target=self._send_loop, name="asr-link", daemon=True)
        self._thread.start()

    @classmethod
    def from_env(cls) -> "PieceClient | None":
        address, key = os.environ.get(ENV_ADDRESS), os.environ.get(ENV_KEY)
        if not address or not key:
            return None
        return cls("\0" + address, bytes.fromhex(key))   # an abstract socket name

    def offer(self, ref: str, piece: PieceSpec, pcm: np.ndarray) -> None:
        with self._lock:
            if self._queued + len(pcm) > MAX_QUEUED_S * PIPELINE_RATE:
                self.dropped += 1
                return
            self._queued += len(pcm)
        self._q.put((encode(ref, piece, pcm), len(pcm)))

    def _send_loop(self) -> None:
        conn: Connection | None = None
        last_warning = 0.0
        while True:
            item = self._q.get()
            if item is None:
                break
            message, samples = item
            with self._lock:
                self._queued -= samples
            try:
                if conn is None:
                    conn = Client(self.address, family="AF_UNIX", authkey=self.key)
                conn.send_bytes(message)
                self.sent += 1
            except Exception as exc:    # noqa: BLE001 - the daemon reads it from the recording
                self.dropped += 1
                if conn is not None:
                    conn.close()
                    conn = None
                if time.monotonic() - last_warning > 60:
                    last_warning = time.monotonic()
                    log.warning("speech link down; pieces left to the recording",
                                extra={"reason": str(exc) or type(exc).__name__})
                time.sleep(RETRY_S)
        if conn is not None:
            conn.close()

    def close(self, timeout: float = 5.0) -> None:
        self._q.put(None)
        self._thread.join(timeout)
