"""Typed settings: embedded defaults, a TOML file, the settings changed in the panel
(``<data_dir>/panel-settings.json``), then environment overrides.

Environment overrides are ``APPLIANCE_<SECTION>__<KEY>`` (double underscore between the
section and the key), e.g. ``APPLIANCE_CONVERSATION__DEAD_AIR_MIN_S=5``. Every invalid value
is rejected with the key, the value given and what is allowed.
"""

from __future__ import annotations

import ipaddress
import logging
import json
import os
import re
import tomllib
from pathlib import Path
from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

ENV_PREFIX = "APPLIANCE_"
CONFIG_ENV = "APPLIANCE_CONFIG"
PANEL_FILE = "panel-settings.json"


class ConfigError(ValueError):
    """A setting is missing, malformed or out of range; the message says which and why."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class VadSettings(_Section):
    """Per-party voice activity detection."""

    threshold: float = Field(0.5, ge=0.05, le=10.0,
                             description="band-averaged log likelihood ratio above which a frame is voiced")
    level_floor_dbfs: float = Field(-60.0, ge=-90.0, le=-10.0,
                                    description="frames quieter than this are never speech")
    onset_ms: int = Field(40, ge=20, le=500, description="voiced time before a segment opens")
    hangover_ms: int = Field(300, ge=0, le=3000, description="pause bridged inside a segment")
    tail_ms: int = Field(40, ge=0, le=500, description="kept after the last voiced frame")
    min_speech_ms: int = Field(100, ge=20, le=2000, description="shorter segments are dropped")
    leak_margin_db: float = Field(
        10.0, ge=0.0, le=30.0,
        description="headroom over the other party's predicted echo/bleed in this party's channel")
    echo_below_db: float = Field(
        20.0, ge=0.0, le=60.0,
        description="a segment this far below the other party's simultaneous speech is its echo (0: off)")
    noise_window_s: float = Field(1.5, ge=0.5, le=10.0, description="noise-floor tracking window")
    music_second_opinion: bool = Field(
        True, description="ask Silero VAD (the silero-vad wheel's model) around music: whether "
                          "what was taken for music holds speech over it, and whether speech "
                          "right after music is more of it")


class ConversationSettings(_Section):
    """Thresholds of the conversation state machine."""

    # "ага", "угу", "да-да" last up to ~0.7 s; a detected segment runs ~50 ms longer than the
    # speech (onset back-dating, tail), hence 0.75 s.
    backchannel_max_s: float = Field(
        0.75, ge=0.1, le=3.0,
        description="shorter speech over the other party is a backchannel, not an interruption")
    overlap_min_s: float = Field(0.2, ge=0.02, le=2.0, description="shorter overlaps are ignored")
    turn_pause_s: float = Field(1.0, ge=0.2, le=5.0,
                                description="a pause shorter than this keeps the floor with the speaker")
    dead_air_min_s: float = Field(3.0, ge=0.5, le=120.0, description="mutual silence counted as dead air")
    hold_min_s: float = Field(5.0, ge=1.0, le=120.0,
                              description="music on a line at least this long is a hold")
    hold_join_s: float = Field(
        10.0, ge=0.0, le=60.0,
        description="stretches of music this close, with no speech between, are one hold")
    hold_tone_min_s: float = Field(
        15.0, ge=3.0, le=300.0,
        description="a tone on one line this long, with speech before and after it, is a hold")
    dtmf_digits: bool = Field(
        False, description="keep the keys pressed (DTMF) in the call JSON; off keeps their count "
                           "and times, since they are often card numbers and PINs")


class ChannelSettings(_Section):
    """Which channel of a stereo recording carries which party."""

    agent_channel: Literal[0, 1] = Field(0, description="stereo channel carrying the agent")

    @property
    def client_channel(self) -> int:
        return 1 - self.agent_channel


class FileSettings(_Section):
    """Limits for imported recordings."""

    max_duration_h: float = Field(12.0, gt=0, le=48.0, description="longer recordings are refused")
    block_s: float = Field(2.0, ge=0.1, le=30.0, description="decoding block: bounds memory")
    max_upload_mb: float = Field(1024.0, ge=1.0, le=16384.0,
                                 description="largest recording accepted by POST /api/v1/recordings")


class PathSettings(_Section):
    data_dir: Path = Field(Path("data"), description="recordings, call JSON, user dictionaries")

    @property
    def inbox(self) -> Path:
        return self.data_dir / "inbox"

    @property
    def calls(self) -> Path:
        return self.data_dir / "calls"


class LogSettings(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="log level")


class InboxSettings(_Section):
    """Recordings the PBX writes into the inbox folder are analysed as they appear."""

    enabled: bool = Field(True, description="watch <data_dir>/inbox for recordings")
    poll_s: float = Field(2.0, ge=0.2, le=300.0, description="how often the inbox is scanned")
    settle_s: float = Field(3.0, ge=0.0, le=600.0,
                            description="a file must stop growing this long before it is read")


class AsrSettings(_Section):
    """On-device speech recognition."""

    enabled: bool = Field(True, description="transcribe calls (needs `appliance models build`)")
    language: Literal["ru", "en", "auto"] = Field(
        "ru", description="speech language; auto detects per segment")
    model_dir: Path | None = Field(None, description="built models (default: ~/.cache/call-appliance/models)")
    precision: Literal["int8", "fp32"] = Field(
        "int8", description="int8: faster, smaller; fp32: ~1 point better WER")
    workers: int = Field(1, ge=1, le=64,
                         description="decoders in parallel, sharing the cores (each adds memory)")
    batch: int = Field(8, ge=1, le=32,
                       description="pieces of similar length decoded together (faster per piece; "
                       "each adds memory for its audio and cache)")
    max_segment_s: float = Field(25.0, ge=2.0, le=29.0,
                                 description="longer speech is cut into pieces (Whisper reads 30 s)")
    join_s: float = Field(1.0, ge=0.0, le=1.0,
                          description="a party's segments this close are recognised together")
    nice: int = Field(10, ge=0, le=19,
                      description="scheduling niceness of recognition threads: live capture and "
                      "DSP get the CPU first, recognition catches up")
    min_level_dbfs: float = Field(-50.0, ge=-90.0, le=0.0,
                                  description="quieter segments are not decoded (hallucination guard)")
    min_piece_s: float = Field(0.3, ge=0.0, le=2.0,
                               description="shorter speech is not decoded (too short for a word; "
                               "it still counts as speech or a backchannel)")
    max_delay_s: float = Field(900.0, ge=30.0, le=86400.0,
                               description="a call waiting longer than this for its transcript "
                               "fails the health check and raises an alert")
    buffer_s: float = Field(1800.0, ge=30.0, le=36000.0,
                            description="speech audio held in memory waiting for recognition; "
                            "beyond it, audio is read back from the recordings")


class PrivacySettings(_Section):
    """What of personal data is kept (see docs/privacy.md)."""

    redact: list[Literal["card", "phone", "passport", "snils", "inn", "email"]] = Field(
        ["card"], description="kinds of personal data masked in transcripts (card, phone, "
        "passport, snils, inn, email)")
    mute_audio: bool = Field(False, description="also silence the recording over each masked "
                             "line (the party's channel)")
    encrypt: bool = Field(False, description="recordings and call JSON encrypted at rest "
                          "(AES-256-GCM); a lost key means the data is gone (docs/privacy.md)")
    key_file: Path | None = Field(None, description="the data key (mode 600; empty: "
                                  "<data_dir>/keys/data.key, made at the first start)")
    key_from_passphrase: bool = Field(False, description="the key comes from a passphrase: "
                                      "'appliance key unlock' after each boot writes key_file "
                                      "(put it on a tmpfs such as /run); the box waits for it")


class RecordingSettings(_Section):
    """Live call recordings (stereo: agent left, client right, 16 kHz)."""

    format: Literal["flac", "wav"] = Field(
        "flac", description="kept format; calls stream to a crash-safe WAV, FLAC is encoded at call end")
    sync_s: float = Field(1.0, ge=0.2, le=10.0,
                          description="audio made durable this often (the most a crash can lose)")


class RetentionSettings(_Section):
    """How long recordings and call data stay on the box, and what a filling disk does."""

    audio_days: int = Field(365, ge=0, le=36500,
                            description="recordings older than this are deleted (0: by the watermark only)")
    metadata_days: int = Field(1095, ge=1, le=36500,
                               description="call data (metrics, transcript, tags) kept this long")
    transcript_days: int = Field(
        0, ge=0, le=36500,
        description="transcripts (and the words tags quote) removed after this many days, "
                    "metrics and tag counts kept (0: as long as the call data)")
    audit_days: int = Field(1095, ge=30, le=36500,
                            description="entries of the audit log (who saw what) kept this long")
    min_free_percent: float = Field(
        10.0, ge=0.0, le=90.0,
        description="watermark: below this free share of the disk the oldest recordings are deleted")
    stop_recording_free_mb: int = Field(
        256, ge=16, le=1_000_000,
        description="below this free space new calls get 503 and recordings stop")
    check_interval_s: float = Field(300.0, ge=1.0, le=86400.0,
                                    description="how often retention and the watermark run")


class CdrSettings(_Section):
    """Call records from the PBX: missed calls and callbacks."""

    callback_fast_min: int = Field(20, ge=1, le=1440,
                                   description="a missed call called back within this is 'called back fast'")
    callback_slow_h: int = Field(24, ge=1, le=720,
                                 description="no callback within this: never called back")
    match_window_s: int = Field(120, ge=5, le=3600,
                                description="a PBX record and a recording match when their times differ less")
    number_digits: int = Field(10, ge=4, le=15,
                               description="numbers compare on their last N digits (+7 916... = 8 916...)")
    timezone: str = Field("local",
        description="time zone of Master.csv times: 'local', 'UTC' or e.g. Europe/Moscow")

    @model_validator(mode="after")
    def _valid(self) -> "CdrSettings":
        if self.timezone not in ("local", "UTC"):
            try:
                from zoneinfo import ZoneInfo

                ZoneInfo(self.timezone)
            except (ValueError, KeyError, OSError):
                raise ValueError(f"cdr.timezone {self.timezone!r} is not a known time zone") from None
        return self


class KpiSettings(_Section):
    """Managers, teams and the rules behind flags and client lists."""

    teams: dict[str, list[str]] = Field({},
        description="team name -> agent numbers, e.g. {sales = [\"101\", \"102\"]}")
    names: dict[str, str] = Field({}, description="agent number -> display name")
    baseline_periods: int = Field(6, ge=2, le=36,
                                  description="earlier periods a manager's baseline is drawn from")
    baseline_min_calls: int = Field(10, ge=1, le=10000,
                                    description="fewer calls in a period: no flag, not part of a baseline")
    flag_min_change: float = Field(0.2, ge=0.0, le=10.0,
                                   description="a flag needs at least this relative change from the baseline")
    cooling_days: int = Field(
        14, ge=1, le=365,
        description="a client with no usual rhythm yet: interest, then no contact this long is cooling")
    cooling_factor: float = Field(
        2.0, ge=1.0, le=20.0,
        description="cooling: no contact for this many times the client's own usual gap")
    cooling_min_days: int = Field(3, ge=1, le=365,
                                  description="cooling: never before this many days of silence")
    zombie_contacts: int = Field(3, ge=2, le=1000,
                                 description="zombie: at least this many conversations ...")
    zombie_days: int = Field(30, ge=1, le=3650,
                             description="... then no contact this long, and no decision")
    client_window_days: int = Field(90, ge=7, le=3650, description="contacts considered for client lists")
    interest_tags: list[str] = Field(["interest"],
        description="dictionary tags that mean the client is interested")
    currency: str = Field("RUB", pattern=r"^[A-Z]{3}$",
                          description="currency of outcomes posted without one (and of revenue plans)")


class WebSettings(_Section):
    """The web panel and the HTTP API."""

    enabled: bool = Field(True, description="serve the panel and the HTTP API")
    bind_address: str = Field("127.0.0.1", description="address to listen on (loopback: this box only)")
    port: int = Field(8080, ge=1, le=65535, description="HTTP port")
    max_body_mb: float = Field(20.0, ge=0.1, le=1024.0, description="larger requests get 413")
    threads: int = Field(8, ge=1, le=64, description="requests served at once")
    session_hours: float = Field(12.0, ge=0.1, le=720.0, description="a panel login lasts this long")
    secure_cookies: bool = Field(
        False, description="always mark the session cookie Secure (it is anyway over HTTPS)")
    trusted_proxy: str = Field(
        "", description="address of a TLS reverse proxy whose X-Forwarded-Proto is believed")


class MqttSettings(_Section):
    """Publishing alerts, call summaries, status and KPIs to an MQTT broker."""

    host: str = Field("", description="broker host name or address (empty: MQTT off)")
    port: int = Field(1883, ge=1, le=65535, description="broker port (8883 is usual with TLS)")
    protocol: Literal["3.1.1", "5"] = Field("3.1.1", description="MQTT protocol version")
    tls: bool = Field(False, description="connect with TLS")
    ca_file: Path | None = Field(None, description="CA certificates for the broker (default: the system's)")
    cert_file: Path | None = Field(None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(None, description="client certificate's private key")
    username: str = Field("", description="user name (empty: none)")
    password: str = Field("", description="password")
    client_id: str = Field("", description="MQTT client id (empty: appliance-<box_id>)")
    box_id: str = Field("", description="this box's name in topics (empty: the host name)")
    topic_prefix: str = Field("appliance", description="first level of every topic")
    qos: Literal[0, 1, 2] = Field(1, description="QoS of call summaries and KPIs (alerts: at least 1)")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keep-alive")
    reconnect_max_s: int = Field(60, ge=1, le=3600, description="longest wait between reconnections")
    transcripts: bool = Field(False, description="include transcripts in call summaries (privacy: off)")
    status_interval_s: float = Field(60.0, ge=1.0, le=3600.0,
                                     description="device status published this often")
    kpi_interval_s: float = Field(300.0, ge=1.0, le=86400.0, description="KPI snapshots published this often")
    outbox_max_messages: int = Field(100_000, ge=100, le=10_000_000,
                                     description="events (alerts, summaries) kept while the broker is "
                                     "away; the oldest go first (the latest state of each "
                                     "retained topic is kept besides)")
    outbox_max_age_h: float = Field(168.0, ge=0.1, le=8760.0, description="older unsent messages are dropped")
    embedded: bool = Field(True, description="with no mqtt.host: run a local broker (mosquitto) on "
                           "127.0.0.1 and publish to it")
    embedded_port: int = Field(1883, ge=1, le=65535, description="port of the local broker")
    ha_discovery: bool = Field(False, description="announce device sensors to Home Assistant")
    ha_prefix: str = Field("homeassistant", description="Home Assistant discovery prefix")

    @model_validator(mode="after")
    def _valid(self) -> "MqttSettings":
        for name in ("topic_prefix", "box_id", "ha_prefix"):
            value = getattr(self, name)
            if any(c in value for c in "+#/\0") or len(value) > 64:
                raise ValueError(f"mqtt.{name} {value!r}: no '+', '#', '/' or NUL, at most 64 characters")
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mqtt.cert_file and mqtt.key_file go together")
        return self


class UpdateSettings(_Section):
    """Signed A/B updates (`appliance update apply`)."""

    root: Path = Field(Path("/opt/appliance"), description="holds slots/a, slots/b and the current link")
    keys_dir: Path = Field(Path("/etc/appliance/update-keys"),
                           description="trusted Ed25519 public keys (*.pub, PEM)")
    confirm_deadline_s: float = Field(600.0, ge=30.0, le=86400.0,
                                      description="a new version not healthy by then is rolled back")
    handoff: bool = Field(False, description="the panel verifies an uploaded bundle and leaves it in "
                          "<data_dir>/updates/pending.tar for the root updater (the image: the "
                          "daemon cannot write update.root) instead of installing it itself")


class SipAccount(_Section):
    """One registration on the PBX (`[[sip.accounts]]`)."""

    registrar: str = Field(description="PBX address: host or host:port")
    user: str = Field(description="extension / user name the box registers as")
    password: str = Field("", description="digest password (empty: no authentication)")
    auth_user: str | None = Field(None, description="digest user name if it differs from `user`")
    realm: str = Field("*", description="digest realm (* accepts the PBX's)")
    transport: Literal["udp", "tcp"] = Field("udp", description="transport to the registrar")
    expiry_s: int = Field(30, ge=10, le=3600,
                          description="registration lifetime; short so a restarted PBX relearns the box soon")
    retry_s: int = Field(10, ge=2, le=600, description="wait before retrying a failed registration")

    @property
    def uri(self) -> str:
        host = self.registrar.split(":")[0]
        return f"sip:{self.user}@{host}"


_PRIVATE_NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",
                 "169.254.0.0/16", "::1/128", "fc00::/7", "fe80::/10"]


class SipSettings(_Section):
    """The SIP endpoint: registration on the PBX, calls and SIPREC sessions it records."""

    enabled: bool = Field(True, description="run the SIP endpoint")
    bind_address: str = Field("0.0.0.0", description="address SIP and RTP listen on")
    public_address: str | None = Field(
        None, description="address announced in SIP/SDP (default: bind address / first interface)")
    port: int = Field(5060, ge=1, le=65535, description="SIP port (UDP and TCP)")
    transports: list[Literal["udp", "tcp"]] = Field(["udp", "tcp"], min_length=1,
                                                     description="SIP transports to listen on")
    rtp_port: int = Field(40000, ge=1024, le=65000, description="first RTP port")
    rtp_port_range: int = Field(1000, ge=16, le=20000, description="RTP ports available (2 per stream)")
    accounts: list[SipAccount] = Field([], description="registrations on the PBX (see below)")
    direct_calls: bool = Field(True,
                               description="accept calls sent to the box's address without an account")
    allowed_sources: list[str] = Field(
        _PRIVATE_NETS, description="networks (CIDR) whose calls are accepted; others get 403")
    max_calls: int = Field(32, ge=1, le=64,
                           description="concurrent calls; more get 486 Busy Here. Over 4: one "
                           "capture process per 4 calls behind a kamailio front")
    max_streams: int = Field(3, ge=1, le=4,
                             description="audio streams answered per call (2 parties + a mixed one)")
    codecs: list[str] = Field(["PCMA/8000", "PCMU/8000", "G722/16000"], min_length=1,
                              description="codecs offered/accepted, best first; others are disabled")
    rtp_timeout_s: float = Field(30.0, ge=2.0, le=3600.0,
                                 description="a call whose RTP stops this long is ended and finalized")
    rtp_hold_timeout_s: float = Field(
        900.0, ge=2.0, le=86400.0,
        description="while a party is on hold (re-INVITE or SIPREC metadata) its RTP may stop "
                    "(a=inactive): the call is ended only after this long without RTP (never "
                    "sooner than rtp_timeout_s)")
    session_expires_s: int = Field(600, ge=0, le=7200,
                                   description="SIP session timer (RFC 4028); 0 leaves it to the caller")
    agent_header: str = Field("X-Agent", description="header naming the agent's number, if the PBX sends one")
    client_header: str = Field("X-Client", description="header naming the client's number")
    direction_header: str = Field("X-Direction", description="header with 'inbound' or 'outbound'")
    agents: list[str] = Field([], description="numbers/extensions that are always the agent")
    agent_pattern: str = Field(r"\d{2,5}",
                               description="regex (full match) for internal extensions = agents; empty: off")
    log_level: int = Field(1, ge=0, le=6, description="pjsip's own log verbosity (to the appliance log)")

    @model_validator(mode="after")
    def _valid(self) -> "SipSettings":
        for net in self.allowed_sources:
            try:
                ipaddress.ip_network(net, strict=False)
            except ValueError:
                raise ValueError(f"sip.allowed_sources: {net!r} is not a network such as "
                                 "192.168.0.0/16") from None
        try:
            re.compile(self.agent_pattern)
        except re.error as exc:
            raise ValueError(f"sip.agent_pattern {self.agent_pattern!r} is not a regex: {exc}") from None
        for codec in self.codecs:
            if not re.fullmatch(r"[A-Za-z0-9-]+/\d+(/\d)?", codec):
                raise ValueError(f"sip.codecs: {codec!r} must look like PCMA/8000")
        return self


class AlertSettings(_Section):
    """When the box raises an alert: the panel's alerts and MQTT's alike."""

    low_score: float = Field(50.0, ge=0, le=100, description="a checklist score below this raises an alert")
    asr_queue: int = Field(200, ge=1, le=100_000,
                           description="speech segments waiting for recognition that raise an alert")


# settings that moved: old name -> new name (configs written before keep working)
MOVED = {("mqtt", "low_score"): ("alerts", "low_score"),
         ("mqtt", "asr_queue_alert"): ("alerts", "asr_queue")}


def renamed(data: Mapping[str, Any]) -> dict[str, Any]:
    """Settings of one source with moved names under their new ones (``MOVED``); in the
    same source the new name wins. Each source is renamed before the sources are merged, so
    the environment still overrides the panel and the panel the file, whatever the name."""
    out = dict(data)
    for (old_section, old_key), (section, key) in MOVED.items():
        old = out.get(old_section)
        if isinstance(old, dict) and old_key in old:
            old = dict(old)
            value = old.pop(old_key)
            out[old_section] = old
            new = dict(out.get(section) or {})
            new.setdefault(key, value)
            out[section] = new
            logging.getLogger(__name__).warning(
                "setting renamed", extra={"old": f"{old_section}.{old_key}",
                                          "new": f"{section}.{key}"})
    return out


class Settings(_Section):
    """All settings of the appliance."""

    vad: VadSettings = VadSettings()
    conversation: ConversationSettings = ConversationSettings()
    channels: ChannelSettings = ChannelSettings()
    files: FileSettings = FileSettings()
    paths: PathSettings = PathSettings()
    log: LogSettings = LogSettings()
    inbox: InboxSettings = InboxSettings()
    asr: AsrSettings = AsrSettings()
    recording: RecordingSettings = RecordingSettings()
    privacy: PrivacySettings = PrivacySettings()
    sip: SipSettings = SipSettings()
    retention: RetentionSettings = RetentionSettings()
    cdr: CdrSettings = CdrSettings()
    kpi: KpiSettings = KpiSettings()
    web: WebSettings = WebSettings()
    mqtt: MqttSettings = MqttSettings()
    alerts: AlertSettings = AlertSettings()
    update: UpdateSettings = UpdateSettings()

    @model_validator(mode="before")
    @classmethod
    def _moved(cls, data: Any) -> Any:
        return renamed(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.privacy.key_from_passphrase and self.privacy.key_file is None:
            raise ValueError("privacy.key_from_passphrase needs privacy.key_file on a tmpfs "
                             "(e.g. /run/appliance/data.key): the key must not be written to "
                             "the data disk")
        if self.conversation.overlap_min_s >= self.conversation.backchannel_max_s:
            raise ValueError("conversation.overlap_min_s must be smaller than "
                             "conversation.backchannel_max_s")
        return self


def _describe(err: Mapping[str, Any], source: str) -> str:
    key = ".".join(str(p) for p in err["loc"]) or "(top level)"
    if err["type"] == "extra_forbidden":
        return f"{key}: unknown setting (in {source}); check the spelling against docs/configuration.md"
    given = err.get("input")
    ctx = err.get("ctx") or {}
    if "expected" in ctx:
        allowed = f"must be one of {ctx['expected']}"
    else:
        allowed = err["msg"].replace("Input should be", "must be").replace("Value error, ", "")
    return f"{key} = {given!r}: {allowed} (in {source})"


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _env_overrides(environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, raw in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV or "__" not in name:
            continue
        section, _, key = name[len(ENV_PREFIX):].lower().partition("__")
        try:  # numbers and booleans as JSON, anything else as a string
            value: Any = json.loads(raw)
            if isinstance(value, (dict, list)):
                value = raw
        except ValueError:
            value = raw
        out.setdefault(section, {})[key] = value
    return out


def load_settings(path: str | os.PathLike[str] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from defaults, the TOML file (if any) and the environment.

    ``path`` defaults to ``$APPLIANCE_CONFIG``; with neither, embedded defaults are used.
    Raises ConfigError with one line per problem.
    """
    environ = os.environ if environ is None else environ
    path = path or environ.get(CONFIG_ENV) or None
    data: dict[str, Any] = {}
    source = "defaults"
    if path:
        source = str(path)
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError:
            raise ConfigError(f"config file {path} does not exist; create it or unset "
                              f"{CONFIG_ENV} to run on embedded defaults") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
        except OSError as exc:
            raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    data, env = renamed(data), renamed(_env_overrides(environ))
    try:
        settings = Settings.model_validate(_merge(data, env))
        panel = panel_overrides(settings.paths.data_dir)
        if panel:
            source = f"{source} or {settings.paths.data_dir / PANEL_FILE}"
            settings = Settings.model_validate(_merge(_merge(data, panel), env))
    except ValidationError as exc:
        where = source if not env else (f"{ENV_PREFIX}* environment" if source == "defaults"
                                        else f"{source} or {ENV_PREFIX}* environment")
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(
            _describe(e, where) for e in exc.errors())) from None
    return settings


