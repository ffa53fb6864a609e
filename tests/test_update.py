"""Signed A/B updates on a temporary tree: a good bundle goes to the inactive slot and the
switch is atomic; unsigned, foreign-key, tampered, downgrade and path-escaping bundles are
refused with nothing changed; the health check confirms or rolls back."""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from appliance.system import update
from appliance.system.update import Slots, UpdateError, build_bundle, read_bundle, trusted_keys


@pytest.fixture
def tree(tmp_path):
    keys = tmp_path / "keys"
    keys.mkdir()
    update.generate_key(tmp_path / "release.pem", keys / "release.pub")
    update.generate_key(tmp_path / "stranger.pem", tmp_path / "stranger.pub")
    root = tmp_path / "root"
    (root / "slots" / "a").mkdir(parents=True)
    (root / "slots" / "a" / "slot.json").write_text(json.dumps({"version": "1.0.0"}))
    (root / "slots" / "a" / "marker").write_text("old")
    os.symlink("slots/a", root / "current")
    payload = tmp_path / "payload"
    (payload / "venv" / "bin").mkdir(parents=True)
    (payload / "venv" / "bin" / "appliance").write_text("#!/bin/sh\necho new\n")
    (payload / "marker").write_text("new")
    return tmp_path, Slots(root), trusted_keys(keys)


def _bundle(tmp_path: Path, version: str, key: str = "release.pem") -> Path:
    out = tmp_path / f"bundle-{version}-{key}.tar"
    build_bundle(tmp_path / "payload", version, tmp_path / key, out)
    return out


def _rewrite(src: Path, dst: Path, change) -> Path:
    """Copy a bundle, letting ``change(name, data)`` alter or drop (None) members."""
    with tarfile.open(src) as tin, tarfile.open(dst, "w") as tout:
        for m in tin.getmembers():
            data = change(m.name, tin.extractfile(m).read())
            if data is None:
                continue
            info = tarfile.TarInfo(m.name)
            info.size = len(data)
            tout.addfile(info, io.BytesIO(data))
    return dst


def _unchanged(slots: Slots) -> None:
    assert slots.active() == "a" and not slots.state()
    assert (slots.slot("a") / "marker").read_text() == "old" and not slots.slot("b").exists()


def test_good_bundle_goes_to_the_inactive_slot_and_switches(tree):
    tmp, slots, keys = tree
    state = slots.apply(read_bundle(_bundle(tmp, "1.1.0"), keys))
    assert state["pending"] == "b" and state["previous"] == "a" and state["from_version"] == "1.0.0"
    assert slots.active() == "b" and os.readlink(slots.current_link) == "slots/b"
    assert (slots.current_link / "marker").read_text() == "new"
    assert (slots.slot("a") / "marker").read_text() == "old"       # the old slot is kept
    assert slots.version("b") == "1.1.0"
    with pytest.raises(UpdateError, match="still being checked"):
        slots.apply(read_bundle(_bundle(tmp, "1.2.0"), keys))


@pytest.mark.parametrize("case,message", [
    ("unsigned", "unsigned bundle"),
    ("stranger", "bad signature"),
    ("manifest edited", "bad signature"),
    ("payload swapped", "tampered bundle"),
    ("no keys", "no trusted update key"),
    ("not a tar", "not a readable bundle"),
    ("extra member", "unexpected members"),
])
def test_bad_bundles_are_refused_and_nothing_changes(tree, case, message):
    tmp, slots, keys = tree
    good = _bundle(tmp, "1.1.0")
    bad = tmp / "bad.tar"
    if case == "unsigned":
        _rewrite(good, bad, lambda n, d: None if n == "manifest.sig" else d)
    elif case == "stranger":
        bad = _bundle(tmp, "1.1.0", "stranger.pem")
    elif case == "manifest edited":
        _rewrite(good, bad, lambda n, d: d.replace(b'"1.1.0"', b'"9.9.9"') if n == "manifest.json" else d)
    elif case == "payload swapped":
        other = io.BytesIO()
        with tarfile.open(fileobj=other, mode="w") as t:
            info = tarfile.TarInfo("marker")
            info.size = 4
            t.addfile(info, io.BytesIO(b"evil"))
        _rewrite(good, bad, lambda n, d: other.getvalue() if n == "payload.tar" else d)
    elif case == "no keys":
        keys = []
        bad = good
    elif case == "not a tar":
        bad.write_bytes(b"MZ not a bundle" * 100)
    elif case == "extra member":
        with tarfile.open(good) as tin, tarfile.open(bad, "w") as tout:
            for m in tin.getmembers():
                tout.addfile(m, tin.extractfile(m))
            info = tarfile.TarInfo("run-me.sh")
            info.size = 2
            tout.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(UpdateError, match=message):
        slots.apply(read_bundle(bad, keys))
    _unchanged(slots)


