"""Schema versions of stored documents and the steps that upgrade them.

Every stored document carries ``schema``. A table opened with a ``kind`` runs each older
document through the steps below at load and writes the result back at once, so a
downgrade-free upgrade of the appliance needs no separate migration run and a half-done
upgrade (power cut) simply runs again: every step is a pure function of the document.
"""

from __future__ import annotations

from typing import Any, Callable

from ..core.numbers import digits

Doc = dict[str, Any]


def _call_1_to_2(doc: Doc) -> Doc:
    # v2: numbers compared by their digits (CDR joins, client lists), outcome-free records
    return {**doc, "schema": 2, "client_digits": digits(doc.get("client")),
            "agent_digits": digits(doc.get("agent"))}


STEPS: dict[str, dict[int, Callable[[Doc], Doc]]] = {
    "call": {1: _call_1_to_2},
    "cdr": {},
    "outcome": {},
    "audit": {},
    "user": {},
    "setting": {},
    "dictionary": {},
    "checklist": {},
    "outbox": {},
    "session": {},
}
CURRENT: dict[str, int] = {kind: max(steps, default=0) + 1 for kind, steps in STEPS.items()}


def upgrade(kind: str, doc: Doc) -> Doc:
    """``doc`` at the current schema of ``kind``; the same object when nothing changed."""
    version = int(doc.get("schema", 1))
    steps = STEPS.get(kind, {})
    while version in steps:
        doc = steps[version](doc)
        version = int(doc["schema"])
    if version > CURRENT.get(kind, version):
        raise ValueError(f"a {kind} document has schema {version}, newer than this appliance "
                         f"understands ({CURRENT[kind]}); update the appliance")
    return doc
