"""Bounded per-session buffers between the engine thread and browser sessions.

The engine publishes one *update* (a dict of arrays, already batched and decimated) at a fixed
rate; every subscribed :class:`SessionBuffer` receives it. A buffer holds at most ``maxlen``
updates: when a session does not drain it (a slow or closed browser), the oldest update is
dropped and counted, so the engine never waits on a session and never grows memory for it.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any


class SessionBuffer:
    """Updates for one session, oldest first, at most ``maxlen`` of them (older ones dropped).

    ``put`` (the engine thread) and ``drain`` (the session's callback) hold a lock only while
    appending or swapping the deque: a few microseconds, never while the session renders.
    """

    def __init__(self, maxlen: int = 64, name: str = ""):
        if int(maxlen) < 1:
            raise ValueError(f"maxlen={maxlen}: a session buffer holds at least one update")
        self.maxlen = int(maxlen)
        self.name = name
        self.dropped = 0  # updates discarded because the session had not drained them
        self.delivered = 0  # updates handed to the session by drain()
        self.closed = False
        self._items: deque = deque(maxlen=self.maxlen)
        self._lock = threading.Lock()

    def put(self, update: dict[str, Any]) -> None:
        with self._lock:
            if len(self._items) == self.maxlen:
                self.dropped += 1  # deque(maxlen) discards the oldest on append: count it
            self._items.append(update)

    def drain(self) -> list[dict[str, Any]]:
        """Every update waiting, oldest first; the buffer is empty afterwards."""
        with self._lock:
            items, self._items = list(self._items), deque(maxlen=self.maxlen)
        self.delivered += len(items)
        return items

    def __len__(self) -> int:
        return len(self._items)


class Hub:
    """The engine's set of session buffers (thread-safe subscribe / unsubscribe / publish)."""

    def __init__(self) -> None:
        self._sessions: list[SessionBuffer] = []
        self._lock = threading.Lock()
        self.published = 0
        self.dropped_closed = 0  # drops of sessions that have since unsubscribed

    def subscribe(self, maxlen: int = 64, name: str = "") -> SessionBuffer:
        buffer = SessionBuffer(maxlen, name)
        with self._lock:
            self._sessions.append(buffer)
        return buffer

    def unsubscribe(self, buffer: SessionBuffer) -> None:
        with self._lock:
            if buffer in self._sessions:
                self._sessions.remove(buffer)
                self.dropped_closed += buffer.dropped
        buffer.closed = True

    def publish(self, update: dict[str, Any]) -> None:
        with self._lock:
            sessions = list(self._sessions)
        for buffer in sessions:
            buffer.put(update)
        self.published += 1

    @property
    def sessions(self) -> int:
        return len(self._sessions)

    @property
    def dropped(self) -> int:
        """Updates dropped by every session, current and closed."""
        with self._lock:
            return self.dropped_closed + sum(b.dropped for b in self._sessions)


__all__ = ["SessionBuffer", "Hub"]
