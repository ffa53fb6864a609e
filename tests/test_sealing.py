"""Encryption at rest: the sealed format refuses every damage, keys are guarded, and a box
with [privacy] encrypt keeps recordings and call JSON sealed while playback, waveform,
search and the API still work; a key change seals everything again in the background."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
import soundfile as sf

from appliance.store.search import TranscriptIndex
from appliance.system import sealing
from appliance.system.sealing import (CHUNK, MAGIC, DataKey, KeyRing, SealError, seal_bytes,
                                      unseal_bytes)
from conftest import write_wav
from waiting import free_port, wait_for

CLI = [sys.executable, "-m", "appliance.cli"]
KEY = DataKey(bytes(range(32)))


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_round_trip_at_chunk_edges(size):
    data = os.urandom(size)
    sealed = seal_bytes(data, KEY)
    assert sealed.startswith(MAGIC) and len(sealed) == 24 + max(1, -(-size // CHUNK)) * 20 + size
    if size >= 32:      # a shorter run of bytes may turn up in any ciphertext by chance
        assert data[:32] not in sealed
    assert unseal_bytes(sealed, KeyRing(KEY), "f") == data


def _chunks(sealed: bytes) -> list[bytes]:
    out, pos = [], 24
    while pos < len(sealed):
        n = int.from_bytes(sealed[pos:pos + 4], "big")
        out.append(sealed[pos:pos + 4 + n])
        pos += 4 + n
    return out


def test_every_damage_is_refused_never_read_as_something_else():
    data = os.urandom(3 * CHUNK)
    sealed = seal_bytes(data, KEY)
    head, chunks = sealed[:24], _chunks(sealed)
    ring = KeyRing(KEY)
    cases = {
        "truncated": head + b"".join(chunks[:-1]),                  # cut at a chunk's end
        "truncated or damaged": sealed[:-10],                       # cut inside a chunk
        "altered": sealed[:100] + bytes([sealed[100] ^ 1]) + sealed[101:],
        "swapped": head + chunks[1] + chunks[0] + b"".join(chunks[2:]),
        "after its last chunk": sealed + b"x",
    }
    for what, blob in cases.items():
        with pytest.raises(SealError) as err:
            unseal_bytes(blob, ring, "call.json")
        assert "call.json" in str(err.value), what
    with pytest.raises(SealError, match="does not have"):
        unseal_bytes(sealed, KeyRing(DataKey.new()), "call.json")
    assert unseal_bytes(sealed, KeyRing(DataKey.new(), [KEY]), "f") == data   # a replaced key


def test_key_files_are_guarded(tmp_path):
    path = tmp_path / "keys" / "data.key"
    KEY.save(path)
    assert oct(path.stat().st_mode & 0o777) == "0o600" and DataKey.load(path) == KEY
    with pytest.raises(SealError, match="another key"):
        DataKey.new().save(path)
    path.chmod(0o644)
    with pytest.raises(SealError, match="chmod 600"):
        DataKey.load(path)
    path.chmod(0o600)
    path.write_text("not hex")
    with pytest.raises(SealError, match="64 hex digits"):
        DataKey.load(path)
    with pytest.raises(SealError, match="missing"):
        DataKey.load(tmp_path / "nothing.key")


def test_helpers_read_clear_files_and_refuse_sealed_ones_without_a_key(tmp_path):
    clear, sealed = tmp_path / "a.json", tmp_path / "b.json"
    clear.write_text('{"a": 1}')
    sealed.write_bytes(seal_bytes(b'{"b": 2}', KEY))
    sealing.configure(None)
    assert sealing.read_json(clear) == {"a": 1}
    with pytest.raises(SealError, match="encryption is not set up"):
        sealing.read_json(sealed)
    sealing.configure(KeyRing(KEY))
    try:
        assert sealing.read_json(sealed) == {"b": 2} and sealing.read_json(clear) == {"a": 1}
        sealing.write_json(clear, {"c": 3})
        assert clear.read_bytes().startswith(MAGIC) and sealing.read_json(clear) == {"c": 3}
        assert sealing.seal_file(clear) is False                   # already under this key
    finally:
        sealing.configure(None)


def test_the_search_index_never_stays_on_disk_in_clear(tmp_path):
    path = tmp_path / "transcripts.sqlite"
    TranscriptIndex(path).add("u1", 1.0, {"agent": "секретные слова", "client": ""})
    assert path.exists()
    index = TranscriptIndex(path, in_memory=True)
    assert not path.exists()
    index.add("u2", 2.0, {"agent": "секретные слова", "client": ""})
    assert index.search("секретные") == {"u2"} and not path.exists()


# --- a box with encryption on ---

def _config(tmp_path: Path, extra: str = "") -> tuple[Path, Path, int]:
    data, port = tmp_path / "data", free_port()
    cfg = tmp_path / "box.toml"
    cfg.write_text(f"""
