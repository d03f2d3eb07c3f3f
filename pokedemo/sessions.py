"""What the server keeps per visitor session: their uploaded files and their cancel switch.

Gradio keys every browser tab and every API client by a `session_hash`. Uploads are copies in
Gradio's cache, and Gradio puts **identical** uploads of two visitors at the **same** path, so a
file is deleted only when the last session that holds it ends. The gallery's own files are never
registered. A session ends when the page calls `end` (Gradio's unload event: the tab was closed or
the connection lost) or, for an API call, when it has been answered.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable


class SessionRegistry:
    """Thread-safe: handlers of different visitors run on different worker threads."""

    def __init__(self, keep: Callable[[str], bool] = lambda path: False):
        self._keep = keep                                # paths never to delete (the gallery's own files)
        self._files: dict[str, set[str]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def add_files(self, session: str, paths: Iterable[str]) -> None:
        with self._lock:
            self._files.setdefault(session, set()).update(str(p) for p in paths if not self._keep(str(p)))

    def files(self, session: str) -> set[str]:
        with self._lock:
            return set(self._files.get(session, ()))

    def cancel_flag(self, session: str) -> threading.Event:
        """The session's cancel switch (the same object every time for a session)."""
        with self._lock:
            return self._cancel.setdefault(session, threading.Event())

    def end(self, session: str) -> list[str]:
        """Stop the session's work, forget it, and delete its files that no other session holds.
        returns: the deleted paths."""
        deleted = []
        with self._lock:  # held while deleting: no other session can take up a path in between
            flag = self._cancel.pop(session, None)
            if flag is not None:
                flag.set()
            mine = self._files.pop(session, set())
            held = set().union(*self._files.values()) if self._files else set()
            for path in sorted(mine - held):
                try:
                    os.remove(path)
                    deleted.append(path)
                except OSError:
                    pass
        return deleted

    def __len__(self) -> int:
        with self._lock:
            return len(set(self._files) | set(self._cancel))
