"""Recordings the PBX already wrote: a folder watched for stereo files.

A file is taken once it has stopped growing for ``inbox.settle_s``; its analysis is written
to ``calls/<name>.json`` and the recording moved to ``calls/``; a file that cannot be
analysed goes to ``inbox/failed/`` with a ``.error.txt`` beside it saying why. Nothing is
deleted. A ``<name>.meta.json`` beside a file says who talked and when (``sidecar.py``); the
upload API (``POST /api/v1/recordings``) writes both.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..cdr.record import Context
from ..config import Settings
from ..media.live import day_folder, new_uid
from ..media.session import Stages
from ..system import sealing
from .files import AudioFileError, analyse_files
from .sidecar import SidecarError, read_sidecar, sidecar_path

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac"}


class InboxWatcher:
    """Polls the inbox and analyses each settled recording through the call pipeline."""

    def __init__(self, settings: Settings, stages: Stages | None = None,
                 on_result: Callable[[Path], object] | None = None) -> None:
        """``on_result(path)`` is told of each call JSON written (the store indexes it)."""
        self.settings = settings
        self.on_result = on_result
        self.stages = stages
        self.inbox = settings.paths.inbox
        self.failed = self.inbox / "failed"
        self.calls = settings.paths.calls
        for d in (self.inbox, self.failed, self.calls):
            d.mkdir(parents=True, exist_ok=True)
        self._seen: dict[Path, tuple[int, float]] = {}

    def _settled(self, path: Path, now: float) -> bool:
        st = path.stat()
        key = (st.st_size, st.st_mtime)
        prev = self._seen.get(path)
        if prev is None or prev[0] != key[0]:
            self._seen[path] = (st.st_size, now)
            return False
        return now - prev[1] >= self.settings.inbox.settle_s

    def poll_once(self, now: float | None = None) -> list[Path]:
        """Analyse every settled file; return the JSON files written."""
        now = time.monotonic() if now is None else now
        written = []
        for path in sorted(self.inbox.iterdir()):
            if not path.is_file() or path.suffix.lower() not in AUDIO_SUFFIXES:
                continue
            try:
                if not self._settled(path, now):
                    continue
            except FileNotFoundError:
                continue
            self._seen.pop(path, None)
            written.extend(self._process(path))
        return written

    def _process(self, path: Path) -> list[Path]:
        meta = sidecar_path(path)
        try:
            info = read_sidecar(path, Context.from_settings(self.settings))
            result = analyse_files([path], self.settings, stages=self.stages, info=info)
        except (AudioFileError, SidecarError) as exc:
            log.error("recording rejected", extra={"file": path.name, "reason": str(exc)})
            os.replace(path, self.failed / path.name)
            if meta.exists():
                os.replace(meta, self.failed / meta.name)
            (self.failed / f"{path.name}.error.txt").write_text(str(exc) + "\n", encoding="utf-8")
            return []
        # Kept like the box's own calls: calls/<day of its start>/<uid>.*, so a PBX that
        # reuses a file name never overwrites an earlier call
        started = result["call"]["started_at"]
        uid = new_uid(started)
        day = day_folder(self.calls, started)
        day.mkdir(parents=True, exist_ok=True)
        recording = day / f"{uid}{path.suffix.lower()}"
        out = day / f"{uid}.json"
        os.replace(path, recording)
        meta.unlink(missing_ok=True)            # what it said is in the call JSON now
        # ``files`` is what the recognizer reads speech from; ``recording`` is what the
        # panel plays, named as the box's own recordings are: beside the call JSON
        extra = result["call"]["extra"]
        extra.update(uid=uid, files=[str(recording)], recording=recording.name,
                     original_name=path.name)
        sealing.write_json(out, result)
        sealing.seal_file(recording)            # [privacy] encrypt
        log.info("recording analysed", extra={"file": path.name, "uid": uid, "json": out.name})
        if self.on_result is not None:
            self.on_result(out)
        return [out]

    def run(self, stop: threading.Event) -> None:
        """Poll until ``stop`` is set."""
        log.info("inbox watching", extra={"dir": str(self.inbox)})
        while not stop.is_set():
            try:
                self.poll_once()
            except OSError as exc:
                log.error("inbox poll failed", extra={"reason": str(exc)})
            stop.wait(self.settings.inbox.poll_s)
