"""Scripted two-party calls: who says what, and when, turned into a stereo recording.

A script is a list of turns. A turn takes the floor after the previous one (``after``
seconds of silence; a long one is dead air), cuts into it (``interrupt``: where in the
previous line, as a fraction; the interrupted party stops ``yield_s`` later, mid-word), or
is a backchannel said over it (``over``: "угу", without taking the floor).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .calls import RATE, Track, fade

Party = Literal["agent", "client"]
YIELD_S = 0.9           # how long an interrupted party goes on talking over the interrupter


class ScriptError(ValueError):
    """A call script that cannot be played."""


@dataclass(frozen=True)
class Turn:
    who: Party
    say: str
    after: float = 0.6                 # silence before this turn, seconds
    interrupt: float | None = None     # start at this fraction of the previous line
    over: bool = False                 # a backchannel over the previous line


@dataclass
class Script:
    id: str
    title: str
    direction: Literal["inbound", "outbound"]
    agent: str
    client: str
    agent_name: str = ""
    client_name: str = ""
    pitch: dict[str, float] = field(default_factory=lambda: {"agent": 1.0, "client": 1.0})
    turns: list[Turn] = field(default_factory=list)
    expect: dict[str, Any] = field(default_factory=dict)   # what the analysis should find

    @property
    def caller(self) -> str:
        return self.client if self.direction == "inbound" else self.agent

    @property
    def callee(self) -> str:
        return self.agent if self.direction == "inbound" else self.client


def _turn(raw: dict[str, Any], where: str) -> Turn:
    unknown = set(raw) - {"who", "say", "after", "interrupt", "over"}
    if unknown:
        raise ScriptError(f"{where}: unknown keys {sorted(unknown)}")
    if raw.get("who") not in ("agent", "client") or not str(raw.get("say", "")).strip():
        raise ScriptError(f"{where}: needs who = 'agent' or 'client' and a non-empty say")
    interrupt = raw.get("interrupt")
    if interrupt is not None and not 0.1 <= float(interrupt) <= 0.9:
        raise ScriptError(f"{where}: interrupt is a fraction of the previous line, 0.1-0.9")
    after = float(raw.get("after", 0.6))
    if not 0.0 <= after <= 30.0:
        raise ScriptError(f"{where}: after must be 0-30 s")
    return Turn(raw["who"], str(raw["say"]).strip(), after,
                None if interrupt is None else float(interrupt), bool(raw.get("over", False)))


def load_scripts(path: Path) -> list[Script]:
    """Read and check the ``[[calls]]`` of a TOML script file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ScriptError(f"{path.name}: {exc}") from exc
    calls = data.get("calls")
    if not isinstance(calls, list) or not calls or not all(isinstance(c, dict) for c in calls):
        raise ScriptError(f"{path.name}: no [[calls]] tables")
    scripts = []
    for i, raw in enumerate(calls):
        where = f"{path.name}: calls[{i}]"
        try:
            turns = [_turn(t, f"{where}.turns[{j}]") for j, t in enumerate(raw.pop("turns"))]
            pitch = {"agent": 1.0, "client": 1.0, **raw.pop("pitch", {})}
            script = Script(**raw, pitch=pitch, turns=turns)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ScriptError(f"{where}: {exc!r}") from exc
        if script.direction not in ("inbound", "outbound"):
            raise ScriptError(f"{where}: direction is 'inbound' or 'outbound'")
        if len(turns) < 2 or turns[0].interrupt is not None or turns[0].over:
            raise ScriptError(f"{where}: a call needs two turns or more, the first an ordinary one")
        scripts.append(script)
    return scripts


@dataclass
class Rendered:
    """A script's recording (16 kHz float32, [agent, client]) and what it holds for sure."""

    stereo: np.ndarray
    interruptions: list[tuple[str, float]]          # (who cut in, when)
    speech: dict[str, list[tuple[float, float]]]

    @property
    def duration(self) -> float:
        return len(self.stereo) / RATE


def assemble(turns: list[Turn], lines: list[np.ndarray], lead_s: float = 0.8) -> Rendered:
    """Place each turn's audio (``lines[i]``, 16 kHz mono) on its party's track."""
    tracks: dict[str, Track] = {"agent": Track(), "client": Track()}
    interruptions: list[tuple[str, float]] = []
    floor: tuple[Party, float, int] | None = None      # (speaker, start, index of its piece)
    end = lead_s
    for turn, audio in zip(turns, lines):
        length = len(audio) / RATE
        if turn.over and floor is not None:
            speaker, start, _ = floor
            at = start + 0.45 * (end - start)
            tracks[turn.who].put(at, fade(audio, 25.0), [(at, at + length)])
            continue
        start = end + turn.after if floor is not None else lead_s
        if turn.interrupt is not None and floor is not None and floor[0] != turn.who:
            speaker, prev_start, piece = floor
            start = prev_start + turn.interrupt * (end - prev_start)
            stop = start + YIELD_S                      # the interrupted party gives up
            track = tracks[speaker]
            at, prev = track.pieces[piece]
            keep = max(1, int((stop - at / RATE) * RATE))
            track.pieces[piece] = (at, fade(prev[:keep]))
            track.speech[-1] = (track.speech[-1][0], min(track.speech[-1][1], stop))
            interruptions.append((turn.who, round(start, 3)))
        tracks[turn.who].put(start, fade(audio), [(start, start + length)])
        floor = (turn.who, start, len(tracks[turn.who].pieces) - 1)
        end = start + length
    n = int((end + lead_s) * RATE)
    stereo = np.stack([tracks["agent"].render(n), tracks["client"].render(n)], axis=1)
    peak = float(np.max(np.abs(stereo))) or 1.0
    stereo *= min(1.0, 0.7 / peak)
    return Rendered(stereo, interruptions, {p: t.speech for p, t in tracks.items()})
