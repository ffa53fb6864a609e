"""Every network destination the box is configured to reach, and nothing else.

The box answers whoever calls it from ``sip.allowed_sources`` and serves its panel; the
only connections it opens itself are the ones listed here. ``tests/test_egress.py`` runs the
daemon in a network namespace and checks that no other address is ever tried.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..config import Settings

TIMESYNCD = Path("/etc/systemd/timesyncd.conf")
RESOLV = Path("/etc/resolv.conf")
SIP_PORT = 5060
DNS_PORT = 53
NTP_PORT = 123


@dataclass(frozen=True)
class Destination:
    what: str           # what the box talks to there, in an IT person's words
    host: str
    port: int
    transport: str      # udp | tcp
    setting: str        # where it is configured

    @property
    def address(self) -> str:
        """host:port, an IPv6 address in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "address": self.address}


def _host_port(text: str, default: int) -> tuple[str, int]:
    text = text.strip()
    if text.startswith("["):                      # [v6]:port
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") and rest[1:].isdigit() else default
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port) if port.isdigit() else default
    return text, default


def _is_name(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
        return False
    except ValueError:
        return True


def _conf_values(paths: list[Path], key: str) -> list[str]:
    out: list[str] = []
    for path in paths:
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            m = re.match(rf"\s*{key}\s*=\s*(.*)", line)
            if m:
                out += m.group(1).split()
    return out


def ntp_servers(conf: Path = TIMESYNCD) -> tuple[list[str], str]:
    """The NTP servers of systemd-timesyncd (NTP=, else FallbackNTP=) and where they come
    from; ([], reason) when the box leaves them to DHCP or the distribution's default."""
    paths = [conf, *sorted(conf.with_name(conf.name + ".d").glob("*.conf"))]
    servers = _conf_values(paths, "NTP")
    if servers:
        return servers, f"{conf} NTP="
    fallback = _conf_values(paths, "FallbackNTP")
    if fallback:
        return fallback, f"{conf} FallbackNTP="
    return [], "DHCP's NTP servers, else the distribution's pool (systemd-timesyncd)"


def nameservers(resolv: Path = RESOLV) -> list[str]:
    """The resolvers of ``resolv.conf`` (``nameserver ADDRESS`` lines)."""
    try:
        lines = resolv.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return []
    return [parts[1] for parts in (line.split() for line in lines)
            if len(parts) >= 2 and parts[0] == "nameserver"]


def destinations(settings: Settings, timesyncd: Path = TIMESYNCD,
                 resolv: Path = RESOLV) -> list[Destination]:
    """Where the box connects to on its own, as configured now."""
    out: list[Destination] = []
    if settings.sip.enabled:
        for i, acc in enumerate(settings.sip.accounts):
            host, port = _host_port(acc.registrar, SIP_PORT)
            out.append(Destination("PBX registrar", host, port, acc.transport,
                                   f"sip.accounts[{i}].registrar (user {acc.user})"))
    mqtt = settings.mqtt
    if mqtt.host:
        out.append(Destination("MQTT broker", mqtt.host, mqtt.port, "tcp", "mqtt.host"))
    servers, origin = ntp_servers(timesyncd)
    for server in servers:
        out.append(Destination("time (NTP)", server, NTP_PORT, "udp", origin))
    if not servers:
        out.append(Destination("time (NTP)", "*", NTP_PORT, "udp", origin))
    # the distribution's pool ("*") is names too
    if any(d.host == "*" or _is_name(d.host) for d in out):
        for ns in nameservers(resolv):
            out.append(Destination("name lookups (DNS)", ns, DNS_PORT, "udp", str(resolv)))
    return out


def egress(settings: Settings, **paths: Any) -> dict[str, Any]:
    """The destinations as the system page, the API and ``appliance status`` show them."""
    return {"destinations": [d.as_dict() for d in destinations(settings, **paths)],
            "note": "The box opens no other connection. It answers SIP only from "
                    "sip.allowed_sources, sends media back to the callers it answered, and "
                    "serves the panel; recordings, transcripts and speech recognition stay on "
                    "the box."}
