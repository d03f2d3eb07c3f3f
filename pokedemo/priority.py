"""Work that may wait: threads that yield the CPU to more urgent work of the same server.

A class of 30 pressing Run at once all want their first answers (a fraction of a second of CPU each) before
anyone's fine-tuning and maps (about a second each). The server runs the later phases on `background_pool`:
its threads lower their own scheduling priority (`nice`), so on a busy 2-core host the first answers of
the visitors still waiting are computed first, and the background work takes the CPU they leave. On an
idle host the background threads run at full speed. Linux sets the priority of a single thread; elsewhere
the pool's threads keep the normal priority (the phases then simply share the CPU).
"""
from __future__ import annotations

import contextvars
import os
import sys
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

NICE = 10   # Linux: a nice-10 thread gets about a tenth of the CPU a nice-0 thread gets when both want it


def lower_this_thread(nice: int = NICE) -> bool:
    """Lower the calling thread's priority by `nice` (Linux: per thread); False where it cannot."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + nice))
        return True
    except OSError:  # a sandbox that forbids it: run at the normal priority
        return False


def background_pool(workers: int, nice: int = NICE) -> ThreadPoolExecutor:
    """A thread pool whose threads run at lower priority (their native threads, e.g. OpenMP's, inherit it)."""
    return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="background",
                              initializer=lower_this_thread, initargs=(nice,))


def submit_in_context(pool: ThreadPoolExecutor, function: Callable, *args, **kwargs) -> Future:
    """pool.submit, with the caller's context variables (a web framework's per-request state, e.g. the
    progress bar of the request) visible to `function`."""
    return pool.submit(contextvars.copy_context().run, function, *args, **kwargs)


def wait_until_quiet(window: float = 1.0, share: float = 0.25, limit: float = float("inf")) -> float:
    """Return once this process has used less than `share` of one core over a `window` of seconds (its visitors'
    work done), checking window after window, or after `limit` seconds; returns the seconds waited. For slow
    work that can wait and would hold Python's lock while it runs, e.g. numba compiling: a lower priority does
    not help there, since a low-priority thread that the system pauses while holding the lock stalls every
    other thread."""
    started = time.monotonic()
    while True:
        wall, cpu = time.monotonic(), time.process_time()
        time.sleep(window)
        if time.process_time() - cpu < share * (time.monotonic() - wall) or time.monotonic() - started >= limit:
            return time.monotonic() - started
