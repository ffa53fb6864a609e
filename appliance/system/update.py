"""Signed A/B updates.

A **bundle** is a tar file of three members:
- ``manifest.json``: ``{format, version, created, payload: {sha256, size}}``;
- ``manifest.sig``: the Ed25519 signature of ``manifest.json``'s bytes;
- ``payload.tar``: the new contents of a slot (the appliance's virtualenv, model, units).

Applying a bundle checks the signature against the trusted keys, the payload's hash and
size, and that its version is newer than the running one (unsigned, tampered and downgrade
bundles are refused with the reason, and nothing is touched); then ``slots.py`` unpacks it
into the inactive slot and switches to it.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (Encoding, NoEncryption, PrivateFormat,
                                                          PublicFormat, load_pem_private_key,
                                                          load_pem_public_key)

from .atomic import write_text_atomic
from .slots import Slots, UpdateError, version_key

__all__ = ["Bundle", "Slots", "UpdateError", "build_bundle", "generate_key", "read_bundle",
           "trusted_keys", "version_key"]

log = logging.getLogger(__name__)

FORMAT = "appliance-update/1"
MANIFEST, SIGNATURE, PAYLOAD = "manifest.json", "manifest.sig", "payload.tar"
MAX_MANIFEST = 64 * 1024
HANDOFF = "pending.tar"         # <data_dir>/updates/: a verified bundle for the root updater


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
