"""Which side of a recorded call is the agent (the office's employee) and which the client."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any


@dataclass
class Side:
    """One party as the signalling describes it."""

    number: str | None            # user part of its address: extension or phone number
    name: str | None = None
    caller: bool | None = None    # True: placed the call; False: received it; None: unknown


@dataclass
class RoleRules:
    agents: frozenset[str]        # numbers/extensions that are always agents
    agent_pattern: re.Pattern[str] | None   # e.g. internal extensions ^\d{2,5}$


@dataclass
class Roles:
    agent: int
    client: int
    direction: str | None         # "inbound" (client called) / "outbound" (agent called)
    reason: str                   # which rule decided, kept on the call for audits


def _norm(number: str | None) -> str:
    return (number or "").lstrip("+").strip().lower()


def assign_roles(sides: list[Side], rules: RoleRules, agent_hint: str | None = None,
                 direction: str | None = None) -> Roles:
    """Pick the agent among two sides; the first rule that decides wins.

    1. a header naming the agent (``agent_hint``); 2. the configured list of agents;
    3. the extension pattern matching exactly one side; 4. the direction (inbound: the callee
    is the agent; outbound: the caller is); 5. otherwise the first side, said so in ``reason``.
    """
    if len(sides) != 2:
        raise ValueError("roles are assigned between exactly two sides")
    numbers = [_norm(s.number) for s in sides]

    def decided(agent: int, reason: str) -> Roles:
        d = direction
        if d is None and sides[agent].caller is not None:
            d = "outbound" if sides[agent].caller else "inbound"
        return Roles(agent, 1 - agent, d, reason)

    if agent_hint:
        hint = _norm(agent_hint)
        hits = [i for i, n in enumerate(numbers) if n and n == hint]
        if len(hits) == 1:
            return decided(hits[0], "agent header")
    listed = [i for i, n in enumerate(numbers) if n and n in rules.agents]
    if len(listed) == 1:
        return decided(listed[0], "agents list")
    if rules.agent_pattern is not None:
        matched = [i for i, n in enumerate(numbers) if n and rules.agent_pattern.fullmatch(n)]
        if len(matched) == 1:
            return decided(matched[0], "extension pattern")
    if direction in ("inbound", "outbound"):
        for i, s in enumerate(sides):
            if s.caller is not None and s.caller == (direction == "outbound"):
                return decided(i, "direction")
    return decided(0, "first stream (no rule matched)")


def is_agent(number: str | None, rules: RoleRules, agent_hint: str | None = None) -> bool:
    """Whether a lone party (a plain call's one stream) is an agent."""
    n = _norm(number)
    if not n:
        return False
    if agent_hint and _norm(agent_hint) == n:
        return True
    return n in rules.agents or bool(rules.agent_pattern and rules.agent_pattern.fullmatch(n))


def normalise_direction(value: str | None) -> str | None:
    """Header values like 'in', 'Incoming', 'outbound' to 'inbound' / 'outbound'."""
    v = (value or "").strip().lower()
    if v.startswith("in"):
        return "inbound"
    if v.startswith("out"):
        return "outbound"
    return None


def role_rules(sip: Any) -> RoleRules:
    """The rules of the ``[sip]`` settings (``agents``, ``agent_pattern``)."""
    pattern = re.compile(sip.agent_pattern) if sip.agent_pattern else None
    return RoleRules(frozenset(a.lstrip("+").lower() for a in sip.agents), pattern)
