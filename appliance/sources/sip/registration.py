"""What the rest of the appliance sees of one SIP account's registration. Pure."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass
class Registration:
    """The last answer of the registrar, kept also while registration fails."""

    uri: str
    registered: bool = False
    status: int = 0
    reason: str = "not registered yet"
    expires_s: int = 0
    changed_at: float = 0.0         # when ``registered`` last flipped (or first answer)
    last_attempt_at: float = 0.0    # when the registrar last answered (or timed out)
    failures: int = 0               # failed attempts since the last success

    def record(self, status: int, reason: str, active: bool, expires_s: int,
               now: float | None = None) -> bool:
        """Take one registrar answer; return whether ``registered`` changed."""
        now = time.time() if now is None else now
        changed = active != self.registered or self.last_attempt_at == 0.0
        self.registered = active
        self.status, self.reason = status, reason or ("OK" if active else "no answer")
        self.expires_s = expires_s if active else 0
        self.failures = 0 if active else self.failures + 1
        self.last_attempt_at = now
        if changed:
            self.changed_at = now
        return changed

    def as_dict(self) -> dict[str, object]:
        return {"uri": self.uri, "registered": self.registered, "status": self.status,
                "reason": self.reason, "expires_s": self.expires_s, "changed_at": self.changed_at,
                "last_attempt_at": self.last_attempt_at, "failures": self.failures}
