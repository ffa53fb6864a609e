"""Login rate limiting: failures counted per client address and per user name; past the
allowance each further try waits twice as long (up to an hour). Successes clear the name."""

from __future__ import annotations

import threading
import time

FREE_FAILURES = 5
WINDOW_S = 900.0
MAX_WAIT_S = 3600.0


class LoginThrottle:
    def __init__(self, free: int = FREE_FAILURES, window_s: float = WINDOW_S) -> None:
        self.free = free
        self.window_s = window_s
        self._fails: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> list[float]:
        kept = [t for t in self._fails.get(key, ()) if now - t < self.window_s]
        if kept:
            self._fails[key] = kept
        else:
            self._fails.pop(key, None)
        return kept

    def wait_s(self, address: str, name: str, now: float | None = None) -> float:
        """Seconds before this address or name may try again (0: now)."""
        now = time.time() if now is None else now
        with self._lock:
            wait = 0.0
            for key in (f"ip:{address}", f"user:{name.lower()}"):
                fails = self._recent(key, now)
                over = len(fails) - self.free + 1
                if over > 0:
                    wait = max(wait, fails[-1] + min(MAX_WAIT_S, 2.0 ** over) - now)
            return max(0.0, wait)

    def failed(self, address: str, name: str, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._lock:
            for key in (f"ip:{address}", f"user:{name.lower()}"):
                self._fails[key] = self._recent(key, now) + [now]
            if len(self._fails) > 100_000:          # a flood of made-up names: forget the oldest
                for key in sorted(self._fails, key=lambda k: self._fails[k][-1])[:50_000]:
                    del self._fails[key]

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._fails.pop(f"user:{name.lower()}", None)
