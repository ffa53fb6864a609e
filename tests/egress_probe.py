"""Run the appliance daemon inside a fresh network namespace and record every packet it
sends off the box (run as root under ``unshare --net``; used by test_egress.py).

The namespace has one veth pair: the box's end (``v0``, 10.99.0.2/24, default route via
10.99.0.1 whose neighbour entry points at the peer) and the peer (``v1``, no address), where
a raw socket sees every frame the box sends. Nothing answers, so connections are tried
again and again: what is tried is exactly what would be contacted.

usage: egress_probe.py CONFIG DATA_DIR INBOX_WAV OUT_JSON
"""

from __future__ import annotations

import json
import signal
import socket
import struct
import subprocess
import sys
import threading
from pathlib import Path

from waiting import wait_for

ETH_P_ALL = 0x0003
REGISTRAR = ("192.0.2.10", 5060)          # TEST-NET-1: nothing there
BROKER = ("198.51.100.20", 1883)          # TEST-NET-2


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True)


def set_up_network() -> None:
    sh("ip", "link", "set", "lo", "up")
    sh("ip", "link", "add", "v0", "type", "veth", "peer", "name", "v1")
    sh("ip", "addr", "add", "10.99.0.2/24", "dev", "v0")
    sh("ip", "link", "set", "v0", "up")
    sh("ip", "link", "set", "v1", "up")
    sh("ip", "route", "add", "default", "via", "10.99.0.1")
    # /sys still shows the parent namespace's devices: ask ip
    link = subprocess.run(["ip", "-j", "link", "show", "v1"], check=True, capture_output=True,
                          text=True).stdout
    mac = json.loads(link)[0]["address"]
    sh("ip", "neigh", "replace", "10.99.0.1", "lladdr", mac, "dev", "v0", "nud", "permanent")


class Capture(threading.Thread):
    """(protocol, destination address, destination port) of every frame leaving the box."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self.sock.bind(("v1", 0))
        self.sock.settimeout(0.2)
        self.seen: dict[tuple[str, str, int], int] = {}
        self.other: dict[str, int] = {}        # frames that are not IPv4 (kernel's own IPv6 etc.)
        self.stop = threading.Event()
        self.lock = threading.Lock()

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                frame = self.sock.recv(65535)
            except socket.timeout:
                continue
            ethertype = struct.unpack("!H", frame[12:14])[0]
            with self.lock:
                if ethertype != 0x0800:
                    key = f"ethertype 0x{ethertype:04x}"
                    self.other[key] = self.other.get(key, 0) + 1
                    continue
                ip = frame[14:]
                proto = ip[9]
                dst = socket.inet_ntoa(ip[16:20])
                ihl = (ip[0] & 0x0F) * 4
                port = struct.unpack("!H", ip[ihl + 2:ihl + 4])[0] if proto in (6, 17) else 0
                key3 = ({6: "tcp", 17: "udp"}.get(proto, str(proto)), dst, port)
                self.seen[key3] = self.seen.get(key3, 0) + 1

    def count(self, proto: str, addr: tuple[str, int]) -> int:
        with self.lock:
            return self.seen.get((proto, *addr), 0)


def main() -> int:
    config, data, wav, out = (Path(a) for a in sys.argv[1:5])
    set_up_network()
    cap = Capture()
    cap.start()
    log = open(config.with_name("daemon.log"), "ab")
    proc = subprocess.Popen([sys.executable, "-m", "appliance.cli", "-c", str(config), "run"],
                            stdout=log, stderr=subprocess.STDOUT)
    report: dict = {"ok": False}
    try:
        inbox = data / "inbox"
        started = wait_for(lambda: inbox.is_dir() and (data / "run" / "daemon.json").exists(), 180)
        report["started"] = started
        if started:
            (inbox / "call.wav").write_bytes(wav.read_bytes())

        def analysed() -> bool:
            for path in (data / "calls").glob("*/*.json"):
                if path.name.endswith(".meta.json"):
                    continue
                try:
                    return json.loads(path.read_text())["asr"]["status"] in ("ok", "off")
                except (OSError, ValueError, KeyError):
                    return False
            return False
        # a call analysed and transcribed, and each destination tried more than once
        report["analysed"] = wait_for(analysed, 300)
        report["retried"] = wait_for(lambda: cap.count("udp", REGISTRAR) >= 2
                                     and cap.count("tcp", BROKER) >= 2, 120)
        report["ok"] = True
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        cap.stop.set()
        cap.join(5)
        report["seen"] = [[p, a, port, n] for (p, a, port), n in sorted(cap.seen.items())]
        report["other"] = cap.other
        report["daemon_exit"] = proc.returncode
        out.write_text(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
