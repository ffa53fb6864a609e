"""Signed A/B updates.

A **bundle** is a tar file of three members:
- ``manifest.json``: ``{format, version, created, payload: {sha256, size}}``;
- ``manifest.sig``: the Ed25519 signature of ``manifest.json``'s bytes;
- ``payload.tar``: the new contents of a slot (the appliance's virtualenv, model, units).

On the box, ``<root>/slots/a`` and ``<root>/slots/b`` hold two installations and
``<root>/current`` is a symlink to the one that runs. Applying a bundle:
1. checks the signature against the trusted keys, the payload's hash and size, and that
   its version is newer than the running one (unsigned, tampered and downgrade bundles are
   refused with the reason, and nothing is touched);
2. unpacks the payload into the *inactive* slot (safely: no links, no paths outside it);
3. switches ``current`` to it with one atomic rename, and records the switch as pending.

After the restart, ``confirm_or_rollback`` (run by the new daemon once it is up) marks the
slot good when the health check passes; a failed health check, or no confirmation within
``deadline_s`` (the new version does not even start), switches back to the previous slot.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                          PublicFormat, load_pem_private_key,
                                                          load_pem_public_key)

from .atomic import fsync_dir, write_json_atomic, write_text_atomic

log = logging.getLogger(__name__)

FORMAT = "appliance-update/1"
MANIFEST, SIGNATURE, PAYLOAD = "manifest.json", "manifest.sig", "payload.tar"
MAX_MANIFEST = 64 * 1024
SLOTS = ("a", "b")


class UpdateError(ValueError):
    """The bundle was refused or could not be applied; nothing changed. The message says why."""


def version_key(version: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in version.split("."))
    except ValueError:
        raise UpdateError(f"version {version[:40]!r} is not dotted numbers such as 1.4.2") from None


# --- keys and signing (the release side) ---
def generate_key(private_path: Path, public_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    write_text_atomic(private_path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8,
                                                      NoEncryption()), mode=0o600)
    write_text_atomic(public_path, key.public_key().public_bytes(
        Encoding.PEM, PublicFormat.SubjectPublicKeyInfo))


def build_bundle(payload_dir: Path, version: str, private_key: Path, out: Path) -> dict[str, Any]:
    """Pack ``payload_dir`` as a bundle of ``version`` signed with ``private_key`` (PEM)."""
    version_key(version)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(payload_dir, arcname=".")
    payload = buf.getvalue()
    manifest = json.dumps({"format": FORMAT, "version": version, "created": time.time(),
                           "payload": {"sha256": hashlib.sha256(payload).hexdigest(),
                                       "size": len(payload)}}, indent=1).encode()
    key = load_pem_private_key(private_key.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise UpdateError(f"{private_key} is not an Ed25519 private key")
    with tarfile.open(out, "w") as tar:
        for name, data in ((MANIFEST, manifest), (SIGNATURE, key.sign(manifest)), (PAYLOAD, payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
            tar.addfile(info, io.BytesIO(data))
    return json.loads(manifest)


# --- checking (the box side) ---
def trusted_keys(keys_dir: Path) -> list[Ed25519PublicKey]:
    keys = []
    for path in sorted(keys_dir.glob("*.pub")) if keys_dir.is_dir() else []:
        key = load_pem_public_key(path.read_bytes())
        if isinstance(key, Ed25519PublicKey):
            keys.append(key)
    return keys


@dataclass
class Bundle:
    manifest: dict[str, Any]
    payload: bytes

    @property
    def version(self) -> str:
        return str(self.manifest["version"])


def read_bundle(path: Path, keys: list[Ed25519PublicKey], max_bytes: int = 4 << 30) -> Bundle:
    """The bundle's manifest and payload once signature and hash check out; UpdateError
    saying what is wrong otherwise."""
    if not keys:
        raise UpdateError("no trusted update key on this box (update.keys_dir): refusing every bundle")
    try:
        with tarfile.open(path, "r:") as tar:
            members = {m.name.lstrip("./"): m for m in tar.getmembers()}
            extra = sorted(set(members) - {MANIFEST, SIGNATURE, PAYLOAD})
            if extra:
                raise UpdateError(f"not an update bundle: unexpected members {extra}")
            if MANIFEST not in members or PAYLOAD not in members:
                raise UpdateError("not an update bundle: manifest.json and payload.tar are required")
            if SIGNATURE not in members:
                raise UpdateError("unsigned bundle (no manifest.sig): refused")
            if not all(m.isfile() for m in members.values()):
                raise UpdateError("bundle members must be plain files")
            if members[MANIFEST].size > MAX_MANIFEST or members[PAYLOAD].size > max_bytes:
                raise UpdateError("bundle member too large")
            manifest_raw = tar.extractfile(members[MANIFEST]).read()     # type: ignore[union-attr]
            signature = tar.extractfile(members[SIGNATURE]).read()       # type: ignore[union-attr]
            for key in keys:
                try:
                    key.verify(signature, manifest_raw)
                    break
                except InvalidSignature:
                    continue
            else:
                raise UpdateError("bad signature: the bundle was not signed by a trusted key, or "
                                  "its manifest was changed after signing")
            manifest = json.loads(manifest_raw)
            if manifest.get("format") != FORMAT:
                raise UpdateError(f"bundle format {manifest.get('format')!r}; this box reads {FORMAT}")
            payload = tar.extractfile(members[PAYLOAD]).read()         # type: ignore[union-attr]
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UpdateError(f"not a readable bundle: {exc}") from None
    expect = manifest.get("payload") or {}
    if len(payload) != expect.get("size") or hashlib.sha256(payload).hexdigest() != expect.get("sha256"):
        raise UpdateError("tampered bundle: the payload does not match its signed hash")
    version_key(str(manifest.get("version", "")))
    return Bundle(manifest, payload)


# --- slots ---
class Slots:
    """``<root>/slots/{a,b}``, ``<root>/current`` (symlink) and ``<root>/update-state.json``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.current_link = root / "current"
        self.state_path = root / "update-state.json"

    def active(self) -> str:
        try:
            return Path(os.readlink(self.current_link)).name
        except OSError:
            return "a"

    def inactive(self) -> str:
        return "b" if self.active() == "a" else "a"

    def slot(self, name: str) -> Path:
        return self.root / "slots" / name

    def version(self, name: str) -> str | None:
        try:
            return json.loads((self.slot(name) / "slot.json").read_text())["version"]
        except (OSError, ValueError, KeyError):
            return None

    def state(self) -> dict[str, Any]:
        try:
            return json.loads(self.state_path.read_text())
        except (OSError, ValueError):
            return {}

    def _switch(self, name: str) -> None:
        tmp = self.root / ".current.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(Path("slots") / name, tmp)
        os.replace(tmp, self.current_link)         # atomic: old or new, never neither
        fsync_dir(self.root)

    def apply(self, bundle: Bundle, now: float | None = None) -> dict[str, Any]:
        """Unpack into the inactive slot and switch to it; the switch stays pending until
        ``confirm_or_rollback`` sees the new version healthy."""
        now = time.time() if now is None else now
        running = self.version(self.active())
        if self.state().get("pending"):
            raise UpdateError("an update is still being checked; wait for it to be confirmed or "
                              "rolled back")
        if running is not None and version_key(bundle.version) <= version_key(running):
            raise UpdateError(f"downgrade refused: the bundle is {bundle.version}, the box runs "
                              f"{running}")
        target = self.inactive()
        staging = self.root / "slots" / f".{target}.new"
        _rmtree(staging)
        staging.mkdir(parents=True)
        try:
            with tarfile.open(fileobj=io.BytesIO(bundle.payload), mode="r:") as tar:
                tar.extractall(staging, filter="data")     # no links out, no absolute paths
        except (tarfile.TarError, OSError) as exc:
            _rmtree(staging)
            raise UpdateError(f"payload not unpacked: {exc}") from None
        write_json_atomic(staging / "slot.json", {"version": bundle.version, "installed_at": now})
        old = self.slot(target)
        _rmtree(old)
        os.replace(staging, old)
        fsync_dir(old.parent)
        previous = self.active()
        self._switch(target)
        state = {"pending": target, "previous": previous, "version": bundle.version,
                 "from_version": running, "switched_at": now}
        write_json_atomic(self.state_path, state)
        log.warning("update applied; restart to run it", extra=state)
        return state

    def confirm_or_rollback(self, healthy: Callable[[], bool], deadline_s: float = 600.0,
                            now: float | None = None) -> str:
        """After a switch: ``confirmed`` when healthy, ``rolled back`` when not healthy by
        the deadline (or when this is the old slot running again), else ``waiting``;
        ``none`` without a pending switch."""
        now = time.time() if now is None else now
        state = self.state()
        if not state.get("pending"):
            return "none"
        if self.active() == state["pending"] and healthy():
            write_json_atomic(self.state_path, {"confirmed": state["pending"], "version": state["version"],
                                                "at": now})
            log.info("update confirmed", extra={"version": state["version"]})
            return "confirmed"
        if now - float(state["switched_at"]) < deadline_s:
            return "waiting"
        self._switch(state["previous"])
        write_json_atomic(self.state_path, {"rolled_back": state["pending"], "version": state["version"],
                                            "restored": state.get("from_version"), "at": now})
        log.error("update rolled back: not healthy in time",
                  extra={"version": state["version"], "restored": state.get("from_version")})
        return "rolled back"


def _rmtree(path: Path) -> None:
    import shutil

    if path.exists() or path.is_symlink():
        shutil.rmtree(path)
