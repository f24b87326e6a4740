"""Reaping children whose event loop was closed before they exited.

asyncio lets a loop close while its children still run; their exit then
has nobody to observe it. aiospawn hands the loop's watcher epoll, holding
only those children's pidfds, to a daemon thread that blocks on it, reaps
each child as it exits and ends when none is left. The thread exists only
in this situation; a program that awaits its children never starts it.
"""

from __future__ import annotations

import os
import select
import threading
from typing import Any

from ._core import ffi, lib

_MAX_EVENTS = 64


def adopt(watcher_fd: int, children: dict[int, Any]) -> None:
    """Reap children (token -> Child) registered on watcher_fd, then close it.

    From here a signal sent to one of them from any thread takes the
    reaper's lock, so it never meets a pidfd closed by a reap in between.
    """
    lock = threading.Lock()
    for child in children.values():
        child._orphan_lock = lock
    thread = threading.Thread(
        target=_reap_until_empty,
        args=(watcher_fd, children, lock),
        name="aiospawn-orphan-reaper",
        daemon=True,
    )
    thread.start()


def _reap_until_empty(watcher_fd: int, children: dict[int, Any], lock: threading.Lock) -> None:
    events = ffi.new("struct aiospawn_event[]", _MAX_EVENTS)
    poller = select.poll()
    poller.register(watcher_fd, select.POLLIN)
    try:
        while children:
            poller.poll()
            with lock:
                count = lib.aiospawn_poll(watcher_fd, events, _MAX_EVENTS)
                for index in range(max(count, 0)):
                    child = children.pop(events[index].token, None)
                    if child is not None:
                        child.record_orphan_exit(events[index])
    finally:
        os.close(watcher_fd)
