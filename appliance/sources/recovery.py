"""Calls cut short by a crash or power loss: their recordings are repaired and analysed at
start-up, so a crash costs at most the last second of audio, never the call."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from ..config import Settings
from .files import AudioFileError, analyse_files
from ..system import sealing
from ..system.atomic import write_json_atomic
from ..media.recorder import repair_wav, wav_to_flac
from ..media.session import Stages

log = logging.getLogger(__name__)


def unfinished_calls(calls_dir: Path, process: str | None = None) -> list[Path]:
    """Metadata files of live calls that never reached the 'done' state (only those of one
    capture process when ``process`` is given)."""
    found = []
    for meta in sorted(calls_dir.glob("*/*.meta.json")):
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            state, tag = doc.get("state"), doc.get("process", "")
        except (OSError, ValueError):
            state, tag = "unreadable", None
        if state not in ("done", "unrecoverable") and (process is None or tag == process):
            found.append(meta)
    return found


def recover_unfinished(settings: Settings, stages: Stages | None = None,
                       process: str | None = None) -> list[Path]:
    """Repair and analyse every unfinished live recording (of one capture process, if given);
    return the result files written."""
    written = []
    for meta_path in unfinished_calls(settings.paths.calls, process):
        uid = meta_path.name.removesuffix(".meta.json")
        wav = meta_path.with_name(f"{uid}.wav")
        try:
            meta: dict[str, Any] = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {"uid": uid, "call": {}}
        if not wav.exists():
            log.error("unfinished call has no recording", extra={"uid": uid})
            continue
        # a sealed recording was finished before the crash (only its state was not written):
        # never repaired as a cut WAV, which would overwrite its envelope
        sealed = sealing.is_sealed(wav)
        try:
            seconds = 0.0 if sealed else repair_wav(wav)
            result = analyse_files([wav], settings, call_id=uid, stages=stages)
            seconds = seconds or float(result.get("duration_s") or 0.0)
        except (AudioFileError, OSError) as exc:
            log.error("unfinished call not recoverable", extra={"uid": uid, "reason": str(exc)})
            meta["state"] = "unrecoverable"
            write_json_atomic(meta_path, meta)
            continue
        call = result["call"]
        for key in ("source", "direction", "agent", "client", "started_at"):
            if meta.get("call", {}).get(key) is not None:
                call[key] = meta["call"][key]
        call["extra"] = {**meta.get("call", {}).get("extra", {}), "uid": uid,
                         "end_reason": "recovered after an appliance crash"}
        call["notes"] = meta.get("call", {}).get("notes", []) + [
            f"recording cut by a crash; {seconds:.1f} s recovered and analysed at start-up"]
        recording = wav
        if settings.recording.format == "flac" and not sealed:
            recording = wav_to_flac(wav)
        call["extra"]["recording"] = recording.name
        out = meta_path.with_name(f"{uid}.json")
        sealing.write_json(out, result)
        meta.update(state="done", recording=recording.name)
        write_json_atomic(meta_path, meta)
        sealing.seal_file(recording)            # [privacy] encrypt, once done
        log.warning("call recovered", extra={"uid": uid, "seconds": round(seconds, 2)})
        written.append(out)
    return written
