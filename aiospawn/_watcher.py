"""Observing child exits and pipe readiness for one event loop.

Each loop gets one watcher: an epoll fd of aiospawn's own, registered once
with the loop's add_reader. Pidfds and pipe fds are added to that epoll by
the native core, which saves the loop's per-fd bookkeeping on every spawn.
When it becomes readable, one native call returns the ready events and
reaps every exited child (waitid on its pidfd, then close), so no SIGCHLD
handler, thread or polling timer is involved.

The watcher closes itself when nothing is left to watch, one loop
iteration later, so an idle program keeps no extra fd open.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

from ._core import ffi, lib

_MAX_EVENTS = 64
_TOKEN_LIMIT = 1 << 31

EVENT_READ = 0x001  # EPOLLIN
EVENT_WRITE = 0x004  # EPOLLOUT

Handler = Callable[[Any], None]


class Watcher:
    """An epoll fd watched by one event loop, dispatching ready events by token."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        fd = lib.aiospawn_watcher_new()
        if fd < 0:
            raise OSError(-fd, f"creating the exit watcher failed: {os.strerror(-fd)}")
        self.fd = fd
        self.closed = False
        self._loop_ref = weakref.ref(loop)
        self._handlers: dict[int, Handler] = {}
        self._next_token = 1
        self._events = ffi.new("struct aiospawn_event[]", _MAX_EVENTS)
        self._idle_check_scheduled = False
        try:
            loop.add_reader(fd, self._dispatch)
        except BaseException:
            os.close(fd)
            raise

    def new_token(self, handler: Handler) -> int:
        """Reserve a token whose events go to handler."""
        token = self._next_token
        while token in self._handlers:
            token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._next_token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._handlers[token] = handler
        return token

    def release_token(self, token: int) -> None:
        """Forget token; close the watcher soon if nothing else is watched."""
        self._handlers.pop(token, None)
        if not self._handlers and not self._idle_check_scheduled:
            loop = self._loop_ref()
            if loop is not None and not loop.is_closed():
                self._idle_check_scheduled = True
                loop.call_soon(self._close_if_idle)

    def watch_fd(self, fd: int, events: int, handler: Handler) -> int:
        """Call handler with each event of fd until unwatch_fd; return the token."""
        token = self.new_token(handler)
        result = lib.aiospawn_watch_fd(self.fd, fd, token, events)
        if result < 0:
            self.release_token(token)
            raise OSError(-result, f"watching fd {fd} failed: {os.strerror(-result)}")
        return token

    def unwatch_fd(self, fd: int, token: int) -> None:
        """Stop watching fd. Call before closing fd: a copy in a child would keep it registered."""
        lib.aiospawn_unwatch_fd(self.fd, fd)
        self.release_token(token)

    def _dispatch(self) -> None:
        events = self._events
        count = lib.aiospawn_poll(self.fd, events, _MAX_EVENTS)
        if count < 0:
            # epoll_wait on our own fd fails only if it was closed under us.
            raise OSError(-count, f"polling the exit watcher failed: {os.strerror(-count)}")
        for index in range(count):
            event = events[index]
            handler = self._handlers.get(event.token)
            if handler is not None:
                handler(event)

    def _close_if_idle(self) -> None:
        self._idle_check_scheduled = False
        if self._handlers or self.closed:
            return
        self.close()

    def close(self) -> None:
        """Unregister from the loop and close the epoll fd."""
        if self.closed:
            return
        self.closed = True
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)
        os.close(self.fd)
        if loop is not None and _watchers.get(loop) is self:
            del _watchers[loop]


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watcher] = weakref.WeakKeyDictionary()


def watcher_for(loop: asyncio.AbstractEventLoop) -> Watcher:
    """Return the loop's watcher, creating it on first use."""
    watcher = _watchers.get(loop)
    if watcher is None or watcher.closed:
        watcher = Watcher(loop)
        _watchers[loop] = watcher
    return watcher