def test_downgrade_and_same_version_are_refused(tree):
    tmp, slots, keys = tree
    for version in ("1.0.0", "0.9.7"):
        with pytest.raises(UpdateError, match="downgrade refused"):
            slots.apply(read_bundle(_bundle(tmp, version), keys))
    _unchanged(slots)


def test_a_signed_payload_escaping_its_slot_is_refused(tree):
    tmp, slots, keys = tree
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as t:
        info = tarfile.TarInfo("../../escaped")
        info.size = 3
        t.addfile(info, io.BytesIO(b"bad"))
    data = evil.getvalue()
    manifest = json.dumps({"format": update.FORMAT, "version": "2.0.0", "created": 0,
                           "payload": {"sha256": hashlib.sha256(data).hexdigest(),
                                       "size": len(data)}}).encode()
    from cryptography.hazmat.primitives.serialization import load_pem_private_key
    key = load_pem_private_key((tmp / "release.pem").read_bytes(), None)
    bundle = tmp / "evil.tar"
    with tarfile.open(bundle, "w") as t:
        for name, blob in (("manifest.json", manifest), ("manifest.sig", key.sign(manifest)),
                           ("payload.tar", data)):
            info = tarfile.TarInfo(name)
            info.size = len(blob)
            t.addfile(info, io.BytesIO(blob))
    with pytest.raises(UpdateError, match="payload not unpacked"):
        slots.apply(read_bundle(bundle, keys))
    assert not (tmp / "escaped").exists() and not (tmp / "root" / "escaped").exists()
    _unchanged(slots)


def test_health_confirms_or_rolls_back(tree):
    tmp, slots, keys = tree
    assert slots.confirm_or_rollback(lambda: True) == "none"
    state = slots.apply(read_bundle(_bundle(tmp, "1.1.0"), keys), now=1000.0)
    t0 = state["switched_at"]
    assert slots.confirm_or_rollback(lambda: False, deadline_s=600, now=t0 + 60) == "waiting"
    assert slots.active() == "b"
    assert slots.confirm_or_rollback(lambda: False, deadline_s=600, now=t0 + 601) == "rolled back"
    assert slots.active() == "a" and (slots.current_link / "marker").read_text() == "old"
    assert slots.state()["restored"] == "1.0.0"
    # a later, good version is confirmed when healthy
    slots.apply(read_bundle(_bundle(tmp, "1.2.0"), keys), now=2000.0)
    assert slots.confirm_or_rollback(lambda: True, now=2010.0) == "confirmed"
    assert slots.active() == "b" and slots.state()["confirmed"] == "b"


