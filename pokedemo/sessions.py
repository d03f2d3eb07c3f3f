"""What the server keeps per visitor session: their uploaded files and their cancel switch.

Gradio keys every browser tab and every API client by a `session_hash`. Uploads are copies in
Gradio's cache, and Gradio puts **identical** uploads of two visitors at the **same** path (a folder
named by the content's hash), overwriting the file each time. So a file is deleted only when

- no other live session holds it, and
- nobody has uploaded it for `grace_seconds`: a request that uploaded the same picture may still be
  waiting in the queue, and it names the file only once it runs. `grace_seconds` is set above the
  longest possible queue wait (queue size x the bounded task time / workers, see app.py).

A session ends when the page calls `end` (Gradio's unload event: the tab was closed or the connection
lost) or, for an API call, when it has been answered. Files not yet old enough wait in `pending`
and go at a later sweep (adding files and ending a session sweep; the app also sweeps on a timer). The gallery's
own files are never registered.
"""
from __future__ import annotations

import os
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

REMEMBER_ENDED = 10_000   # ended sessions remembered, so a run queued before the end cannot revive them


class SessionRegistry:
    """Thread-safe: handlers of different visitors run on different worker threads."""

    def __init__(self, keep: Callable[[str], bool] = lambda path: False, grace_seconds: float = 900.0):
        self._keep = keep                                # paths never to delete (the gallery's own files)
        self.grace_seconds = grace_seconds
        self._files: dict[str, set[str]] = {}
        self._cancel: dict[str, threading.Event] = {}
        self._pending: set[str] = set()                  # files of ended sessions, not yet safe to delete
        self._ended: OrderedDict[str, None] = OrderedDict()
        self._lock = threading.Lock()

    def add_files(self, session: str, paths: Iterable[str]) -> None:
        with self._lock:
            paths = {str(p) for p in paths if not self._keep(str(p))}
            if session in self._ended:   # a run that waited in the queue past its tab's closing
                self._pending |= paths
            else:
                self._files.setdefault(session, set()).update(paths)
            self._sweep()

    def files(self, session: str) -> set[str]:
        with self._lock:
            return set(self._files.get(session, ()))

    def holders(self) -> dict[str, set[str]]:
        """session -> its files, a copy (for tests and diagnostics)."""
        with self._lock:
            return {session: set(paths) for session, paths in self._files.items()}

    @property
    def pending(self) -> set[str]:
        with self._lock:
            return set(self._pending)

    def cancel_flag(self, session: str) -> threading.Event:
        """The session's cancel switch (the same object every time for a live session; always set for an
        ended one)."""
        with self._lock:
            if session in self._ended:
                ended = threading.Event()
                ended.set()
                return ended
            return self._cancel.setdefault(session, threading.Event())

    def end(self, session: str) -> list[str]:
        """Stop the session's work and forget it; delete its files that are safe to delete (the others
        when they are). returns: the paths deleted now."""
        with self._lock:
            flag = self._cancel.pop(session, None)
            if flag is not None:
                flag.set()
            self._pending |= self._files.pop(session, set())
            self._ended[session] = None
            while len(self._ended) > REMEMBER_ENDED:
                self._ended.popitem(last=False)
            return self._sweep()

    def sweep(self) -> list[str]:
        with self._lock:
            return self._sweep()

    def _sweep(self) -> list[str]:
        """Delete pending files no live session holds and nobody uploaded in the grace period (lock held:
        no session can take up a path in between)."""
        held = set().union(*self._files.values()) if self._files else set()
        now, deleted = time.time(), []
        for path in sorted(self._pending):
            if path in held:
                self._pending.discard(path)              # its holder deletes it when it ends
                continue
            try:
                if now - os.path.getmtime(path) < self.grace_seconds:
                    continue                             # uploaded again lately: a queued request may need it
                os.remove(path)
                deleted.append(path)
            except OSError:
                pass                                     # already gone
            self._pending.discard(path)
        return deleted

    def __len__(self) -> int:
        with self._lock:
            return len(set(self._files) | set(self._cancel))