def panel_overrides(data_dir: Path) -> dict[str, Any]:
    """Settings saved from the panel: ``{section: {key: value}}``."""
    path = data_dir / PANEL_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path} is unreadable ({exc}); fix or delete it to drop the "
                          "settings changed in the panel") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object; fix or delete it")
    return renamed(data)


def env_keys(environ: Mapping[str, str] | None = None) -> set[str]:
    """``section.key`` names fixed by the environment (the panel cannot change them)."""
    env = renamed(_env_overrides(os.environ if environ is None else environ))
    return {f"{section}.{key}" for section, keys in env.items() for key in keys}


def _row(key: str, f: Any) -> str:
    limits = [f"{sym} {getattr(m, attr)}" for m in f.metadata
              for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<"))
              if getattr(m, attr, None) is not None]
    args = getattr(f.annotation, "__args__", None)
    names = [("unset" if a is type(None) else a.__name__) if isinstance(a, type)
             else str(a) for a in (args or [f.annotation])]
    allowed = ", ".join(limits) or " / ".join(names)
    default = "required" if f.is_required() else f"`{f.default}`"
    return f"| `{key}` | {default} | {allowed} | {f.description or ''} |"


def settings_reference() -> str:
    """docs/configuration.md: every setting with its default, bounds and meaning."""
    out = ["# Configuration", "",
           "Settings come from three places. Later ones win:",
           "1. embedded defaults;",
           "2. a TOML file given with `appliance -c FILE` or `$APPLIANCE_CONFIG`;",
           "3. environment variables named `APPLIANCE_<SECTION>__<KEY>`, for example",
           "   `APPLIANCE_CONVERSATION__DEAD_AIR_MIN_S=5`.", "",
           "An invalid value stops the appliance with one line per problem. Each line names the",
           "key, the value, what is allowed and where the value came from. `appliance config`",
           "prints the settings in effect. This page is generated by",
           "`appliance config --markdown`.", "",
           "```toml", "# example", "[conversation]", "dead_air_min_s = 5", "",
           "[channels]", "agent_channel = 1   # the PBX puts the agent on the right channel",
           "", "[asr]", 'language = "en"', "```", ""]
    for name, field in Settings.model_fields.items():
        section = type(field.default)
        out += [f"## [{name}]", ""]
        if section.__doc__:
            out += [section.__doc__.strip(), ""]
        out += ["| key | default | allowed | meaning |", "|---|---|---|---|"]
        out += [_row(key, f) for key, f in section.model_fields.items()]
        out.append("")
        if name == "sip":
            out += ["### [[sip.accounts]]", "", SipAccount.__doc__ or "", "",
                    "| key | default | allowed | meaning |", "|---|---|---|---|"]
            out += [_row(k, f) for k, f in SipAccount.model_fields.items()] + [""]
    return "\n".join(out)