[paths]
data_dir = "{data}"
[inbox]
poll_s = 0.2
settle_s = 0.3
[asr]
enabled = false
[sip]
enabled = false
[mqtt]
embedded = false
[web]
port = {port}
[privacy]
encrypt = true
{extra}
""")
    return cfg, data, port


class Daemon:
    def __init__(self, cfg: Path) -> None:
        self.cfg = cfg
        self.log = cfg.with_name("daemon.log")
        self.proc = subprocess.Popen(CLI + ["-c", str(cfg), "run"], stdout=open(self.log, "ab"),
                                     stderr=subprocess.STDOUT)

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


def _results(data: Path) -> list[Path]:
    return [p for p in (data / "calls").glob("*/*.json") if not p.name.endswith(".meta.json")]


def _signed_in(port: int, log: str) -> urllib.request.OpenerDirector:
    """A browser session of the first admin, made with the set-up link the daemon logged."""
    import http.cookiejar
    import re
    import urllib.parse

    from paneldata import PASSWORD

    token = re.search(r"setup\?token=([\w-]+)", log).group(1)
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    base = f"http://127.0.0.1:{port}"
    html = opener.open(f"{base}/setup?token={token}", timeout=30).read().decode()
    csrf = re.search(r'name="csrf-token" content="([^"]+)"', html).group(1)
    form = urllib.parse.urlencode({"token": token, "username": "admin", "password": PASSWORD,
                                   "password2": PASSWORD, "csrf_token": csrf}).encode()
    opener.open(f"{base}/setup", data=form, timeout=30).read()
    return opener


def _api(port: int, token: str, path: str) -> bytes:
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}",
                                 headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.read()


@pytest.mark.slow
def test_a_box_with_encryption_keeps_calls_sealed_and_still_serves_them(tmp_path, real_call):
    cfg, data, port = _config(tmp_path)
    wav = write_wav(tmp_path / "call.wav", real_call[0][: 16000 * 20] * 0.8)
    box = Daemon(cfg)
    try:
        assert wait_for(lambda: (data / "inbox").is_dir() and (data / "run" / "daemon.json").exists(),
                        60), box.text()[-3000:]
        key_file = data / "keys" / "data.key"
        assert oct(key_file.stat().st_mode & 0o777) == "0o600"
        (data / "inbox" / "call.wav").write_bytes(wav.read_bytes())
        assert wait_for(lambda: _results(data), 60), box.text()[-3000:]
        result_path = _results(data)[0]
        recording = next(p for p in result_path.parent.iterdir() if p.suffix == ".wav")
        assert result_path.read_bytes().startswith(MAGIC)
        # the recording is sealed once its call JSON is written (a crash in between leaves a
        # clear, finished recording that the next start seals)
        assert wait_for(lambda: recording.read_bytes().startswith(MAGIC), 60)
        assert b"RIFF" not in recording.read_bytes()[:64] and b"call.wav" not in result_path.read_bytes()
        assert not (data / "store" / "transcripts.sqlite").exists()
        token = subprocess.run(CLI + ["-c", str(cfg), "token", "create", "t", "--role", "admin"],
                               capture_output=True, text=True, check=True).stdout.strip()
        uid = json.loads(_api(port, token, "/api/v1/calls"))["calls"][0]["uid"]
        detail = json.loads(_api(port, token, f"/api/v1/calls/{uid}/detail"))
        assert detail["call"]["duration_s"] == pytest.approx(20.0, abs=0.1)
        assert detail["parties"]["agent"]["talk_s"] > 0                  # read from the sealed JSON
        browser = _signed_in(port, box.text())
        panel = f"http://127.0.0.1:{port}/calls/{uid}"
        assert browser.open(f"{panel}/audio", timeout=30).read() == wav.read_bytes()   # playback
        ranged = browser.open(urllib.request.Request(f"{panel}/audio", headers={"Range": "bytes=44-143"}),
                              timeout=30)
        assert ranged.status == 206 and ranged.read() == wav.read_bytes()[44:144]
        assert len(json.loads(browser.open(f"{panel}/waveform", timeout=30).read())["agent"]) > 0
        assert box.stop() == 0
        # a new key: the box seals every file again at start; the old key stays kept
        # (sealed under the new one) for the backups made before
        old_id = result_path.read_bytes()[8:16]
        backup = result_path.read_bytes()
        run = subprocess.run(CLI + ["-c", str(cfg), "key", "rotate"], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        new_id = DataKey.load(key_file).id
        assert [p.name for p in key_file.parent.glob("retired-*")] == [
            f"retired-{old_id.hex()}-under-{new_id.hex()}"]
        box = Daemon(cfg)
        assert wait_for(lambda: all(p.read_bytes()[8:16] == new_id for p in (result_path, recording)),
                        60), box.text()[-3000:]
        ring = KeyRing.load(key_file)
        assert json.loads(unseal_bytes(backup, ring, "backup"))["duration_s"] > 0
        # the session made before the restart still plays it (sessions live in the store)
        assert browser.open(f"{panel}/audio", timeout=30).read() == wav.read_bytes()
    finally:
        if box.proc.poll() is None:
            box.stop()


@pytest.mark.slow
def test_a_wrong_or_exposed_key_is_refused_and_nothing_is_lost(tmp_path, real_call):
    cfg, data, _ = _config(tmp_path)
    key_file = data / "keys" / "data.key"
    KEY.save(key_file)
    calls = data / "calls" / "2026-11-01"
    calls.mkdir(parents=True)
    sealed = calls / "x.json"
    sealed.write_bytes(seal_bytes(b'{"call": {"extra": {"uid": "x"}}}', DataKey.new()))
    before = sealed.read_bytes()
    key_file.chmod(0o640)
    run = subprocess.run(CLI + ["-c", str(cfg), "run"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 3 and "chmod 600" in run.stderr
    key_file.chmod(0o600)
    box = Daemon(cfg)                           # a key that does not open the file
    try:
        assert wait_for(lambda: "which this box does not have" in box.text(), 60), box.text()[-3000:]
        assert sealed.read_bytes() == before and list(key_file.parent.glob("*.old")) == []
    finally:
        box.stop()


@pytest.mark.slow
def test_a_key_from_a_passphrase_is_waited_for_after_boot(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    cfg, data, _ = _config(tmp_path, f'key_from_passphrase = true\nkey_file = "{run_dir / "data.key"}"')

    def unlock(phrase: str, *extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(CLI + ["-c", str(cfg), "key", "unlock", *extra], input=phrase,
                              capture_output=True, text=True, timeout=60)
    box = Daemon(cfg)
    try:
        assert wait_for(lambda: "waiting for the data key" in box.text(), 60), box.text()[-3000:]
        assert not (data / "run" / "daemon.json").exists()
        assert unlock("short\n").returncode == 1
        assert unlock("correct horse battery\n").returncode == 0
        assert wait_for(lambda: (data / "run" / "daemon.json").exists(), 60), box.text()[-3000:]
        first = (run_dir / "data.key").read_text()
        (run_dir / "data.key").unlink()                           # a reboot empties /run
        wrong = unlock("wrong horse battery\n")
        assert wrong.returncode == 1 and "wrong passphrase" in wrong.stderr
        assert not (run_dir / "data.key").exists()
        assert unlock("correct horse battery\n").returncode == 0
        assert (run_dir / "data.key").read_text() == first        # the same key again
        # a new passphrase: the current one opens the key, which stays kept under the new
        sealed = data / "calls" / "x.json"
        sealed.parent.mkdir(parents=True, exist_ok=True)
        sealed.write_bytes(seal_bytes(b"{}", DataKey.load(run_dir / "data.key")))
        assert unlock("wrong horse battery\nanother long phrase\n", "--new").returncode == 1
        assert unlock("correct horse battery\nanother long phrase\n", "--new").returncode == 0
        assert (run_dir / "data.key").read_text() != first
        ring = KeyRing.load(run_dir / "data.key", data / "keys")
        assert unseal_bytes(sealed.read_bytes(), ring, "x") == b"{}"
        assert unlock("correct horse battery\n").returncode == 1     # the old one no longer
    finally:
        box.stop()


def test_a_sealed_recording_is_read_like_a_clear_one(tmp_path, real_call):
    wav = write_wav(tmp_path / "c.wav", real_call[0][:16000] * 0.5)
    clear, _ = sf.read(str(wav))
    sealing.configure(KeyRing(KEY))
    try:
        assert sealing.seal_file(wav)
        got, rate = sf.read(sealing.audio_source(wav))
        assert rate == 16000 and (got == clear).all()
        assert isinstance(sealing.audio_source(wav), io.BytesIO)
    finally:
        sealing.configure(None)


# --- what an outside review found: no path may lose a key or a sealed file ---

def _settings(tmp_path: Path, **privacy):
    from appliance.config import load_settings

    env = {"APPLIANCE_PATHS__DATA_DIR": str(tmp_path / "data"), "APPLIANCE_PRIVACY__ENCRYPT": "true"}
    env.update({f"APPLIANCE_PRIVACY__{k.upper()}": str(v).lower() if isinstance(v, bool) else str(v)
                for k, v in privacy.items()})
    return load_settings(environ=env)


def test_a_missing_key_file_is_never_replaced_by_a_new_key(tmp_path):
    settings = _settings(tmp_path)
    first = sealing.setup(settings)
    sealing.key_path(settings).unlink()
    try:
        with pytest.raises(SealError, match=f"is missing .this box uses key {first.current.id.hex()}"):
            sealing.setup(settings)
        assert not sealing.key_path(settings).exists()
    finally:
        sealing.configure(None)


def test_switching_to_a_passphrase_keeps_the_random_key_and_its_files(tmp_path):
    from appliance.system.keys import unlock

    settings = _settings(tmp_path)
    random_key = sealing.setup(settings).current
    sealed = tmp_path / "a.json"
    sealed.write_bytes(seal_bytes(b'{"a": 1}', random_key))
    sealing.configure(None)
    run_key = tmp_path / "run" / "data.key"
    passphrase = _settings(tmp_path, key_from_passphrase=True, key_file=run_key)
    with pytest.raises(SealError, match="put it there first"):
        unlock(passphrase, "a long enough phrase")
    assert sealing.key_path(settings).exists()                   # nothing deleted
    run_key.parent.mkdir()
    random_key.save(run_key)
    unlock(passphrase, "a long enough phrase")
    ring = KeyRing.load(run_key, tmp_path / "data" / "keys")
    assert ring.current != random_key and unseal_bytes(sealed.read_bytes(), ring, "a") == b'{"a": 1}'
    with pytest.raises(SealError, match="another key"):          # never overwritten
        DataKey.new().save(run_key)


def test_unlock_never_touches_a_random_key(tmp_path):
    from appliance.system.keys import unlock

    settings = _settings(tmp_path)
    key = sealing.setup(settings).current
    sealing.configure(None)
    with pytest.raises(SealError, match="nothing to unlock"):
        unlock(settings, "a long enough phrase")
    assert DataKey.load(sealing.key_path(settings)) == key


def test_recovery_never_repairs_a_sealed_recording(tmp_path, real_call):
    from appliance.sources.recovery import recover_unfinished

    settings = _settings(tmp_path)
    settings.recording.format = "wav"
    settings.asr.enabled = False
    sealing.setup(settings)
    try:
        day = settings.paths.calls / "2026-11-01"
        day.mkdir(parents=True)
        wav = write_wav(day / "u1.wav", real_call[0][:16000 * 5] * 0.5)
        clear = wav.read_bytes()
        sealing.seal_file(wav)          # sealed, then the crash before its state was written
        (day / "u1.meta.json").write_text(json.dumps({"uid": "u1", "state": "recording",
                                                      "call": {}}))
        written = recover_unfinished(settings)
        assert [p.name for p in written] == ["u1.json"]
        assert sealing.read_bytes(wav) == clear                     # the audio, intact
        assert sealing.read_json(written[0])["duration_s"] == pytest.approx(5.0, abs=0.05)
    finally:
        sealing.configure(None)


def test_resealing_counts_what_it_cannot_seal_and_never_wraps_a_damaged_file(tmp_path, real_call):
    sealing.configure(KeyRing(DataKey.new(), [KEY]))
    try:
        day = tmp_path / "calls" / "2026-11-01"
        day.mkdir(parents=True)
        wav = write_wav(day / "c1.wav", real_call[0][:16000] * 0.5)
        (day / "c1.meta.json").write_text('{"state": "rec')                 # cut by a crash
        damaged = day / "c2.json"
        blob = seal_bytes(b"{}", KEY)
        damaged.write_bytes(bytes([blob[0] ^ 0x20]) + blob[1:])             # its magic altered
        fine = day / "c3.json"
        fine.write_bytes(seal_bytes(b'{"ok": 1}', KEY))                      # under the old key
        sealed, failed = sealing.reseal_all(tmp_path / "calls")
        assert (sealed, failed) == (1, 2)
        assert damaged.read_bytes()[1:] == blob[1:] and wav.read_bytes()[:4] == b"RIFF"
        assert sealing.read_json(fine) == {"ok": 1} and fine.read_bytes()[8:16] != KEY.id
    finally:
        sealing.configure(None)


def test_a_reseal_waits_for_a_write_in_progress(tmp_path):
    import threading

    path = tmp_path / "c.json"
    path.write_text('{"transcript": ["secret"]}')
    sealing.configure(KeyRing(KEY))
    try:
        done = threading.Event()
        with sealing.editing(path):
            worker = threading.Thread(target=lambda: (sealing.seal_file(path), done.set()))
            worker.start()
            assert not done.wait(0.3)       # held: the reseal cannot read the old contents
            sealing.write_json(path, {"transcript": []})
        worker.join(30)
        assert done.is_set() and sealing.read_json(path) == {"transcript": []}
    finally:
        sealing.configure(None)


def test_a_damaged_recording_or_call_file_is_said_on_the_page(box, admin):
    day = next(box.settings.paths.calls.iterdir())
    sealing.configure(KeyRing(KEY))
    try:
        sealing.seal_file(day / "c-polite.flac")
        sealing.seal_file(day / "c-polite.json")
        for name in ("c-polite.flac", "c-polite.json"):
            blob = (day / name).read_bytes()
            (day / name).write_bytes(blob[: len(blob) // 2])               # cut in half
        audio = admin.get("/calls/c-polite/audio", headers={"Accept-Language": "en"})
        assert audio.status_code == 500 and "truncated" in audio.get_data(as_text=True)
        page = admin.get("/calls/c-polite", headers={"Accept-Language": "en"}).get_data(as_text=True)
        assert 'id="unreadable"' in page and "truncated" in page
    finally:
        sealing.configure(None)