def test_cli_update_keygen_build_apply(tmp_path):
    cli = [sys.executable, "-m", "appliance.cli", "update"]
    env = dict(os.environ, APPLIANCE_PATHS__DATA_DIR=str(tmp_path / "data"))
    run = lambda *a: subprocess.run(cli + list(a), env=env, capture_output=True, text=True,  # noqa: E731
                                    timeout=60)
    keys = tmp_path / "keys"
    keys.mkdir()
    assert run("keygen", str(keys / "release.pem")).returncode == 0
    payload = tmp_path / "payload"
    payload.mkdir()
    (payload / "marker").write_text("v2")
    bundle = tmp_path / "b.tar"
    out = run("build", str(payload), "--version", "2.0.0", "--key", str(keys / "release.pem"),
              "--out", str(bundle))
    assert out.returncode == 0, out.stderr
    root = tmp_path / "root"
    (root / "slots" / "a").mkdir(parents=True)
    os.symlink("slots/a", root / "current")
    out = run("apply", str(bundle), "--root", str(root), "--keys", str(tmp_path / "nokeys"))
    assert out.returncode == 1 and "no trusted update key" in out.stderr
    out = run("apply", str(bundle), "--root", str(root), "--keys", str(keys))
    assert out.returncode == 0 and "slot b" in out.stdout, out.stderr
    assert (root / "current" / "marker").read_text() == "v2"


class _Healthz:
    """A /healthz on loopback answering a fixed status."""

    def __init__(self, status: int, body: dict | None = None) -> None:
        import http.server
        import json
        import threading

        code = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(code)
                self.end_headers()
                if body is not None:
                    self.wfile.write(json.dumps(body).encode())

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/healthz"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _outside_check(tmp_path: Path, root: Path, url: str, deadline: str) -> str:
    """The image's copy of the check: slots.py and atomic.py alone, run with the standard
    library only (-S: no site-packages, so nothing of the slot's virtualenv)."""
    lib = tmp_path / "lib" / "slotcheck"
    lib.mkdir(parents=True, exist_ok=True)
    (lib / "__init__.py").write_text("")
    src = Path(update.__file__).parent
    for name in ("slots.py", "atomic.py"):
        (lib / name).write_text((src / name).read_text())
    out = subprocess.run([sys.executable, "-S", "-m", "slotcheck.slots", "check", "--root", str(root),
                          "--health", url, "--deadline", deadline, "--restart", ""],
                         env={"PYTHONPATH": str(lib.parent), "PATH": os.environ["PATH"]},
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()


def test_check_outside_the_slots_rolls_back_a_sick_slot_and_confirms_a_healthy_one(tree):
    tmp_path, slots, keys = tree
    sick, well = _Healthz(503), _Healthz(200)
    try:
        slots.apply(read_bundle(_bundle(tmp_path, "1.1.0"), keys))
        assert _outside_check(tmp_path, slots.root, sick.url, "600") == "update check: waiting"
        assert slots.active() == "b"
        assert _outside_check(tmp_path, slots.root, sick.url, "0") == "update check: rolled back"
        assert slots.active() == "a" and slots.state()["rolled_back"] == "b"
        slots.apply(read_bundle(_bundle(tmp_path, "1.2.0"), keys))
        assert _outside_check(tmp_path, slots.root, well.url, "600") == "update check: confirmed"
        assert slots.active() == "b" and slots.state()["confirmed"] == "b"
        assert _outside_check(tmp_path, slots.root, well.url, "600") == "update check: none"
    finally:
        sick.close()
        well.close()


def test_old_store_damage_alone_does_not_roll_an_update_back(tree):
    # lost data predates the new version: the admin must see it, the version is not to blame
    tmp_path, slots, keys = tree
    checks = {"registration": True, "broker": True, "disk": True, "queue": True, "model": True}
    damaged = _Healthz(503, {"ok": False, "checks": {**checks, "store": False}})
    sick = _Healthz(503, {"ok": False, "checks": {**checks, "model": False, "store": False}})
    try:
        slots.apply(read_bundle(_bundle(tmp_path, "1.1.0"), keys))
        assert _outside_check(tmp_path, slots.root, sick.url, "0") == "update check: rolled back"
        slots.apply(read_bundle(_bundle(tmp_path, "1.2.0"), keys))
        assert _outside_check(tmp_path, slots.root, damaged.url, "600") == "update check: confirmed"
    finally:
        damaged.close()
        sick.close()
