"""SIPREC recording metadata (``application/rs-metadata+xml``): who speaks on which stream.

Reads RFC 7865 (namespace ``urn:ietf:params:xml:ns:recording:1``: ``participant_id``,
``stream_id``, ``participantstreamassoc``) and the older layout some SBCs (Oracle/Acme Packet)
still send (``urn:ietf:params:xml:ns:recording``: ``id`` attributes, ``send``/``recv`` inside
``participant``). Parsing goes through defusedxml: DTDs, entities and external references are
refused, so XXE and entity-expansion bombs fail fast instead of reaching the network or memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as safe_xml
from defusedxml import DefusedXmlException

MAX_METADATA_BYTES = 64 * 1024
MAX_ITEMS = 64          # participants or streams in one session; more is not a phone call


class MetadataError(ValueError):
    """The metadata cannot be used; the call is still recorded, streams mapped by order."""


@dataclass
class Participant:
    participant_id: str
    aor: str | None = None
    name: str | None = None
    sends: list[str] = field(default_factory=list)      # stream ids this participant sends


@dataclass
class RecordingMetadata:
    participants: list[Participant] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)   # stream id -> SDP label
    session_id: str | None = None
    sip_session_id: str | None = None
    layout: str = "rfc7865"
    # participants whose stream association this document states: True when it lists
    # streams they send, False when it lists none (they stopped sending: a hold, a mute)
    sending: dict[str, bool] = field(default_factory=dict)

    def participant_for_label(self, label: str) -> Participant | None:
        """The single participant sending the stream with this label (None for a mixed or
        unassociated stream)."""
        ids = [sid for sid, lab in self.labels.items() if lab == label]
        senders = [p for p in self.participants if any(s in p.sends for s in ids)]
        return senders[0] if len(senders) == 1 else None

    def merge(self, update: "RecordingMetadata") -> None:
        """Apply a partial update (RFC 7865 ``datamode`` partial, or a re-INVITE's snapshot)."""
        known = {p.participant_id: p for p in self.participants}
        for p in update.participants:
            old = known.get(p.participant_id)
            if old is None:
                self.participants.append(p)
                continue
            old.aor = p.aor or old.aor
            old.name = p.name or old.name
            old.sends = p.sends or old.sends
        self.labels.update(update.labels)
        self.session_id = update.session_id or self.session_id
        self.sip_session_id = update.sip_session_id or self.sip_session_id


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(el: Element, name: str) -> list[Element]:
    return [c for c in el if _local(c.tag) == name]


def _text(el: Element | None) -> str | None:
    if el is None or el.text is None:
        return None
    text = el.text.strip()
    return text[:256] or None


def _first(el: Element, name: str) -> Element | None:
    found = _children(el, name)
    return found[0] if found else None


def parse_metadata(xml: str | bytes) -> RecordingMetadata:
    """Parse rs-metadata; raise MetadataError saying what is wrong."""
    raw = xml.encode("utf-8") if isinstance(xml, str) else xml
    if len(raw) > MAX_METADATA_BYTES:
        raise MetadataError(f"metadata is {len(raw)} bytes (at most {MAX_METADATA_BYTES})")
    try:
        root = safe_xml.fromstring(raw.strip(), forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MetadataError(f"metadata refused: {type(exc).__name__} (DTDs, entities and "
                            "external references are not allowed)") from None
    except safe_xml.ParseError as exc:
        raise MetadataError(f"metadata is not well-formed XML: {exc}") from None
    if _local(root.tag) != "recording":
        raise MetadataError(f"metadata root is <{_local(root.tag)}>, expected <recording>")
    layout = "rfc7865" if root.tag.endswith(":recording:1}recording") else "legacy"
    meta = RecordingMetadata(layout=layout)
    session = _first(root, "session")
    if session is not None:
        meta.session_id = session.get("session_id") or session.get("id")
        meta.sip_session_id = _text(_first(session, "sipSessionID"))
    participants = _children(root, "participant")
    streams = _children(root, "stream")
    if len(participants) > MAX_ITEMS or len(streams) > MAX_ITEMS:
        raise MetadataError(f"metadata lists {len(participants)} participants and "
                            f"{len(streams)} streams (at most {MAX_ITEMS} each)")
    by_id: dict[str, Participant] = {}
    for el in participants:
        pid = el.get("participant_id") or el.get("id")
        if not pid:
            continue
        name_id = _first(el, "nameID")
        aor = (name_id.get("aor") if name_id is not None else None) or _text(_first(el, "aor"))
        name = _text(_first(name_id, "name")) if name_id is not None else None
        p = Participant(pid[:128], aor=aor[:256] if aor else None, name=name or el.get("name"),
                        sends=[s for s in (_text(x) for x in _children(el, "send")) if s])
        by_id[p.participant_id] = p
        meta.participants.append(p)
    for el in _children(root, "participantstreamassoc"):
        pid = (el.get("participant_id") or el.get("id") or "")[:128]
        sends = [s for s in (_text(x) for x in _children(el, "send")) if s]
        if pid and len(meta.sending) < MAX_ITEMS:
            meta.sending[pid] = bool(sends)
        p = by_id.get(pid)
        if p is not None:
            p.sends.extend(sends)
    for el in streams:
        sid = el.get("stream_id") or el.get("id")
        label = _text(_first(el, "label")) or el.get("label")
        if sid and label:
            meta.labels[sid] = label
    return meta
