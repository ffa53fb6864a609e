"""The README's HTTP examples, run as written (curl) against a running panel: only the
address is the test server's."""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from appliance.web.app import WebServer
from paneldata import Box
from waiting import free_port

ROOT = Path(__file__).parent.parent


def readme_curls() -> list[str]:
    """The ``$ curl ...`` commands of the README's examples, continuation lines joined."""
    text = (ROOT / "README.md").read_text(encoding="utf-8").replace("\\\n", " ")
    return [m.group(1) for m in re.finditer(r"^\$ (curl .*)$", text, re.M)]


def _free_port() -> int:
    return free_port(socket.SOCK_STREAM)


@pytest.fixture
def running(tmp_path):
    box = Box(tmp_path / "data")
    box.settings.web.bind_address, box.settings.web.port = "127.0.0.1", _free_port()
    server = WebServer(box.app, box.settings)
    server.start()
    yield box, server.url
    server.stop()
    box.close()


def test_the_readme_curl_examples_work_as_written(running, tmp_path):
    assert shutil.which("curl")
    box, url = running
    commands = readme_curls()
    assert any("cdr/asterisk" in c for c in commands) and any("kpis" in c for c in commands)
    shutil.copy(Path(__file__).parent / "data" / "cdr" / "Master.csv", tmp_path / "Master.csv")
    token = box.app.extensions["tokens"].create("pbx", "admin")
    for command in commands:
        command = command.replace("http://127.0.0.1:8080", url)
        out = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True,
                             env={"TOKEN": token, "PATH": "/usr/bin:/bin"}, timeout=30)
        assert out.returncode == 0, (command, out.stderr)
        body = json.loads(out.stdout)
        assert "error" not in body, (command, body)
    assert len(box.db.cdr.rows(0, 2e9)) == 4            # the good lines of Master.csv
