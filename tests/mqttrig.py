"""A real mosquitto broker for the tests (Debian's package), and a collecting subscriber."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

from waiting import free_port, wait_for

HOST = "127.0.0.1"


def free_tcp_port() -> int:
    return free_port(socket.SOCK_STREAM)


class Mosquitto:
    """``mosquitto -c`` on a loopback port; optional password file and TLS."""

    def __init__(self, workdir: Path, port: int | None = None, users: dict[str, str] | None = None,
                 tls: dict[str, Path] | None = None, persistence: bool = False) -> None:
        assert shutil.which("mosquitto"), "mosquitto missing: `make test` installs it"
        self.workdir = workdir
        self.fixed_port = port is not None
        self.port = port or free_tcp_port()
        self.users = users
        self.tls = tls
        self.persistence = persistence
        self.proc: subprocess.Popen | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    def _config(self) -> Path:
        lines = [f"listener {self.port} {HOST}", f"persistence {str(self.persistence).lower()}",
                 f"persistence_location {self.workdir}/", "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice"]
        if os.geteuid() == 0:
            lines.append("user root")    # else it drops to 'mosquitto', who cannot read the test's files
        if self.users is not None:
            pw = self.workdir / "passwd"
            pw.write_text("")
            for user, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(pw), user, password], check=True)
            lines += ["allow_anonymous false", f"password_file {pw}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls is not None:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}",
                      f"keyfile {self.tls['key']}", "require_certificate true"]
        cfg = self.workdir / "mosquitto.conf"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def start(self) -> None:
        for _ in range(3):          # a free port may be taken before mosquitto binds it
            if self._start():
                return
            assert not self.fixed_port, (self.workdir / "mosquitto.log").read_text()
            self.port = free_tcp_port()
        raise AssertionError("mosquitto did not start: " +
                             (self.workdir / "mosquitto.log").read_text()[-2000:])

    def _start(self) -> bool:
        self.log = open(self.workdir / "mosquitto.log", "ab")
        self.proc = subprocess.Popen(["mosquitto", "-c", str(self._config())],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        def listening() -> bool:
            if self.proc.poll() is not None:
                return True
            try:
                socket.create_connection((HOST, self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        assert wait_for(listening, 10, step=0.05), "mosquitto did not start"
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()            # SIGTERM: persistence is saved
            self.proc.wait(10)
        self.proc = None


class Subscriber:
    """Collects messages of ``topics``; with ``session`` a persistent session that survives
    broker restarts (with broker persistence)."""

    def __init__(self, port: int, topics: str | list[str], session: str | None = None,
                 **tls: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self.cond = threading.Condition()
        self.topics = [topics] if isinstance(topics, str) else topics
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2,
                                  client_id=session or f"test-sub-{time.monotonic_ns()}",
                                  clean_session=session is None)
        if tls:
            self.client.tls_set(ca_certs=tls["ca"], certfile=tls["cert"], keyfile=tls["key"])
        self.subscribed = threading.Event()
        self.client.on_connect = lambda c, *a: c.subscribe([(t, 1) for t in self.topics])
        self.client.on_subscribe = lambda *a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.2, 1)
        self.client.connect_async(HOST, port, keepalive=10)
        self.client.loop_start()
        assert self.subscribed.wait(10), "subscriber could not subscribe"

    def _on_message(self, client, userdata, msg) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def wait(self, n: int, timeout: float = 20.0, topic: str | None = None) -> list:
        """The first ``n`` messages (of ``topic`` if given), waiting up to ``timeout``."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                got = [m for m in self.messages if topic is None or m.topic == topic]
                if len(got) >= n or time.monotonic() > deadline:
                    return got
                self.cond.wait(0.1)

    def payloads(self, topic: str | None = None) -> list:
        with self.cond:
            return [json.loads(m.payload) for m in self.messages
                    if (topic is None or m.topic == topic) and m.payload.startswith(b"{")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def make_certs(folder: Path) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1 and a client certificate (openssl)."""
    folder.mkdir(parents=True, exist_ok=True)

    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-keyout", "ca.key",
        "-out", "ca.crt", "-subj", "/CN=test CA")
    for name, cn in (("server", "127.0.0.1"), ("client", "box")):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
            f"{name}.csr", "-subj", f"/CN={cn}")
        ext = folder / f"{name}.ext"
        ext.write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else
                       "extendedKeyUsage=clientAuth\n")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", str(ext))
    return {"ca": folder / "ca.crt", "cert": folder / "server.crt", "key": folder / "server.key",
            "client_cert": folder / "client.crt", "client_key": folder / "client.key"}
