"""Per-client and per-handle limits: a backoff after wrong passwords, and a rate limit for writes anyone can
trigger (e.g. sending an edit to a study). In-process state: each app process keeps its own counters."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from workbench.ui.settings import on_hf_space

EDITS_ENV = "STUDIO_EDITS_PER_10_MIN"  # a private deployment or a benchmark may allow more
EDIT_TIME_BUDGET_S = 180.0  # one edit may hold the shared model slot at most this long
FREE_TRIES = 5  # wrong passwords allowed before the first wait (typos are normal)
MAX_WAIT_S = 300.0


def client_address(host: str | None, forwarded_for: str | None) -> str:
    """The client's address. On a Hugging Face Space every request arrives from the Space's proxy, which puts
    the real address first in X-Forwarded-For; elsewhere that header is whatever the client sent, so it is
    ignored (put a proxy in front and the limits count per proxy, i.e. they get stricter, never looser)."""
    if forwarded_for and on_hf_space():
        return forwarded_for.split(",")[0].strip()
    return host or "local"


def client_key() -> str:
    """Key of the client of the event being handled ("client:local" outside a request)."""
    from gradio.context import LocalContext

    request = LocalContext.request.get(None)
    host = getattr(getattr(request, "client", None), "host", None)
    headers = getattr(request, "headers", None) or {}
    return f"client:{client_address(host, headers.get('x-forwarded-for'))}"


class Backoff:
    """After FREE_TRIES failures of a key, each further failure doubles a wait (1 s, 2 s, ... MAX_WAIT_S) during
    which the key is refused without checking anything. Success clears the key."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._failures: dict[str, int] = {}
        self._until: dict[str, float] = {}

    def wait_s(self, keys: Iterable[str]) -> float:
        """Seconds until every key may try again (0: allowed now)."""
        now = self._clock()
        with self._lock:
            return max([self._until.get(k, 0.0) - now for k in keys] + [0.0])

    def failed(self, keys: Iterable[str]) -> None:
        now = self._clock()
        with self._lock:
            for key in keys:
                n = self._failures.get(key, 0) + 1
                self._failures[key] = n
                if n >= FREE_TRIES:
                    self._until[key] = now + min(2.0 ** (n - FREE_TRIES), MAX_WAIT_S)

    def succeeded(self, keys: Iterable[str]) -> None:
        with self._lock:
            for key in keys:
                self._failures.pop(key, None)
                self._until.pop(key, None)


class RateLimit:
    """At most ``limit`` events per key in any ``window_s`` seconds (sliding window)."""

    def __init__(self, limit: int, window_s: float, clock=time.monotonic) -> None:
        self.limit, self.window_s, self._clock = limit, window_s, clock
        self._lock = threading.Lock()
        self._events: dict[str, deque[float]] = {}

    def take(self, key: str) -> float:
        """Record one event for ``key`` and return 0, or return the seconds to wait (nothing recorded)."""
        now = self._clock()
        with self._lock:
            events = self._events.setdefault(key, deque())
            while events and now - events[0] >= self.window_s:
                events.popleft()
            if len(events) >= self.limit:
                return self.window_s - (now - events[0])
            events.append(now)
            return 0.0


@dataclass
class Limits:
    """The limits one app keeps (one instance per UIContext)."""

    logins: Backoff = field(default_factory=Backoff)
    sends: RateLimit = field(default_factory=lambda: RateLimit(limit=20, window_s=600.0))
    edits: RateLimit = field(default_factory=lambda: RateLimit(limit=edits_per_window(), window_s=600.0))


def edits_per_window(default: int = 30) -> int:
    """Edits one client may start per 10 minutes (STUDIO_EDITS_PER_10_MIN; at least 1)."""
    raw = os.environ.get(EDITS_ENV, "").strip()
    if not raw:
        return default
    try:
        return max(1, int(raw))
    except ValueError:
        raise SystemExit(f"{EDITS_ENV} must be a whole number, not {raw!r}") from None
