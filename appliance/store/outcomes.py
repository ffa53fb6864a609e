"""What came of a call, posted by a CRM or a supervisor: the basis of conversion."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any, Mapping

from .migrations import CURRENT
from .monthly import day_of
from .table import DurableMap

RESULTS = ("won", "lost", "interested", "follow_up", "not_interested")
FINAL = frozenset({"won", "lost", "not_interested"})     # the client's case is closed
INTEREST = frozenset({"interested", "follow_up"})


class OutcomeError(ValueError):
    """An outcome that cannot be stored; the message says which field and why."""


def validate_outcome(payload: Any) -> dict[str, Any]:
    """``{result, amount?, currency?, note?}`` checked; raises OutcomeError."""
    if not isinstance(payload, Mapping):
        raise OutcomeError("the outcome must be a JSON object such as "
                           '{"result": "won", "amount": 1500}')
    unknown = set(payload) - {"result", "amount", "currency", "note", "by"}
    if unknown:
        raise OutcomeError(f"unknown field(s): {', '.join(sorted(unknown))[:80]}")
    result = payload.get("result")
    if result not in RESULTS:
        raise OutcomeError(f"result: {str(result)[:40]!r} is not one of {', '.join(RESULTS)}")
    amount = payload.get("amount")
    if amount is not None:
        if isinstance(amount, bool) or not isinstance(amount, (int, float)) or \
                not math.isfinite(amount) or not 0 <= amount <= 1e12:
            raise OutcomeError("amount: a number from 0 to 1e12 (or leave it out)")
    currency = payload.get("currency")
    if currency is not None and (not isinstance(currency, str) or not currency.isalpha()
                                 or len(currency) != 3):
        raise OutcomeError("currency: a three-letter code such as RUB or EUR")
    note = payload.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 1000):
        raise OutcomeError("note: text of at most 1000 characters")
    return {"result": result, "amount": float(amount) if amount is not None else None,
            "currency": currency.upper() if currency else None, "note": note}


class OutcomeStore:
    """Outcomes by call uid (the latest posted wins) under ``<data_dir>/store/outcomes``."""

    def __init__(self, data_dir: Path) -> None:
        self.table = DurableMap(data_dir / "store" / "outcomes", kind="outcome", str_keys=True)
        self.day_versions: dict[str, int] = {}

    @property
    def problems(self) -> list[str]:
        return self.table.problems

    @property
    def lost(self) -> list[str]:
        return self.table.lost

    def put(self, uid: str, outcome: dict[str, Any], call: Mapping[str, Any], by: str) -> dict[str, Any]:
        """Store a validated outcome for a stored call (``call`` is its record)."""
        doc = {"schema": CURRENT["outcome"], "uid": uid, **outcome, "by": by, "at": time.time(),
               "call_started_at": call.get("started_at"), "agent": call.get("agent"),
               "client_digits": call.get("client_digits")}
        self.table.put(uid, doc)
        day = day_of(call.get("started_at") or 0)
        self.day_versions[day] = self.day_versions.get(day, 0) + 1
        return doc

    def day_version(self, day: str) -> int:
        """Changes when an outcome of a call of ``day`` is posted."""
        return self.day_versions.get(day, 0)

    def get(self, uid: str) -> dict[str, Any] | None:
        return self.table.get(uid)

    def all(self) -> dict[str, dict[str, Any]]:
        return self.table.docs

    def close(self) -> None:
        self.table.close()
