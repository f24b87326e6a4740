"""Observing child exits and pipe readiness for one event loop.

Each loop gets one watcher: an epoll fd of aiospawn's own, registered once
with the loop's add_reader. Pidfds and pipe fds are added to that epoll by
the native core, which saves the loop's per-fd bookkeeping on every spawn.
When it becomes readable, one native call returns the ready events and
reaps every exited child (waitid on its pidfd, then close), so no SIGCHLD
handler, thread or polling timer is involved.

The watcher closes itself after a second with nothing to watch, and when
its loop closes, so an idle program keeps no extra fd open. When its loop
is closed while children still run, the children are handed to a
short-lived reaper thread (see _orphans.py), so none is left a zombie.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Callable
from typing import Any

from ._core import ffi, lib

_MAX_EVENTS = 64
# Seconds a watcher stays open with nothing to watch, so that a program
# spawning one child after another does not recreate it every time.
_IDLE_CLOSE_DELAY = 1.0
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
        self._watched_fds: dict[int, int] = {}  # token -> fd, for fd watches
        self._next_token = 1
        self._events = ffi.new("struct aiospawn_event[]", _MAX_EVENTS)
        self._idle_timer: asyncio.TimerHandle | None = None
        try:
            loop.add_reader(fd, self._dispatch)
        except BaseException:
            os.close(fd)
            raise
        # Closes it if the caller fails before watching anything.
        self._idle_timer = loop.call_later(_IDLE_CLOSE_DELAY, self._close_if_idle)

    def new_token(self, handler: Handler) -> int:
        """Reserve a token whose events go to handler."""
        token = self._next_token
        while token in self._handlers:
            token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._next_token = token + 1 if token + 1 < _TOKEN_LIMIT else 1
        self._handlers[token] = handler
        return token

    def release_token(self, token: int) -> None:
        """Forget token; close the watcher later if nothing is watched by then."""
        self._handlers.pop(token, None)
        if not self._handlers and self._idle_timer is None and not self.closed:
            loop = self._loop_ref()
            if loop is not None and not loop.is_closed():
                self._idle_timer = loop.call_later(_IDLE_CLOSE_DELAY, self._close_if_idle)

    def watch_fd(self, fd: int, events: int, handler: Handler) -> int:
        """Call handler with each event of fd until unwatch_fd; return the token."""
        token = self.new_token(handler)
        result = lib.aiospawn_watch_fd(self.fd, fd, token, events)
        if result < 0:
            self.release_token(token)
            raise OSError(-result, f"watching fd {fd} failed: {os.strerror(-result)}")
        self._watched_fds[token] = fd
        return token

    def unwatch_fd(self, fd: int, token: int) -> None:
        """Stop watching fd. Call before closing fd: a copy in a child would keep it registered."""
        if not self.closed:
            lib.aiospawn_unwatch_fd(self.fd, fd)
        self._watched_fds.pop(token, None)
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
        self._idle_timer = None
        if not self._handlers:
            self.close()

    def close(self) -> None:
        """Unregister from the loop and close the epoll fd."""
        if self.closed:
            return
        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        loop = self._loop_ref()
        if loop is not None and not loop.is_closed():
            loop.remove_reader(self.fd)
        os.close(self.fd)
        if loop is not None and _watchers.get(loop) is self:
            del _watchers[loop]

    def detach_from_closing_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        """Hand children that still run to the orphan reaper; the loop is closing."""
        if self.closed:
            return
        from ._orphans import adopt

        self.closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None
        if _watchers.get(loop) is self:
            del _watchers[loop]
        loop.remove_reader(self.fd)
        # Pipes belong to their readers, which the closed loop will not run.
        for fd in self._watched_fds.values():
            lib.aiospawn_unwatch_fd(self.fd, fd)
        self._watched_fds.clear()
        children = {
            token: handler.__self__  # type: ignore[attr-defined]
            for token, handler in self._handlers.items()
            if getattr(handler, "__func__", None) is _child_exit_function()
        }
        self._handlers.clear()
        if children:
            adopt(self.fd, children)
        else:
            os.close(self.fd)


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Watcher] = weakref.WeakKeyDictionary()


def watcher_for(loop: asyncio.AbstractEventLoop) -> Watcher:
    """Return the loop's watcher, creating it on first use."""
    watcher = _watchers.get(loop)
    if watcher is None or watcher.closed:
        if loop.is_closed():
            raise RuntimeError("Event loop is closed")
        watcher = Watcher(loop)
        _watchers[loop] = watcher
        _hook_close(loop)
    return watcher


def _child_exit_function() -> Any:
    from ._child import Child

    return Child._on_exit


_CLOSE_HOOK_MARK = "_aiospawn_close_hook"


def _hook_close(loop: asyncio.AbstractEventLoop) -> None:
    """Wrap loop.close on this instance so children outliving the loop are still reaped.

    asyncio offers no close notification. Loops whose instances take no
    attributes are left alone; their orphans are reaped at interpreter exit
    at the latest, by the kernel reparenting them.
    """
    if getattr(loop, _CLOSE_HOOK_MARK, False):
        return
    original_close = loop.close

    def close() -> None:
        if not loop.is_running() and not loop.is_closed():
            watcher = _watchers.get(loop)
            if watcher is not None:
                watcher.detach_from_closing_loop(loop)
        original_close()

    try:
        loop.close = close  # type: ignore[method-assign]
        setattr(loop, _CLOSE_HOOK_MARK, True)
    except AttributeError:
        # NOTE: such a loop leaves running children unreaped once closed.
        pass
