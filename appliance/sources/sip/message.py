"""A received SIP message as text: headers, multipart bodies, the audio lines of its SDP.

pjsua2 hands the application the whole INVITE as a string; the SIPREC parts it does not model
(the rs-metadata body, the ``a=label`` of each stream, custom headers) are read here.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from dataclasses import dataclass, field

# RFC 3261 compact header forms
_COMPACT = {"c": "content-type", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length", "v": "via", "k": "supported", "s": "subject",
            "e": "content-encoding"}

MAX_PARTS = 8          # an INVITE body carries SDP + metadata; more parts is abuse


class SipMessageError(ValueError):
    """The message cannot be understood; the text says which part and why."""


@dataclass
class SipMessage:
    start_line: str
    headers: list[tuple[str, str]]
    body: str

    def header(self, name: str) -> str | None:
        """First value of a header (case-insensitive, compact forms accepted)."""
        name = name.lower()
        for key, value in self.headers:
            if key == name:
                return value
        return None


def parse_message(raw: str) -> SipMessage:
    """Split a SIP message into start line, headers (names lower-cased) and body."""
    head, sep, body = raw.partition("\r\n\r\n")
    if not sep:
        head, sep, body = raw.partition("\n\n")
    if not sep:
        raise SipMessageError("message truncated (no end of headers)")
    lines = head.replace("\r\n", "\n").split("\n")
    if not lines or not lines[0].strip():
        raise SipMessageError("empty SIP message")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line[:1] in (" ", "\t") and headers:      # folded continuation
            name, value = headers[-1]
            headers[-1] = (name, f"{value} {line.strip()}")
            continue
        name, colon, value = line.partition(":")
        if not colon:
            continue
        name = name.strip().lower()
        headers.append((_COMPACT.get(name, name), value.strip()))
    return SipMessage(lines[0].strip(), headers, body)


@dataclass
class BodyPart:
    content_type: str
    headers: dict[str, str]
    text: str


def body_parts(msg: SipMessage) -> list[BodyPart]:
    """The body as parts: one part for a plain body, each part of a multipart body."""
    ctype = msg.header("content-type") or ""
    if not msg.body.strip():
        return []
    if not ctype.lower().startswith("multipart/"):
        return [BodyPart(ctype.split(";")[0].strip().lower(), {}, msg.body)]
    if "boundary" not in ctype.lower():
        raise SipMessageError(f"multipart body without a boundary (Content-Type: {ctype[:100]})")
    # The standard library's MIME parser copes with quoted and unquoted boundaries,
    # preambles and missing final delimiters.
    parsed = email.parser.Parser(policy=email.policy.compat32).parsestr(
        f"Content-Type: {ctype}\r\n\r\n{msg.body}")
    payload = parsed.get_payload()
    if not isinstance(payload, list) or not payload:
        raise SipMessageError("multipart body has no parts; check the boundary in Content-Type")
    if len(payload) > MAX_PARTS:
        raise SipMessageError(f"multipart body has {len(payload)} parts (at most {MAX_PARTS})")
    parts = []
    for part in payload:
        text = part.get_payload()
        if not isinstance(text, str):
            continue        # nested multipart: nothing of ours lives there
        parts.append(BodyPart(part.get_content_type(), {k.lower(): v for k, v in part.items()},
                              text))
    return parts


def find_part(parts: list[BodyPart], content_type: str) -> BodyPart | None:
    for part in parts:
        if part.content_type == content_type:
            return part
    return None


@dataclass
class MediaLine:
    """One ``m=`` line of an SDP offer."""

    index: int                     # position among all m= lines (pjsua's media index)
    kind: str                      # audio, video, ...
    port: int
    label: str | None = None
    direction: str = "sendrecv"
    attributes: list[str] = field(default_factory=list)


_DIRECTIONS = {"sendrecv", "sendonly", "recvonly", "inactive"}
_MLINE = re.compile(r"^m=(\w+) (\d+)(?:/\d+)? ")


def sdp_media(sdp: str) -> list[MediaLine]:
    """The media lines of an SDP, with their labels (RFC 4574) and directions."""
    media: list[MediaLine] = []
    session_direction = "sendrecv"
    for raw in sdp.splitlines():
        line = raw.strip()
        if line.startswith("m="):
            m = _MLINE.match(line)
            if not m:
                raise SipMessageError(f"malformed SDP media line {line[:80]!r}")
            media.append(MediaLine(len(media), m.group(1), int(m.group(2)),
                                   direction=session_direction))
        elif line.startswith("a="):
            attr = line[2:]
            if attr in _DIRECTIONS:
                if media:
                    media[-1].direction = attr
                else:
                    session_direction = attr
            elif attr.startswith("label:") and media:
                media[-1].label = attr[6:].strip()[:64]
            elif media:
                media[-1].attributes.append(attr)
    return media


_URI_USER = re.compile(r"(?:sips?|tel):\+?([^@;>\s]+)", re.I)


def uri_user(value: str | None) -> str | None:
    """User part of a SIP/tel URI inside a header value: '"A" <sip:101@pbx>;tag=x' -> '101'."""
    if not value:
        return None
    m = _URI_USER.search(value)
    return m.group(1) if m else None


def display_name(value: str | None) -> str | None:
    if not value:
        return None
    m = re.match(r'\s*"([^"]*)"', value) or re.match(r"\s*([^<\"]+?)\s*<", value)
    return m.group(1).strip() or None if m else None


_TAG = re.compile(r";\s*tag=([^;>\s,]+)", re.I)


def header_tag(value: str | None) -> str:
    """The ``tag`` parameter of a From/To header value ('' if none)."""
    m = _TAG.search(value or "")
    return m.group(1) if m else ""


_LINE_END = re.compile(r"\r?\n")


def add_labels(sdp: str, labels: dict[int, str]) -> str:
    """Append ``a=label:X`` to each m= section of an SDP (by media index) that lacks one."""
    lines = [ln for ln in _LINE_END.split(sdp) if ln]
    out: list[str] = []
    index = -1

    def close_section() -> None:
        if index in labels and not any(ln.startswith("a=label:") for ln in section):
            out.append(f"a=label:{labels[index]}")

    section: list[str] = []
    for line in lines:
        if line.startswith("m="):
            close_section()
            index += 1
            section = []
        out.append(line)
        section.append(line)
    close_section()
    return "\r\n".join(out) + "\r\n"
